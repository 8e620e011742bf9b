"""Tiled hypothesis rendering against analytic geometry and a per-pixel numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import translation
from handrgbd.camera import CameraIntrinsics
from renderer.projection import RegionOfInterest
from renderer.tiled import HypothesisRenderer, PrimitiveKind, PrimitiveSet, tile_sums

SPHERE, CONE = PrimitiveKind.SPHERE, PrimitiveKind.CONE


@pytest.fixture(scope="module")
def sphere_renderer(gl_context):
    with HypothesisRenderer(PrimitiveSet([SPHERE]), tile_size=64, capacity=16, context=gl_context) as r:
        yield r


def _random_hand_like(rng, n, p=37, centre=(0.0, 0.0, 600.0)):
    """n hypotheses of p random primitives (sizes 6..15 mm) scattered around ``centre``."""
    t = np.tile(np.eye(4), (n, p, 1, 1))
    q, _ = np.linalg.qr(rng.normal(size=(n, p, 3, 3)))
    t[..., :3, :3] = q * rng.uniform(6, 15, (n, p, 1, 3))
    t[..., :3, 3] = rng.normal(centre, (35, 35, 20), (n, p, 3))
    return t


HAND_SET = PrimitiveSet([SPHERE] * 22 + [CONE] * 15, [1.0] * 22 + list(np.linspace(0.6, 1.0, 15)))


@pytest.mark.parametrize("radius, z", [(40.0, 500.0), (12.0, 800.0)])
def test_sphere_depth_and_silhouette_are_analytic(sphere_renderer, vga_camera, radius, z):
    cx, cy = vga_camera.cx, vga_camera.cy
    half = 1.5 * vga_camera.fx * radius / z  # RoI about 3 radii wide, centred on the principal point
    roi = RegionOfInterest(cx + 0.5 - half, cy + 0.5 - half, cx + 0.5 + half, cy + 0.5 + half)
    depth = sphere_renderer.render(translation(0, 0, z, (radius,) * 3)[None, None], vga_camera, roi)[0]
    tile_cam = roi.camera(vga_camera, 64)
    # the tile camera's principal point is the tile centre, so the nearest point is on the central pixels
    assert tile_cam.cx == pytest.approx(31.5) and tile_cam.cy == pytest.approx(31.5)
    assert abs(depth[31:33, 31:33].min() - (z - radius)) < 1.0
    assert depth[depth > 0].min() >= z - radius - 1e-3
    # silhouette of a sphere on the optical axis: ellipse with semi-axes f r / sqrt(z^2 - r^2)
    k = radius / math.sqrt(z * z - radius * radius)
    area = math.pi * tile_cam.fx * k * tile_cam.fy * k
    assert abs((depth > 0).sum() / area - 1.0) < 0.03


def test_sphere_surface_depth_matches_ray_intersection(sphere_renderer, vga_camera):
    """Every covered pixel holds the exact ray-sphere depth (independent numpy computation)."""
    centre, radius = np.array([30.0, -20.0, 600.0]), 45.0
    roi = RegionOfInterest(300, 180, 420, 300)
    depth = sphere_renderer.render(translation(*centre, (radius,) * 3)[None, None], vga_camera, roi)[0]
    cam = roi.camera(vga_camera, 64)
    jj, ii = np.meshgrid(np.arange(64), np.arange(64))
    rays = np.stack([(jj - cam.cx) / cam.fx, (ii - cam.cy) / cam.fy, np.ones_like(jj, float)], -1)
    a = (rays ** 2).sum(-1)
    b = (rays * centre).sum(-1)
    disc = b * b - a * (centre @ centre - radius ** 2)
    hit = disc > 0
    z_true = np.where(hit, (b - np.sqrt(np.maximum(disc, 0))) / a, 0.0)
    inside = hit & (disc > 0.05 * a * radius ** 2)  # skip the rim, where coverage is a sampling question
    np.testing.assert_allclose(depth[inside], z_true[inside], atol=0.05)
    assert ((depth > 0) != hit).sum() <= 0.02 * hit.sum()


def test_ellipsoid_by_scale(sphere_renderer, vga_camera):
    roi = RegionOfInterest(238, 163, 398, 323)
    depth = sphere_renderer.render(translation(0, 0, 700, (60.0, 25.0, 35.0))[None, None],
                                   vga_camera.crop(0, 0, 640, 480), roi)[0]
    # semi-axis 35 along z: nearest depth 665; wider along x than along y
    assert depth[depth > 0].min() == pytest.approx(665.0, abs=0.5)
    mask = depth > 0
    width, height = mask.any(0).sum(), mask.any(1).sum()
    tile = roi.camera(vga_camera, 64)
    assert width == pytest.approx(2 * tile.fx * 60 / 700, abs=2.5)
    assert height == pytest.approx(2 * tile.fy * 25 / 700, abs=2.5)


def test_cylinder_and_cone(gl_context):
    cam = CameraIntrinsics(400.0, 400.0, 31.5, 31.5, 64, 64)
    # axis along camera x: rotate the cone's +z onto +x
    rot = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], float)
    def lying(radius, length, taper, z):
        t = np.eye(4)
        t[:3, :3] = rot @ np.diag([radius, radius, length])
        t[:3, 3] = (-length / 2, 0, z)
        return t
    with HypothesisRenderer(PrimitiveSet([CONE, CONE], [1.0, 0.5]), 64, 2, context=gl_context) as r:
        depth = r.render(np.stack([np.stack([lying(10, 60, 1.0, 500), lying(10, 60, 1.0, 5e5)]),
                                   np.stack([lying(10, 60, 1.0, 5e5), lying(10, 60, 0.5, 500)])]), cam)
    cyl, cone = depth
    # cylinder side-on: depth along the axis row is z - r; columns spanned = length * f / z
    assert cyl[31:33, 20:44].min() == pytest.approx(490.0, abs=0.05)
    assert abs(cyl[31].astype(bool).sum() - 60 * 400 / 500) <= 2
    rows = cyl.astype(bool).sum(0)
    assert rows[20:44].min() == rows[20:44].max()  # constant radius
    # cone: radius 10 at the left (-x) end, 5 at the right end
    heights = cone.astype(bool).sum(0)
    left, right = heights[9:14].mean(), heights[50:55].mean()
    assert left == pytest.approx(2 * 400 * 9.5 / 500, abs=2.0) and right == pytest.approx(2 * 400 * 5.5 / 500, abs=2.0)


def test_cone_end_cap_is_flat(gl_context):
    """A cylinder pointing away from the camera shows its bottom cap: constant depth, disc area."""
    cam = CameraIntrinsics(400.0, 400.0, 31.5, 31.5, 64, 64)
    with HypothesisRenderer(PrimitiveSet([CONE]), 64, 1, context=gl_context) as r:
        depth = r.render(translation(0, 0, 500, (20.0, 20.0, 50.0))[None, None], cam)[0]
    cap = depth[depth > 0]
    np.testing.assert_allclose(cap, 500.0, atol=1e-3)
    assert abs(cap.size / (math.pi * (400 * 20 / 500) ** 2) - 1) < 0.03


def _assert_same_tiles(a, b):
    """Same tiles up to float rounding of the interpolated rays, which matters only where a ray
    grazes a rim or two surfaces cross: at most 2 pixels per tile change coverage, 99% of the
    common pixels agree within 0.05 mm and all within 1 mm."""
    assert ((a > 0) != (b > 0)).sum() <= 2 * len(a)
    both = (a > 0) & (b > 0)
    diff = np.abs(a[both] - b[both])
    assert np.mean(diff < 0.05) >= 0.99 and diff.max() < 1.0


def test_tile_alone_equals_tile_in_grid(gl_context, vga_camera):
    rng = np.random.default_rng(3)
    hyps = _random_hand_like(rng, 40)
    roi = RegionOfInterest(230, 150, 410, 330)
    with HypothesisRenderer(HAND_SET, 64, 40, context=gl_context) as grid, \
            HypothesisRenderer(HAND_SET, 64, 1, context=gl_context) as alone:
        tiles = grid.render(hyps, vga_camera, roi)
        for k in (0, 7, 39):
            single = alone.render(hyps[k:k + 1], vga_camera, roi)[0]
            _assert_same_tiles(tiles[k:k + 1], single[None])
        assert (tiles > 0).mean() > 0.1


def test_primitives_are_clipped_to_their_tile(gl_context, vga_camera):
    """A sphere much larger than the tile must not bleed into neighbouring tiles."""
    far_away = translation(0, 0, -1000, (5.0,) * 3)  # behind the camera: renders nothing
    big = translation(0, 0, 600, (400.0,) * 3)
    hyps = np.stack([far_away, big, far_away, far_away])[:, None]
    with HypothesisRenderer(PrimitiveSet([SPHERE]), 32, 4, context=gl_context) as r:
        tiles = r.render(hyps, vga_camera, RegionOfInterest(300, 220, 340, 260))
    assert tiles[1].min() > 0
    assert tiles[[0, 2, 3]].max() == 0


def test_instanced_equals_naive(gl_context, vga_camera):
    hyps = _random_hand_like(np.random.default_rng(4), 9)
    roi = RegionOfInterest(250, 170, 390, 310)
    with HypothesisRenderer(HAND_SET, 48, 9, context=gl_context) as r:
        np.testing.assert_array_equal(r.render(hyps, vga_camera, roi), r.render(hyps, vga_camera, roi, instanced=False))


def test_batches_larger_than_capacity(gl_context, vga_camera):
    hyps = _random_hand_like(np.random.default_rng(5), 23)
    with HypothesisRenderer(HAND_SET, 32, 8, context=gl_context) as small, \
            HypothesisRenderer(HAND_SET, 32, 64, context=gl_context) as big:
        a, b = small.render(hyps, vga_camera), big.render(hyps, vga_camera)
    _assert_same_tiles(a, b)


def test_depth_test_keeps_the_nearest_surface(gl_context):
    cam = CameraIntrinsics(300.0, 300.0, 15.5, 15.5, 32, 32)
    near, far = translation(0, 0, 500, (20,) * 3), translation(0, 0, 530, (40,) * 3)
    with HypothesisRenderer(PrimitiveSet([SPHERE, SPHERE]), 32, 2, context=gl_context) as r:
        d = r.render(np.stack([np.stack([near, far]), np.stack([far, near])]), cam)
    np.testing.assert_array_equal(d[0], d[1])
    assert d[0][15:17, 15:17].min() == pytest.approx(480.0, abs=0.1)


def _tile_sums_reference(rendered, observed, mask, d_max, free_offset=False):
    """Plain loops, straight from the paper's definition; ``free_offset`` first moves the masked
    observation by the mean rendered - observed difference where both have depth."""
    out = []
    for r in rendered:
        o = observed.astype(float)
        if free_offset:
            both = (r > 0) & mask & (observed > 0)
            if both.any():
                o = np.where(mask, o + float(np.mean(r[both].astype(float) - o[both])), o)
        diff = union = inter = 0.0
        for i in range(r.shape[0]):
            for j in range(r.shape[1]):
                rm, om = r[i, j] > 0, bool(mask[i, j])
                if rm or om:
                    union += 1
                    diff += min(abs(float(o[i, j]) - float(r[i, j])), d_max)
                inter += rm and om
        out.append((diff, union, inter))
    return np.array(out)


def test_tile_sums_match_reference():
    rng = np.random.default_rng(6)
    rendered = np.where(rng.random((5, 12, 12)) < 0.4, rng.uniform(400, 700, (5, 12, 12)), 0).astype(np.float32)
    observed = np.where(rng.random((12, 12)) < 0.8, rng.uniform(400, 700, (12, 12)), 0).astype(np.float32)
    mask = (observed > 0) & (rng.random((12, 12)) < 0.6)
    for free in (False, True):
        sums = tile_sums(rendered, observed, mask, 40.0, free_offset=free)
        ref = _tile_sums_reference(rendered, observed, mask, 40.0, free_offset=free)
        np.testing.assert_allclose(np.stack(sums, -1), ref, rtol=1e-5)


def test_free_offset_ignores_a_constant_shift_of_the_observation():
    rng = np.random.default_rng(8)
    rendered = np.where(rng.random((4, 16, 16)) < 0.5, rng.uniform(450, 550, (4, 16, 16)), 0).astype(np.float32)
    observed = rendered[2] + rng.normal(0, 3, (16, 16)).astype(np.float32) * (rendered[2] > 0)
    mask = observed > 0
    base = np.stack(tile_sums(rendered, observed, mask, 40.0, free_offset=True), -1)
    moved = np.stack(tile_sums(rendered, np.where(mask, observed + 150, 0), mask, 40.0, free_offset=True), -1)
    np.testing.assert_allclose(moved, base, rtol=1e-4)
    fixed = np.stack(tile_sums(rendered, np.where(mask, observed + 150, 0), mask, 40.0), -1)
    assert fixed[2, 0] >= 0.99 * 40.0 * fixed[2, 1]  # without it, 150 mm clamps every pixel
    assert base[2, 0] < 5.0 * base[2, 1]  # with it, the noise is all that is left


def test_score_of_the_true_pose_is_best(gl_context, vga_camera):
    rng = np.random.default_rng(7)
    hyps = _random_hand_like(rng, 8)
    roi = RegionOfInterest(240, 160, 400, 320)
    with HypothesisRenderer(HAND_SET, 64, 8, context=gl_context) as r:
        observed = r.render(hyps[3:4], vga_camera, roi)[0]
        depth, sums = r.score(hyps, vga_camera, roi, observed, observed > 0, 40.0)
    assert sums.union[3] == sums.intersection[3] == (observed > 0).sum()
    assert sums.depth_diff[3] < 0.01 * sums.union[3]  # float rounding only: < 0.01 mm per pixel
    assert np.argmin(sums.depth_diff / sums.union - sums.intersection / sums.union) == 3


@pytest.mark.parametrize("bad, message", [
    (lambda t: t * np.nan, "non-finite"),
    (lambda t: t[:, :, :3], "shape"),
    (lambda t: t[:0], "at least one"),
    (lambda t: np.concatenate([t[..., :3, :], np.ones_like(t[..., :1, :])], -2), "affine"),
    (lambda t: t * np.array([0, 1, 1, 1.0])[:, None], "singular"),
])
def test_bad_transforms_raise(sphere_renderer, vga_camera, bad, message):
    good = translation(0, 0, 500, (10,) * 3)[None, None].repeat(2, 0)
    with pytest.raises(ValueError, match=message):
        sphere_renderer.render(bad(good), vga_camera)


@pytest.mark.parametrize("kwargs, message", [
    (dict(tile_size=0), "tile_size"), (dict(tile_size=-4), "tile_size"), (dict(capacity=0), "capacity"),
    (dict(near_mm=0.0), "near"),
])
def test_bad_renderer_arguments(gl_context, kwargs, message):
    with pytest.raises(ValueError, match=message):
        HypothesisRenderer(PrimitiveSet([SPHERE]), context=gl_context, **kwargs)


def test_bad_primitive_sets():
    with pytest.raises(ValueError, match="unknown primitive kind"):
        PrimitiveSet([0, 7])
    with pytest.raises(ValueError, match="taper"):
        PrimitiveSet([CONE], [-1.0])
    with pytest.raises(ValueError, match="taper has"):
        PrimitiveSet([CONE, CONE], [1.0])


def _ray_sphere_depth(cam, centre, radius):
    jj, ii = np.meshgrid(np.arange(cam.width), np.arange(cam.height))
    rays = np.stack([(jj - cam.cx) / cam.fx, (ii - cam.cy) / cam.fy, np.ones_like(jj, float)], -1)
    a = (rays ** 2).sum(-1)
    b = rays @ centre
    disc = b * b - a * (centre @ centre - radius ** 2)
    return np.where(disc > 0, (b - np.sqrt(np.maximum(disc, 0))) / a, 0.0), disc / (a * radius ** 2)


@pytest.mark.parametrize("mirror", [False, True])
def test_camera_inside_proxy_box_and_mirrored_transforms(gl_context, mirror):
    """The camera may sit inside a primitive's bounding box (near a big sphere), and transforms
    may mirror (left hands): the rendered surface is still the exact one."""
    cam = CameraIntrinsics(60.0, 60.0, 31.5, 31.5, 64, 64)
    centre, radius = np.array([40.0, 30.0, 80.0]), 70.0  # camera at the origin: inside the box, outside the sphere
    t = translation(*centre, (radius,) * 3)
    if mirror:
        t[:3, 0] *= -1
    with HypothesisRenderer(PrimitiveSet([SPHERE]), 64, 1, context=gl_context, near_mm=1.0) as r:
        depth = r.render(t[None, None], cam)[0]
    z_true, margin = _ray_sphere_depth(cam, centre, radius)
    inside = margin > 0.05
    assert inside.sum() > 500
    np.testing.assert_allclose(depth[inside], z_true[inside], atol=0.05)
