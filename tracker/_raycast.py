"""numba ray casting of primitive hypotheses into tiles: the tracker's CPU scoring backend.

The same quadrics as the GL renderer (``renderer.tiled``: unit sphere; capped truncated cone
around +z with radius 1 at z = 0 and ``taper`` at z = 1), intersected exactly per pixel, so both
backends produce the same depth up to float rounding. Each primitive only visits the pixels of
its projected bounding box. Parallel over hypotheses; pure functions over arrays.
"""

from __future__ import annotations

import math

import numba
import numpy as np

JIT = dict(nogil=True, cache=True, fastmath=False)

_NO_HIT = 1e30


@numba.njit(**JIT)
def _hit_sphere(ox, oy, oz, dx, dy, dz):
    a = dx * dx + dy * dy + dz * dz
    b = ox * dx + oy * dy + oz * dz
    c = ox * ox + oy * oy + oz * oz - 1.0
    disc = b * b - a * c
    if disc < 0.0:
        return _NO_HIT
    s = math.sqrt(disc)
    t0 = (-b - s) / a
    if t0 > 0.0:
        return t0
    t1 = (-b + s) / a
    return t1 if t1 > 0.0 else _NO_HIT


@numba.njit(**JIT)
def _hit_cone(ox, oy, oz, dx, dy, dz, taper):
    k = taper - 1.0
    best = _NO_HIT
    ro = 1.0 + k * oz
    a = dx * dx + dy * dy - k * k * dz * dz
    b = ox * dx + oy * dy - k * dz * ro
    c = ox * ox + oy * oy - ro * ro
    if abs(a) > 1e-12:
        disc = b * b - a * c
        if disc >= 0.0:
            s = math.sqrt(disc)
            for t in ((-b - s) / a, (-b + s) / a):
                z = oz + t * dz
                if t > 0.0 and t < best and z >= 0.0 and z <= 1.0 and 1.0 + k * z >= 0.0:
                    best = t
    elif abs(b) > 1e-12:
        t = -c / (2.0 * b)
        z = oz + t * dz
        if t > 0.0 and z >= 0.0 and z <= 1.0:
            best = t
    if abs(dz) > 1e-12:
        t = -oz / dz
        qx, qy = ox + t * dx, oy + t * dy
        if t > 0.0 and t < best and qx * qx + qy * qy <= 1.0:
            best = t
        t = (1.0 - oz) / dz
        qx, qy = ox + t * dx, oy + t * dy
        if t > 0.0 and t < best and qx * qx + qy * qy <= taper * taper:
            best = t
    return best


@numba.njit(**JIT)
def _render_one(transforms, kinds, taper, fx, fy, cx, cy, size, zbuf):
    """Ray-cast one hypothesis's P primitives into zbuf (size, size), initialised to _NO_HIT."""
    P = transforms.shape[0]
    for p in range(P):
        A = transforms[p, :3, :3]
        t = transforms[p, :3, 3]
        # inverse of the affine part (3x3 adjugate)
        a00, a01, a02 = A[0, 0], A[0, 1], A[0, 2]
        a10, a11, a12 = A[1, 0], A[1, 1], A[1, 2]
        a20, a21, a22 = A[2, 0], A[2, 1], A[2, 2]
        det = a00 * (a11 * a22 - a12 * a21) - a01 * (a10 * a22 - a12 * a20) + a02 * (a10 * a21 - a11 * a20)
        if abs(det) < 1e-12:
            continue
        inv = np.empty((3, 3))
        inv[0, 0] = (a11 * a22 - a12 * a21) / det
        inv[0, 1] = (a02 * a21 - a01 * a22) / det
        inv[0, 2] = (a01 * a12 - a02 * a11) / det
        inv[1, 0] = (a12 * a20 - a10 * a22) / det
        inv[1, 1] = (a00 * a22 - a02 * a20) / det
        inv[1, 2] = (a02 * a10 - a00 * a12) / det
        inv[2, 0] = (a10 * a21 - a11 * a20) / det
        inv[2, 1] = (a01 * a20 - a00 * a21) / det
        inv[2, 2] = (a00 * a11 - a01 * a10) / det
        # camera centre in object space
        ex = -(inv[0, 0] * t[0] + inv[0, 1] * t[1] + inv[0, 2] * t[2])
        ey = -(inv[1, 0] * t[0] + inv[1, 1] * t[1] + inv[1, 2] * t[2])
        ez = -(inv[2, 0] * t[0] + inv[2, 1] * t[1] + inv[2, 2] * t[2])
        cone = kinds[p] == 1
        tp = taper[p]
        # exact camera-axis-aligned bounding box of the primitive: an ellipsoid's half extent
        # along camera axis k is the norm of row k of A; a capped cone is the union of its end discs
        lo = np.empty(3)
        hi = np.empty(3)
        for k in range(3):
            if cone:
                rk = math.sqrt(A[k, 0] * A[k, 0] + A[k, 1] * A[k, 1])
                c0, c1 = t[k], t[k] + A[k, 2]
                lo[k] = min(c0 - rk, c1 - tp * rk)
                hi[k] = max(c0 + rk, c1 + tp * rk)
            else:
                rk = math.sqrt(A[k, 0] * A[k, 0] + A[k, 1] * A[k, 1] + A[k, 2] * A[k, 2])
                lo[k] = t[k] - rk
                hi[k] = t[k] + rk
        # its screen bounding box from the box's 8 corners
        umin, umax, vmin, vmax = 1e30, -1e30, 1e30, -1e30
        behind = False
        for i in range(8):
            X = hi[0] if (i & 1) else lo[0]
            Y = hi[1] if (i & 2) else lo[1]
            Z = hi[2] if (i & 4) else lo[2]
            if Z <= 1e-3:
                behind = True
                break
            u = fx * X / Z + cx
            v = fy * Y / Z + cy
            umin, umax = min(umin, u), max(umax, u)
            vmin, vmax = min(vmin, v), max(vmax, v)
        if behind:
            i0, i1, j0, j1 = 0, size - 1, 0, size - 1
        else:
            j0 = max(0, int(math.floor(umin)))
            j1 = min(size - 1, int(math.ceil(umax)))
            i0 = max(0, int(math.floor(vmin)))
            i1 = min(size - 1, int(math.ceil(vmax)))
        for i in range(i0, i1 + 1):
            ry = (i - cy) / fy
            for j in range(j0, j1 + 1):
                rx = (j - cx) / fx
                # ray direction in object space (camera ray (rx, ry, 1): hit parameter = camera z)
                dx = inv[0, 0] * rx + inv[0, 1] * ry + inv[0, 2]
                dy = inv[1, 0] * rx + inv[1, 1] * ry + inv[1, 2]
                dz = inv[2, 0] * rx + inv[2, 1] * ry + inv[2, 2]
                if cone:
                    hit = _hit_cone(ex, ey, ez, dx, dy, dz, tp)
                else:
                    hit = _hit_sphere(ex, ey, ez, dx, dy, dz)
                if hit < zbuf[i, j]:
                    zbuf[i, j] = hit


@numba.njit(parallel=True, **JIT)
def render_tiles_kernel(transforms, kinds, taper, fx, fy, cx, cy, near, far, out):
    """transforms (N, P, 4, 4), kinds (P,) int, taper (P,) -> out (N, T, T) float32 depth, 0 = none."""
    n = transforms.shape[0]
    size = out.shape[1]
    for h in numba.prange(n):
        zbuf = np.full((size, size), _NO_HIT)
        _render_one(transforms[h], kinds, taper, fx, fy, cx, cy, size, zbuf)
        for i in range(size):
            for j in range(size):
                z = zbuf[i, j]
                out[h, i, j] = z if (z >= near and z <= far) else 0.0


@numba.njit(parallel=True, **JIT)
def score_tiles_kernel(transforms, kinds, taper, fx, fy, cx, cy, near, far, observed, mask, d_max, free_offset, sums):
    """Ray-cast and reduce at once: sums (N, 3) = (sum over union of min(|o + delta - r|, d_max),
    union count, intersection count); observed (T, T) mm, mask (T, T) bool. delta = 0, or with
    ``free_offset`` the mean of r - o over the pixels both cover (observed depth known only up
    to a constant, as relative depth from RGB). The same sums as ``renderer.tiled.tile_sums``
    (kept apart: numba's cache does not see a change in another module's callee; tests pin both)."""
    n = transforms.shape[0]
    size = observed.shape[0]
    for h in numba.prange(n):
        zbuf = np.full((size, size), _NO_HIT)
        _render_one(transforms[h], kinds, taper, fx, fy, cx, cy, size, zbuf)
        delta = 0.0
        if free_offset:
            acc = 0.0
            cnt = 0
            for i in range(size):
                for j in range(size):
                    z = zbuf[i, j]
                    if z >= near and z <= far and mask[i, j] and observed[i, j] > 0.0:
                        acc += z - observed[i, j]
                        cnt += 1
            if cnt > 0:
                delta = acc / cnt
        diff = 0.0
        union = 0
        inter = 0
        for i in range(size):
            for j in range(size):
                z = zbuf[i, j]
                rm = z >= near and z <= far
                r = z if rm else 0.0
                om = mask[i, j]
                if rm or om:
                    union += 1
                    o = observed[i, j] + delta if om else observed[i, j]
                    d = abs(o - r)
                    diff += d if d < d_max else d_max
                    if rm and om:
                        inter += 1
        sums[h, 0] = diff
        sums[h, 1] = union
        sums[h, 2] = inter
