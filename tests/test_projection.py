"""The K -> GL projection against its closed form, and region-of-interest resampling."""

from __future__ import annotations

import numpy as np
import pytest

from renderer.projection import RegionOfInterest, gl_projection


def test_projection_matches_closed_form(vga_camera):
    n, f = 20.0, 3000.0
    P = gl_projection(vga_camera, n, f)
    W, H = 640, 480
    expected = np.array([
        [2 * 500.0 / W, 0, (2 * 318.3 + 1) / W - 1, 0],
        [0, 2 * 520.0 / H, (2 * 243.7 + 1) / H - 1, 0],
        [0, 0, (f + n) / (f - n), -2 * f * n / (f - n)],
        [0, 0, 1, 0],
    ])
    np.testing.assert_allclose(P, expected, rtol=1e-12)


def test_projection_lands_on_pixel_centres(vga_camera):
    """NDC -> window coordinates (GL: (ndc + 1) / 2 * W) minus 0.5 gives OpenCV's pixel (u, v)."""
    rng = np.random.default_rng(2)
    pts = rng.uniform([-300, -200, 200], [300, 200, 2000], (100, 3))
    clip = np.c_[pts, np.ones(100)] @ gl_projection(vga_camera, 10.0, 5000.0).T
    ndc = clip[:, :3] / clip[:, 3:]
    window = (ndc[:, :2] + 1) / 2 * [640, 480] - 0.5
    np.testing.assert_allclose(window, vga_camera.project(pts), atol=1e-9)
    # depth: -1 at near, +1 at far
    for z, want in ((10.0, -1.0), (5000.0, 1.0)):
        c = gl_projection(vga_camera, 10.0, 5000.0) @ [0, 0, z, 1]
        assert c[2] / c[3] == pytest.approx(want)


@pytest.mark.parametrize("near, far", [(0.0, 10.0), (5.0, 5.0), (1.0, np.inf)])
def test_projection_rejects_bad_clip_range(vga_camera, near, far):
    with pytest.raises(ValueError, match="near"):
        gl_projection(vga_camera, near, far)


def test_roi_sample_maps_pixels_as_documented():
    H, W, T = 48, 64, 16
    cols, rows = np.meshgrid(np.arange(W), np.arange(H))
    image = np.stack([rows, cols], axis=-1)  # each pixel holds its own (row, col)
    roi = RegionOfInterest(10.0, 5.5, 42.0, 37.5)
    tile = roi.sample(image, T, fill=-1)
    for i in range(T):
        for j in range(T):
            want = (int(np.floor(5.5 + (i + 0.5) * 32.0 / T)), int(np.floor(10.0 + (j + 0.5) * 32.0 / T)))
            assert tuple(tile[i, j]) == want


def test_roi_tile_indices_find_the_tile_pixel_holding_each_pixel_centre():
    roi, T = RegionOfInterest(10.0, 5.5, 42.0, 37.5), 16  # 2 image pixels a tile pixel
    u, v = np.meshgrid(np.arange(0, 60), np.arange(0, 50))
    i, j = roi.tile_indices(u, v, T)
    inside = (u + 0.5 >= 10.0) & (u + 0.5 < 42.0) & (v + 0.5 >= 5.5) & (v + 0.5 < 37.5)
    sy = sx = 32.0 / T
    assert np.all((5.5 + i * sy <= v + 0.5) & (v + 0.5 < 5.5 + (i + 1) * sy) | ~inside)  # its footprint holds the centre
    assert np.all((10.0 + j * sx <= u + 0.5) & (u + 0.5 < 10.0 + (j + 1) * sx) | ~inside)
    assert i[~inside].min() >= 0 and i.max() == T - 1 and j[0, 0] == 0 and j[0, -1] == T - 1  # clipped outside
    ii, jj = roi.tile_indices(np.arange(3), np.arange(5), T)  # any shapes, each on its own
    assert ii.shape == (5,) and jj.shape == (3,)


def test_roi_sample_fills_outside():
    roi = RegionOfInterest(-4.0, -4.0, 4.0, 4.0)
    tile = roi.sample(np.ones((10, 10), np.float32), 8, fill=0)
    assert tile[:4].sum() == 0 and tile[:, :4].sum() == 0 and tile[4:, 4:].sum() == 16


def test_roi_from_mask_and_points():
    mask = np.zeros((50, 60), bool)
    mask[10:21, 30:41] = True  # rows 10..20, cols 30..40
    roi = RegionOfInterest.from_mask(mask, margin=0.0, square=False)
    assert roi.box == (30.0, 10.0, 41.0, 21.0)
    roi = RegionOfInterest.from_points(np.array([[30, 10], [40, 20]]), margin=0.0, square=False)
    assert roi.box == (30.0, 10.0, 41.0, 21.0)
    sq = RegionOfInterest(0, 0, 10, 20).expanded(0.25, square=True)
    assert sq.box == (-10.0, -5.0, 20.0, 25.0)


@pytest.mark.parametrize("box", [(0, 0, 0, 5), (3, 0, 1, 5), (0, np.nan, 4, 4)])
def test_roi_rejects_bad_boxes(box):
    with pytest.raises(ValueError, match="RegionOfInterest"):
        RegionOfInterest(*box)


def test_roi_from_empty_mask():
    with pytest.raises(ValueError, match="empty"):
        RegionOfInterest.from_mask(np.zeros((4, 4), bool))
