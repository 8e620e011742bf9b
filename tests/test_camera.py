"""Core types: intrinsics, joints, depth encoding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handrgbd import BONES, FINGERS, PARENTS, CameraIntrinsics, Joint, depth_mm_to_uint16, uint16_to_depth_mm


def test_K_and_dict_round_trip(vga_camera):
    K = vga_camera.K
    assert K.shape == (3, 3)
    np.testing.assert_array_equal(K, [[500.0, 0, 318.3], [0, 520.0, 243.7], [0, 0, 1]])
    assert CameraIntrinsics.from_K(K, 640, 480) == vga_camera
    assert CameraIntrinsics.from_dict(vga_camera.to_dict()) == vga_camera


@pytest.mark.parametrize("kwargs, field", [
    (dict(fx=0.0), "fx"), (dict(fy=-1.0), "fy"), (dict(fx=math.nan), "fx"), (dict(cx=math.inf), "cx"),
    (dict(width=0), "width"), (dict(height=12.5), "height"), (dict(width=True), "width"),
])
def test_invalid_intrinsics_name_the_field(kwargs, field):
    base = dict(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
    base.update(kwargs)
    with pytest.raises(ValueError, match=field):
        CameraIntrinsics(**base)


def test_from_dict_reports_missing_keys():
    with pytest.raises(ValueError, match="cy"):
        CameraIntrinsics.from_dict({"fx": 1, "fy": 1, "cx": 0, "width": 4, "height": 4})


def test_project_unproject_round_trip(vga_camera):
    rng = np.random.default_rng(0)
    pts = rng.uniform([-200, -200, 300], [200, 200, 1200], size=(50, 3))
    uv = vga_camera.project(pts)
    np.testing.assert_allclose(vga_camera.unproject(uv, pts[:, 2]), pts, rtol=0, atol=1e-9)


def test_crop_shifts_principal_point(vga_camera):
    c = vga_camera.crop(100, 50, 200, 120)
    assert (c.fx, c.fy, c.width, c.height) == (500.0, 520.0, 200, 120)
    assert c.cx == pytest.approx(218.3) and c.cy == pytest.approx(193.7)


def test_resize_pixel_centre_convention():
    # Halving a 4-pixel-wide image: output pixel 0 covers input pixels 0 and 1 (centre 0.5).
    cam = CameraIntrinsics(10.0, 10.0, 0.5, 0.5, 4, 4).resize(2, 2)
    assert cam.fx == 5.0 and cam.cx == pytest.approx(0.0)


@settings(max_examples=60, deadline=None)
@given(x0=st.floats(-50, 300), y0=st.floats(-50, 200), w=st.floats(5, 400), h=st.floats(5, 400),
       out=st.integers(1, 256), u=st.floats(0, 639), v=st.floats(0, 479))
def test_crop_resize_maps_pixels_as_documented(x0, y0, w, h, out, u, v):
    """A point seen at pixel (u, v) in the full image is seen at s (u + 0.5 - x0) - 0.5 in the crop."""
    cam = CameraIntrinsics(500.0, 520.0, 318.3, 243.7, 640, 480)
    tile = cam.crop_resize((x0, y0, x0 + w, y0 + h), out, out)
    point = cam.unproject(np.array([u, v]), 700.0)
    j, i = tile.project(point)
    assert j == pytest.approx(out / w * (u + 0.5 - x0) - 0.5, abs=1e-6)
    assert i == pytest.approx(out / h * (v + 0.5 - y0) - 0.5, abs=1e-6)


def test_from_fov():
    cam = CameraIntrinsics.from_fov(640, 480, 90.0)
    assert cam.fx == pytest.approx(320.0) and cam.cx == 319.5 and cam.cy == 239.5


def test_depth_to_points_uses_valid_pixels_only():
    cam = CameraIntrinsics(100.0, 100.0, 1.0, 1.0, 3, 3)
    depth = np.zeros((3, 3), np.float32)
    depth[1, 1] = 500.0
    depth[0, 2] = 1000.0
    pts = cam.depth_to_points(depth)
    np.testing.assert_allclose(sorted(map(tuple, pts)), [(0.0, 0.0, 500.0), (10.0, -10.0, 1000.0)])
    with pytest.raises(ValueError, match="shape"):
        cam.depth_to_points(np.zeros((4, 3)))


def test_joint_tree_is_mediapipe():
    assert len(Joint) == 21 and Joint.WRIST == 0 and Joint.PINKY_TIP == 20
    assert PARENTS[Joint.INDEX_MCP] == Joint.WRIST and PARENTS[Joint.THUMB_TIP] == Joint.THUMB_IP
    assert len(BONES) == 20 and all(p < c for p, c in BONES)
    assert FINGERS[1] == (Joint.INDEX_MCP, Joint.INDEX_PIP, Joint.INDEX_DIP, Joint.INDEX_TIP)


@pytest.mark.parametrize("unit", [1.0, 0.125])
def test_depth_uint16_round_trip(unit):
    rng = np.random.default_rng(1)
    mm = np.round(rng.uniform(100, 2000, (8, 9)) / unit) * unit
    mm[0, 0] = 0.0
    raw = depth_mm_to_uint16(mm, unit)
    assert raw.dtype == np.uint16 and raw[0, 0] == 0
    np.testing.assert_allclose(uint16_to_depth_mm(raw, unit), mm, atol=1e-3)


def test_depth_encoding_errors():
    assert depth_mm_to_uint16(np.array([[np.nan, -5.0]]))[0].tolist() == [0, 0]
    with pytest.raises(ValueError, match="uint16 range"):
        depth_mm_to_uint16(np.array([[70000.0]]))
    with pytest.raises(ValueError, match="uint16"):
        uint16_to_depth_mm(np.zeros((2, 2), np.float32))
