"""The cpu scorer's ray casting against a plain-numpy twin: every pixel, every primitive.

The kernel visits only each row's span where a ray's line can meet a primitive; the twin casts
every pixel's ray at every primitive. Seeded random scenes cover primitives in front of the
camera, straddling its plane, behind it, and around it (the camera inside a sphere or inside a
cone's bounding cylinder), with principal points inside and outside the tile.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from renderer.projection import DEFAULT_FAR_MM, DEFAULT_NEAR_MM
from tracker._kernels import render_tiles_kernel, score_tiles_kernel

SIZE = 40


def twin_render(T, kinds, taper, fx, fy, cx, cy, size=SIZE, near=DEFAULT_NEAR_MM, far=DEFAULT_FAR_MM):
    """Depth ``(size, size)`` of the nearest hit ahead (camera z), 0 where none: unit sphere, or the
    cone of radius 1 at z = 0 and ``taper`` at z = 1 with both caps, each mapped by ``T[p]``."""
    jj, ii = np.meshgrid(np.arange(size, dtype=float), np.arange(size, dtype=float))
    rays = np.stack([(jj - cx) / fx, (ii - cy) / fy, np.ones_like(jj)], axis=-1)  # camera z = 1
    best = np.full((size, size), np.inf)
    with np.errstate(all="ignore"):
        for p in range(len(kinds)):
            inv = np.linalg.inv(T[p, :3, :3])
            e = -inv @ T[p, :3, 3]
            d = rays @ inv.T
            dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
            hits = []
            if kinds[p] == 0:
                a = (d * d).sum(-1)
                b = d @ e
                disc = b * b - a * (e @ e - 1.0)
                s = np.sqrt(np.maximum(disc, 0.0))
                for t in ((-b - s) / a, (-b + s) / a):
                    hits.append(np.where((disc >= 0) & (t > 0), t, np.inf))
            else:
                k = taper[p] - 1.0
                ro = 1.0 + k * e[2]
                a = dx * dx + dy * dy - k * k * dz * dz
                b = e[0] * dx + e[1] * dy - k * dz * ro
                c = e[0] ** 2 + e[1] ** 2 - ro * ro
                disc = b * b - a * c
                s = np.sqrt(np.maximum(disc, 0.0))
                for t in ((-b - s) / a, (-b + s) / a):
                    z = e[2] + t * dz
                    hits.append(np.where((np.abs(a) > 1e-12) & (disc >= 0) & (t > 0) & (z >= 0) & (z <= 1)
                                         & (1 + k * z >= 0), t, np.inf))
                for z0, radius in ((0.0, 1.0), (1.0, taper[p])):
                    t = (z0 - e[2]) / dz
                    qx, qy = e[0] + t * dx, e[1] + t * dy
                    hits.append(np.where((np.abs(dz) > 1e-12) & (t > 0) & (qx * qx + qy * qy <= radius * radius),
                                         t, np.inf))
            best = np.minimum(best, np.min(hits, axis=0))
    return np.where((best >= near) & (best <= far), best, 0.0)


def _scene(rng, where: str):
    P = 6
    T = np.zeros((P, 4, 4))
    T[:, 3, 3] = 1.0
    kinds = rng.integers(0, 2, P)
    taper = rng.uniform(0.2, 1.6, P)
    for p in range(P):
        scale = rng.uniform(5, 40, 3)
        if kinds[p] == 1:
            scale[2] = rng.uniform(10, 60)
        A = Rotation.random(random_state=int(rng.integers(1 << 31))).as_matrix() @ np.diag(scale)
        if where == "front":
            t = np.array([rng.uniform(-150, 150), rng.uniform(-150, 150), rng.uniform(100, 600)])
        elif where == "straddling":
            t = np.array([rng.uniform(-80, 80), rng.uniform(-80, 80), rng.uniform(-40, 40)])
        elif where == "behind":
            t = np.array([rng.uniform(-300, 300), rng.uniform(-300, 300), rng.uniform(-400, -5)])
        else:  # around the camera: the camera inside the primitive or its bounding cylinder
            t = -A @ (rng.uniform(-0.9, 0.9, 3) * (0.5 if kinds[p] == 0 else 1.0))
        T[p, :3, :3], T[p, :3, 3] = A, t
    fx = rng.uniform(20, 400)
    return T, kinds.astype(np.int64), taper, fx, fx * rng.uniform(0.8, 1.2), rng.uniform(-30, SIZE + 30), \
        rng.uniform(-30, SIZE + 30)


@pytest.mark.parametrize("where", ["front", "straddling", "behind", "around"])
def test_kernel_renders_what_the_numpy_twin_renders(where):
    rng = np.random.default_rng(["front", "straddling", "behind", "around"].index(where))
    hits = mismatches = 0
    for _ in range(60):
        T, kinds, taper, fx, fy, cx, cy = _scene(rng, where)
        out = np.empty((1, SIZE, SIZE), np.float32)
        render_tiles_kernel(T[None], kinds, taper, fx, fy, cx, cy, DEFAULT_NEAR_MM, DEFAULT_FAR_MM, out)
        ref = twin_render(T, kinds, taper, fx, fy, cx, cy)
        got = out[0].astype(np.float64)
        both = (got > 0) & (ref > 0)
        hits += (ref > 0).sum()
        mismatches += ((got > 0) != (ref > 0)).sum()  # only rays grazing a surface may differ by rounding
        np.testing.assert_allclose(got[both], ref[both], rtol=1e-6)
    assert mismatches <= 1e-3 * max(hits, 1), (mismatches, hits)
    if where == "front":
        assert hits > 10_000  # the scenes are seen, not empty


def test_sums_follow_from_the_rendered_tile():
    rng = np.random.default_rng(7)
    for _ in range(50):  # a scene that shows something (random scenes can miss the tile)
        T, kinds, taper, fx, fy, cx, cy = _scene(rng, "front")
        ref = twin_render(T, kinds, taper, fx, fy, cx, cy)
        if (ref > 0).sum() > 100:
            break
    assert (ref > 0).sum() > 100
    observed = np.where(rng.random((SIZE, SIZE)) < 0.5, rng.uniform(100, 700, (SIZE, SIZE)), 0.0)
    mask = observed > 0
    for free in (False, True):
        sums = np.empty((1, 3))
        score_tiles_kernel(T[None], kinds, taper, fx, fy, cx, cy, DEFAULT_NEAR_MM, DEFAULT_FAR_MM, observed, mask,
                           40.0, free, sums)
        rm = ref > 0
        both = rm & mask
        delta = (ref[both] - observed[both]).mean() if free and both.any() else 0.0
        o = np.where(mask, observed + delta, observed)
        union = rm | mask
        assert sums[0, 1] == union.sum() and sums[0, 2] == both.sum()
        assert sums[0, 0] == pytest.approx(np.minimum(np.abs(o - np.where(rm, ref, 0.0)), 40.0)[union].sum(),
                                           rel=1e-6)


def test_surfaces_outside_the_mask_hide_what_lies_behind_them():
    """Outside the hand mask a negative observation -s is a surface that is not the hand: a
    rendered pixel more than OCCLUDER_MARGIN_MM behind it is not scored, one in front of it
    counts as against no reading; the renderer's sums (GL backend) agree."""
    from renderer._kernels import OCCLUDER_MARGIN_MM as RENDERER_MARGIN
    from renderer.tiled import tile_sums
    from tracker._kernels import OCCLUDER_MARGIN_MM

    assert OCCLUDER_MARGIN_MM == RENDERER_MARGIN
    rng = np.random.default_rng(8)
    for _ in range(50):
        T, kinds, taper, fx, fy, cx, cy = _scene(rng, "front")
        ref = twin_render(T, kinds, taper, fx, fy, cx, cy)
        if (ref > 0).sum() > 100:
            break
    rm = ref > 0
    mask = rng.random((SIZE, SIZE)) < 0.4
    surface = np.where(rng.random((SIZE, SIZE)) < 0.5, ref - rng.uniform(-60, 60, (SIZE, SIZE)), 300.0)
    observed = np.where(mask, rng.uniform(100, 700, (SIZE, SIZE)), -np.clip(surface, 1.0, None))
    hidden = rm & ~mask & (-observed < ref - OCCLUDER_MARGIN_MM)
    assert 50 < hidden.sum() < (rm & ~mask).sum()  # some hidden, some not
    sums = np.empty((1, 3))
    score_tiles_kernel(T[None], kinds, taper, fx, fy, cx, cy, DEFAULT_NEAR_MM, DEFAULT_FAR_MM, observed, mask,
                       40.0, False, sums)
    o = np.where(mask, observed, 0.0)
    union = (rm | mask) & ~hidden
    expected = np.minimum(np.abs(o - np.where(rm, ref, 0.0)), 40.0)[union].sum()
    assert sums[0, 1] == union.sum() and sums[0, 2] == (rm & mask).sum()
    assert sums[0, 0] == pytest.approx(expected, rel=1e-6)
    gl = tile_sums(ref[None].astype(np.float32), observed.astype(np.float32), mask, 40.0)
    assert gl.union[0] == union.sum() and gl.depth_diff[0] == pytest.approx(expected, rel=1e-5)
