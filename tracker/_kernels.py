"""numba kernels of the tracker: the hand model (forward kinematics, primitive placement), ray
casting and scoring (the ``cpu`` backend), the PSO move, and the whole PSO run on that backend.

Pure functions over arrays; ``tracker.kinematics``, ``tracker.objective`` and ``tracker.pso``
check inputs and wrap them. Every kernel has a plain-numpy twin in the tests
(tests/naive_hand.py, tests/test_raycast.py, tests/test_tracker.py). They live in one file on
purpose: numba's cache is invalidated when a kernel's own file changes, not when a callee's in
another file does, and ``pso_hand_kernel`` calls all the others.

**Hand model.** Forward kinematics and primitive placement run serially: a hypothesis costs
microseconds, less than waking threads (the scoring kernel after them is the parallel one).

**Ray casting.** The same quadrics as the GL renderer (``renderer.tiled``: unit sphere; capped
truncated cone around +z with radius 1 at z = 0 and ``taper`` at z = 1), intersected exactly per
pixel, so both backends produce the same depth up to float rounding. Parallel over hypotheses.
Each primitive visits, row by row, only the pixels whose rays can meet it: within the projection
of its camera-axis box, and within the span where the ray's line meets the ellipsoid (spheres) or
the infinite cylinder around the cone's axis that holds the frustum (cones). That span is the
solution of a quadratic in the pixel's x, per row. The per-pixel intersections are written
without branches (selects) in loops that count from 0, so LLVM vectorises them (AVX2: 4 doubles),
and ``error_model="numpy"`` drops the division-by-zero checks that would stop it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

JIT = dict(nogil=True, cache=True, fastmath=False)
# the ray casting: no division-by-zero checks, so the intersection loops vectorise
JIT_RAYS = dict(nogil=True, cache=True, fastmath=False, error_model="numpy")
_NO_HIT = 1e30

NUM_FRAMES = 16  # hand frame + 5 chains x 3 segments
NUM_PRIMITIVES = 37  # the hand's; a model with a forearm has one more (FOREARM_SLOT)
#: the forearm primitive (``HandModel(..., forearm=True)``, the tracker's): an elliptic cone rigid
#: with the palm, from the palm's heel away from the fingers; half width and half thickness at
#: the heel as fractions of the palm's, length (mm of the 180 mm geometry) and widening taper
FOREARM_SLOT = 37
FOREARM_WIDTH, FOREARM_THICKNESS, FOREARM_LENGTH_MM, FOREARM_TAPER = 0.8, 1.0, 120.0, 1.2


@numba.njit(**JIT)
def _set_rot_x(a, out):
    c, s = math.cos(a), math.sin(a)
    out[0, 0], out[0, 1], out[0, 2] = 1.0, 0.0, 0.0
    out[1, 0], out[1, 1], out[1, 2] = 0.0, c, -s
    out[2, 0], out[2, 1], out[2, 2] = 0.0, s, c


@numba.njit(**JIT)
def _set_rot_z(a, out):
    c, s = math.cos(a), math.sin(a)
    out[0, 0], out[0, 1], out[0, 2] = c, -s, 0.0
    out[1, 0], out[1, 1], out[1, 2] = s, c, 0.0
    out[2, 0], out[2, 1], out[2, 2] = 0.0, 0.0, 1.0


@numba.njit(**JIT)
def _set_rot_axis(axis, a, out):
    """Rodrigues: rotation by ``a`` about the unit ``axis``."""
    x, y, z = axis[0], axis[1], axis[2]
    c, s = math.cos(a), math.sin(a)
    t = 1.0 - c
    out[0, 0], out[0, 1], out[0, 2] = t * x * x + c, t * x * y - s * z, t * x * z + s * y
    out[1, 0], out[1, 1], out[1, 2] = t * x * y + s * z, t * y * y + c, t * y * z - s * x
    out[2, 0], out[2, 1], out[2, 2] = t * x * z - s * y, t * y * z + s * x, t * z * z + c


@numba.njit(**JIT)
def _set_quat_matrix(w, x, y, z, out):
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    out[0, 0], out[0, 1], out[0, 2] = 1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)
    out[1, 0], out[1, 1], out[1, 2] = 2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)
    out[2, 0], out[2, 1], out[2, 2] = 2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)


@numba.njit(**JIT)
def _matmul3(A, B, out):
    """out = A @ B for 3 x 3 (out must not alias A or B): plain loops, no BLAS call per product."""
    for r in range(3):
        a0, a1, a2 = A[r, 0], A[r, 1], A[r, 2]
        for c in range(3):
            out[r, c] = a0 * B[0, c] + a1 * B[1, c] + a2 * B[2, c]


@numba.njit(**JIT)
def _affine(G, v, t, out):
    """out = G @ v + t for a 3 x 3 ``G`` and 3-vectors."""
    for r in range(3):
        out[r] = G[r, 0] * v[0] + G[r, 1] * v[1] + G[r, 2] * v[2] + t[r]


@numba.njit(**JIT)
def forward_kinematics_kernel(params, wrist, base, base_rot, abd_sign, joint_axes, lengths, scale, mirror,
                              joints, frames):
    """params (N, 27) -> joints (N, 21, 3) and frames (N, 16, 3, 4), world (camera) frame, mm.

    frames[:, 0] is the hand frame; frames[:, 1 + 3 f + k] the frame of segment k of chain f,
    its origin at the segment's first joint, y along the segment. Each frame is [A | o] with
    A = R(q) M s R_local (M = diag(mirror, 1, 1), s = scale): local millimetres of the default
    hand -> camera millimetres. Scratch matrices are allocated once per call, and 3 x 3 products
    are written out: a hypothesis costs about a microsecond.
    """
    n = params.shape[0]
    G = np.empty((3, 3))
    R = np.empty((3, 3))
    S = np.empty((3, 3))
    T = np.empty((3, 3))
    U = np.empty((3, 3))
    pos = np.empty(3)
    for h in range(n):
        p = params[h]
        _set_quat_matrix(p[3], p[4], p[5], p[6], S)
        for r in range(3):  # G = R(q) @ diag(mirror, 1, 1) * scale
            G[r, 0] = S[r, 0] * mirror * scale
            G[r, 1] = S[r, 1] * scale
            G[r, 2] = S[r, 2] * scale
        t = p[0:3]
        frames[h, 0, :, :3] = G
        frames[h, 0, :, 3] = t
        _affine(G, wrist, t, joints[h, 0])
        for f in range(5):
            # thumb: CMC flexion, CMC abduction, MCP, IP; fingers: MCP flexion, abduction, PIP, DIP
            flex1, abd, flex2, flex3 = p[7 + 4 * f], p[8 + 4 * f], p[9 + 4 * f], p[10 + 4 * f]
            _set_rot_z(abd_sign[f] * abd, S)
            _matmul3(base_rot[f], S, T)
            _set_rot_x(flex1, S)
            _matmul3(T, S, R)  # R = base_rot @ Rz(abduction) @ Rx(flexion)
            pos[:] = base[f]
            _affine(G, pos, t, joints[h, 1 + 4 * f])
            for k in range(3):
                if k > 0:
                    _set_rot_axis(joint_axes[f, k - 1], flex2 if k == 1 else flex3, S)
                    _matmul3(R, S, U)
                    R[:, :] = U
                fi = 1 + 3 * f + k
                _matmul3(G, R, frames[h, fi, :, :3])
                _affine(G, pos, t, frames[h, fi, :, 3])
                for r in range(3):
                    pos[r] += lengths[f, k] * R[r, 1]
                _affine(G, pos, t, joints[h, 2 + 4 * f + k])


@numba.njit(**JIT)
def primitive_transforms_kernel(frames, lengths, radii, palm, thumb_meta, out):
    """frames (N, 16, 3, 4) -> out (N, 37, 4, 4) unit-primitive -> camera transforms, or
    (N, 38, 4, 4) with the forearm cone last (``FOREARM_SLOT``).

    palm = (half_width, half_thickness, bottom_y, top_y, cap) mm; thumb_meta = ellipsoid
    semi-axes (across, along, thickness) mm of the thumb metacarpal. Layout: see
    tracker.kinematics.PRIMITIVE_LAYOUT.
    """
    n = frames.shape[0]
    for h in range(n):
        for i in range(out.shape[1]):
            for r in range(4):
                for c in range(4):
                    out[h, i, r, c] = 0.0
            out[h, i, 3, 3] = 1.0
        A0 = frames[h, 0, :, :3]
        o0 = frames[h, 0, :, 3]
        hw, ht, yb, yt, cap = palm[0], palm[1], palm[2], palm[3], palm[4]
        # 0: palm elliptic cylinder from y = bottom to y = top (along -y), 1-2: ellipsoid caps
        for r in range(3):
            out[h, 0, r, 0] = A0[r, 0] * hw
            out[h, 0, r, 1] = A0[r, 2] * ht
            out[h, 0, r, 2] = -A0[r, 1] * (yb - yt)
            out[h, 0, r, 3] = o0[r] + A0[r, 1] * yb
            for j, y in ((1, yb), (2, yt)):
                out[h, j, r, 0] = A0[r, 0] * hw
                out[h, j, r, 1] = A0[r, 1] * cap
                out[h, j, r, 2] = A0[r, 2] * ht
                out[h, j, r, 3] = o0[r] + A0[r, 1] * y
        slot = 3
        for f in range(5):
            for k in range(3):
                A = frames[h, 1 + 3 * f + k, :, :3]
                o = frames[h, 1 + 3 * f + k, :, 3]
                L = lengths[f, k]
                ra, rb = radii[f, k], radii[f, k + 1]
                if f == 0 and k == 0:
                    # thumb metacarpal: ellipsoid centred on the segment
                    for r in range(3):
                        out[h, slot, r, 0] = A[r, 0] * thumb_meta[0]
                        out[h, slot, r, 1] = A[r, 1] * thumb_meta[1]
                        out[h, slot, r, 2] = A[r, 2] * thumb_meta[2]
                        out[h, slot, r, 3] = o[r] + A[r, 1] * 0.5 * L
                    slot += 1
                    continue
                if k == 0 or f == 0:
                    # sphere at the segment's first joint (finger MCP, PIP, DIP; thumb MCP, IP)
                    for r in range(3):
                        for c in range(3):
                            out[h, slot, r, c] = A[r, c] * ra
                        out[h, slot, r, 3] = o[r]
                    slot += 1
                # cone from this joint to the next (to the tip sphere's centre on the last segment)
                end = L - rb if k == 2 else L
                for r in range(3):
                    out[h, slot, r, 0] = A[r, 2] * ra
                    out[h, slot, r, 1] = A[r, 0] * ra
                    out[h, slot, r, 2] = A[r, 1] * end
                    out[h, slot, r, 3] = o[r]
                slot += 1
                if f > 0 or k == 2:
                    # sphere at the next joint (the tip sphere touches the fingertip)
                    for r in range(3):
                        for c in range(3):
                            out[h, slot, r, c] = A[r, c] * rb
                        out[h, slot, r, 3] = o[r] + A[r, 1] * end
                    slot += 1
        if out.shape[1] > FOREARM_SLOT:
            # the forearm: elliptic cone from the palm's heel (y = bottom) along +y (away from the fingers)
            for r in range(3):
                out[h, FOREARM_SLOT, r, 0] = A0[r, 0] * FOREARM_WIDTH * hw
                out[h, FOREARM_SLOT, r, 1] = A0[r, 2] * FOREARM_THICKNESS * ht
                out[h, FOREARM_SLOT, r, 2] = A0[r, 1] * FOREARM_LENGTH_MM
                out[h, FOREARM_SLOT, r, 3] = o0[r] + A0[r, 1] * yb


# ---- ray casting and scoring (the cpu backend) ------------------------------------------------
@numba.njit(**JIT_RAYS)
def _render_one(transforms, kinds, taper, fx, fy, cx, cy, size, zbuf):
    """Ray-cast one hypothesis's P primitives into zbuf (size, size), initialised to _NO_HIT."""
    P = transforms.shape[0]
    for p in range(P):
        T = transforms[p]
        a00, a01, a02, t0 = T[0, 0], T[0, 1], T[0, 2], T[0, 3]
        a10, a11, a12, t1 = T[1, 0], T[1, 1], T[1, 2], T[1, 3]
        a20, a21, a22, t2 = T[2, 0], T[2, 1], T[2, 2], T[2, 3]
        det = a00 * (a11 * a22 - a12 * a21) - a01 * (a10 * a22 - a12 * a20) + a02 * (a10 * a21 - a11 * a20)
        if abs(det) < 1e-12:
            continue
        i00 = (a11 * a22 - a12 * a21) / det
        i01 = (a02 * a21 - a01 * a22) / det
        i02 = (a01 * a12 - a02 * a11) / det
        i10 = (a12 * a20 - a10 * a22) / det
        i11 = (a00 * a22 - a02 * a20) / det
        i12 = (a02 * a10 - a00 * a12) / det
        i20 = (a10 * a21 - a11 * a20) / det
        i21 = (a01 * a20 - a00 * a21) / det
        i22 = (a00 * a11 - a01 * a10) / det
        # camera centre in object space
        ex = -(i00 * t0 + i01 * t1 + i02 * t2)
        ey = -(i10 * t0 + i11 * t1 + i12 * t2)
        ez = -(i20 * t0 + i21 * t1 + i22 * t2)
        cone = kinds[p] == 1
        tp = taper[p]
        # exact camera-axis-aligned bounding box of the primitive: an ellipsoid's half extent
        # along camera axis k is the norm of row k of A; a capped cone is the union of its end discs
        if cone:
            r0 = math.sqrt(a00 * a00 + a01 * a01)
            r1 = math.sqrt(a10 * a10 + a11 * a11)
            r2 = math.sqrt(a20 * a20 + a21 * a21)
            lo0, hi0 = min(t0 - r0, t0 + a02 - tp * r0), max(t0 + r0, t0 + a02 + tp * r0)
            lo1, hi1 = min(t1 - r1, t1 + a12 - tp * r1), max(t1 + r1, t1 + a12 + tp * r1)
            lo2, hi2 = min(t2 - r2, t2 + a22 - tp * r2), max(t2 + r2, t2 + a22 + tp * r2)
        else:
            r0 = math.sqrt(a00 * a00 + a01 * a01 + a02 * a02)
            r1 = math.sqrt(a10 * a10 + a11 * a11 + a12 * a12)
            r2 = math.sqrt(a20 * a20 + a21 * a21 + a22 * a22)
            lo0, hi0, lo1, hi1, lo2, hi2 = t0 - r0, t0 + r0, t1 - r1, t1 + r1, t2 - r2, t2 + r2
        if lo2 <= 1e-3:
            i0, i1, j0, j1 = 0, size - 1, 0, size - 1
        else:
            # screen box of the camera box: u = fx X / Z + cx is extreme at the box's corners
            umin = fx * min(lo0 / lo2, lo0 / hi2) + cx
            umax = fx * max(hi0 / lo2, hi0 / hi2) + cx
            vmin = fy * min(lo1 / lo2, lo1 / hi2) + cy
            vmax = fy * max(hi1 / lo2, hi1 / hi2) + cy
            j0 = max(0, int(math.floor(umin)))
            j1 = min(size - 1, int(math.ceil(umax)))
            i0 = max(0, int(math.floor(vmin)))
            i1 = min(size - 1, int(math.ceil(vmax)))
        # ellipsoid outline per row: the ray (rx, ry, 1) hits the unit sphere in object space iff
        # disc(rx) = (e.d)^2 - (d.d)(e.e - 1) >= 0 with d = rx u + w, a quadratic in rx
        # cones: the same for the infinite cylinder x^2 + y^2 <= max(1, taper)^2 around the cone's
        # axis (x, y only), which holds the whole frustum: rows shrink to the strip it covers
        kz = 0.0 if cone else 1.0
        rc = max(1.0, tp) if cone else 1.0
        C = ex * ex + ey * ey + kz * ez * ez - rc * rc
        ue = i00 * ex + i10 * ey + kz * i20 * ez  # e . u with u = column 0 of inv
        uu = i00 * i00 + i10 * i10 + kz * i20 * i20
        for i in range(i0, i1 + 1):
            ry = (i - cy) / fy
            # w = inv @ (0, ry, 1)
            wx = i01 * ry + i02
            wy = i11 * ry + i12
            wz = i21 * ry + i22
            jj0, jj1 = j0, j1
            if C > 0.0:
                we = wx * ex + wy * ey + kz * wz * ez
                uw = i00 * wx + i10 * wy + kz * i20 * wz
                ww = wx * wx + wy * wy + kz * wz * wz
                qa = ue * ue - uu * C
                qb = ue * we - uw * C
                qc = we * we - ww * C
                if qa < 0.0:
                    dq = qb * qb - qa * qc
                    if dq < 0.0:
                        continue
                    sq = math.sqrt(dq)
                    ra = fx * ((-qb + sq) / qa) + cx
                    rb = fx * ((-qb - sq) / qa) + cx
                    # the span's pixels, one more each side against rounding at a tangent; converted
                    # only inside the box (an endpoint may be huge, or NaN: then the box stands)
                    ulo, uhi = min(ra, rb) - 1.0, max(ra, rb) + 1.0
                    if ulo > j1 or uhi < j0:
                        continue  # the span misses the box (also keeps huge endpoints out of int())
                    if ulo > j0:
                        jj0 = int(math.floor(ulo))
                    if uhi < j1:
                        jj1 = int(math.ceil(uhi))
            if jj1 < jj0:
                continue  # nothing in this row (an empty slice below would wrap around)
            # a span of 4k + 2 or 4k + 3 pixels is cheaper as 4k + 4: whole AVX2 vectors, no
            # scalar remainder (the extra pixels' rays are intersected exactly like the others)
            pad = (4 - (jj1 - jj0 + 1) % 4) % 4
            if pad == 1 or pad == 2:
                grow = min(pad, size - 1 - jj1)
                jj1 += grow
                jj0 = max(jj0 - (pad - grow), 0)
            if cone:
                _cone_row(zbuf[i], jj0, jj1, cx, fx, i00, i10, i20, wx, wy, wz, ex, ey, ez, tp)
            else:
                _sphere_row(zbuf[i], jj0, jj1, cx, fx, i00, i10, i20, wx, wy, wz, ex, ey, ez, C)


@numba.njit(**JIT_RAYS)
def _sphere_row(row, j0, j1, cx, fx, ux, uy, uz, wx, wy, wz, ex, ey, ez, C):
    """Nearest hits of the rays of pixels j0..j1 of one row with the unit sphere (object space:
    camera centre ``e``, ray direction ``rx u + w``, ``C = e.e - 1``), min-ed into ``row``.
    Branch-free (selects) over a loop from 0, so it vectorises."""
    seg = row[j0:j1 + 1]
    ifx = 1.0 / fx
    for q in range(seg.shape[0]):  # from 0: no negative-index wraparound, so the loop vectorises
        rx = (q + j0 - cx) * ifx
        dx = ux * rx + wx
        dy = uy * rx + wy
        dz = uz * rx + wz
        a = dx * dx + dy * dy + dz * dz
        b = ex * dx + ey * dy + ez * dz
        disc = b * b - a * C
        s = math.sqrt(max(disc, 0.0))
        ia = 1.0 / a
        t0 = (-b - s) * ia
        t1 = (-b + s) * ia
        hit = t0 if t0 > 0.0 else (t1 if t1 > 0.0 else _NO_HIT)
        hit = hit if disc >= 0.0 else _NO_HIT
        seg[q] = hit if hit < seg[q] else seg[q]


@numba.njit(**JIT_RAYS)
def _cone_row(row, j0, j1, cx, fx, ux, uy, uz, wx, wy, wz, ox, oy, oz, taper):
    """As ``_sphere_row`` for the capped truncated cone: its lateral surface (both roots, within
    0 <= z <= 1), the degenerate linear case, and the two cap discs; the nearest hit ahead."""
    k = taper - 1.0
    ro = 1.0 + k * oz
    c = ox * ox + oy * oy - ro * ro
    seg = row[j0:j1 + 1]
    ifx = 1.0 / fx
    flat = 0
    for q in range(seg.shape[0]):
        rx = (q + j0 - cx) * ifx
        dx = ux * rx + wx
        dy = uy * rx + wy
        dz = uz * rx + wz
        best = _NO_HIT
        a = dx * dx + dy * dy - k * k * dz * dz
        b = ox * dx + oy * dy - k * dz * ro
        quad = abs(a) > 1e-12
        a_ = a if quad else 1.0
        disc = b * b - a_ * c
        s = math.sqrt(max(disc, 0.0))
        ok = quad & (disc >= 0.0)
        ia = 1.0 / a_
        t = (-b - s) * ia
        z = oz + t * dz
        best = t if ok & (t > 0.0) & (t < best) & (z >= 0.0) & (z <= 1.0) & (1.0 + k * z >= 0.0) else best
        t = (-b + s) * ia
        z = oz + t * dz
        best = t if ok & (t > 0.0) & (t < best) & (z >= 0.0) & (z <= 1.0) & (1.0 + k * z >= 0.0) else best
        flat += not quad
        caps = abs(dz) > 1e-12
        dz_ = dz if caps else 1.0
        idz = 1.0 / dz_
        t = -oz * idz
        qx, qy = ox + t * dx, oy + t * dy
        best = t if caps & (t > 0.0) & (t < best) & (qx * qx + qy * qy <= 1.0) else best
        t = (1.0 - oz) * idz
        qx, qy = ox + t * dx, oy + t * dy
        best = t if caps & (t > 0.0) & (t < best) & (qx * qx + qy * qy <= taper * taper) else best
        seg[q] = best if best < seg[q] else seg[q]
    if flat:
        # rays parallel to the cone's surface (a = 0, next to never): the lateral equation is
        # linear; solved here, off the vectorised loop
        for q in range(seg.shape[0]):
            rx = (q + j0 - cx) * ifx
            dx = ux * rx + wx
            dy = uy * rx + wy
            dz = uz * rx + wz
            a = dx * dx + dy * dy - k * k * dz * dz
            b = ox * dx + oy * dy - k * dz * ro
            if abs(a) <= 1e-12 and abs(b) > 1e-12:
                t = -c / (2.0 * b)
                z = oz + t * dz
                if t > 0.0 and z >= 0.0 and z <= 1.0 and t < seg[q]:
                    seg[q] = t


@numba.njit(parallel=True, **JIT_RAYS)
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


#: ``renderer._kernels.OCCLUDER_MARGIN_MM`` (a test pins the two): a rendered pixel more than
#: this behind an observed surface that is not the hand is hidden
OCCLUDER_MARGIN_MM = 10.0


@numba.njit(nogil=True, cache=True, error_model="numpy", fastmath={"reassoc"})
def _tile_sums(zbuf, observed, mask, near, far, d_max, free_offset):
    """The objective's three sums over one tile (flat arrays): sum over the union of
    min(|o + delta - r|, d_max), the union count and the intersection count; ``free_offset``:
    delta is the mean of r - o over the pixels both cover, else 0. Outside the mask a negative
    observation -s is a surface that is not the hand: a rendered pixel more than
    ``OCCLUDER_MARGIN_MM`` behind it is hidden (not scored), else it counts as no reading (as
    ``renderer._kernels.tile_sums_kernel``). Branch-free loops from 0, and the float sums may be
    reassociated, so both loops vectorise."""
    delta = 0.0
    if free_offset:
        acc = 0.0
        cnt = 0
        for k in range(zbuf.shape[0]):
            z = zbuf[k]
            both = (z >= near) & (z <= far) & mask[k] & (observed[k] > 0.0)
            acc += (z - observed[k]) if both else 0.0
            cnt += both
        if cnt > 0:
            delta = acc / cnt
    diff = 0.0
    union = 0
    inter = 0
    for k in range(zbuf.shape[0]):
        z = zbuf[k]
        rm = (z >= near) & (z <= far)
        om = mask[k]
        ob = observed[k]
        r = z if rm else 0.0
        hidden = rm & (not om) & (ob < 0.0) & (r + ob > OCCLUDER_MARGIN_MM)
        o = ob + delta if om else max(ob, 0.0)
        d = min(abs(o - r), d_max)
        u = (rm | om) & (not hidden)
        diff += d if u else 0.0
        union += u
        inter += rm & om
    return diff, union, inter


@numba.njit(parallel=True, **JIT_RAYS)
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
        diff, union, inter = _tile_sums(zbuf.ravel(), observed.ravel(), mask.ravel(), near, far, d_max, free_offset)
        sums[h, 0] = diff
        sums[h, 1] = union
        sums[h, 2] = inter


# ---- PSO -------------------------------------------------------------------------------------
@numba.njit(**JIT)
def pso_step_kernel(x, v, pbest, gbest, r1, r2, w, c1, c2, lo, hi):
    """In place: one constricted move of every particle, clamped, quaternion renormalised."""
    n, d = x.shape
    for i in range(n):
        for k in range(d):
            vk = w * (v[i, k] + c1 * r1[i, k] * (pbest[i, k] - x[i, k]) + c2 * r2[i, k] * (gbest[k] - x[i, k]))
            xk = x[i, k] + vk
            if xk < lo[k]:
                xk = lo[k]
                vk = 0.0
            elif xk > hi[k]:
                xk = hi[k]
                vk = 0.0
            x[i, k] = xk
            v[i, k] = vk
        norm = math.sqrt(x[i, 3] ** 2 + x[i, 4] ** 2 + x[i, 5] ** 2 + x[i, 6] ** 2)
        if norm < 1e-9:
            x[i, 3], x[i, 4], x[i, 5], x[i, 6] = 1.0, 0.0, 0.0, 0.0
        else:
            for k in range(3, 7):
                x[i, k] /= norm


@numba.njit(**JIT_RAYS)
def _hand_objective(x, wrist, base, base_rot, abd_sign, joint_axes, lengths, scale, mirror, radii, palm, thumb_meta,
                    kinds, taper, fx, fy, cx, cy, near, far, observed, mask, d_max, free_offset, lam_sil, lam_k, eps,
                    kp_uv, kp_ratio, kp_w, kp_scale, lam_kp, kp_delta, prior_mu, prior_inv, lam_prior, joints, frames, transforms, sums, values):
    """values (N,) = the tracker's objective of the hypotheses x (N, 27): kinematics, primitives,
    ray casting and sums (parallel), then ``tracker.objective.objective_from_sums`` with the
    finger-crossing penalty ``tracker.kinematics.finger_crossing_penalty``, NaN (0 / 0 with
    ``eps = 0`` and nothing in view) as +inf, as ``tracker.pso.optimize`` reads it; plus
    ``tracker.objective.keypoint_term`` when ``lam_kp > 0`` (keypoints' modes ``kp_uv (21, M, 2)``
    in the tile camera's pixels, their strengths ``kp_ratio (21, M)``, weights ``kp_w (21,)``);
    plus ``tracker.objective.pose_prior_term`` when ``lam_prior > 0`` (the finger angles' means
    ``prior_mu (20,)`` and inverse spreads ``prior_inv (20,)``); the rest are scratch."""
    forward_kinematics_kernel(x, wrist, base, base_rot, abd_sign, joint_axes, lengths, scale, mirror, joints, frames)
    primitive_transforms_kernel(frames, lengths, radii, palm, thumb_meta, transforms)
    score_tiles_kernel(transforms, kinds, taper, fx, fy, cx, cy, near, far, observed, mask, d_max, free_offset, sums)
    for h in range(x.shape[0]):
        crossing = 0.0
        for f in range(3):  # index..ring against the next finger: MCP abductions at 12, 16, 20, 24
            crossing -= min(x[h, 12 + 4 * f] - x[h, 16 + 4 * f], 0.0)
        union = sums[h, 1]
        inter = sums[h, 2]
        value = (sums[h, 0] / (union + eps) + lam_sil * (1.0 - 2.0 * inter / (inter + union + eps))
                 + lam_k * crossing)
        if lam_kp > 0.0:
            kp = 0.0
            for j in range(21):
                if kp_w[j] > 0.0:
                    z = joints[h, j, 2]
                    pu = fx * joints[h, j, 0] / z + cx
                    pv = fy * joints[h, j, 1] / z + cy
                    cost = 1.0
                    for m in range(kp_uv.shape[1]):
                        a = kp_ratio[j, m]
                        if a > 0.0:
                            du = (pu - kp_uv[j, m, 0]) / kp_scale
                            dv = (pv - kp_uv[j, m, 1]) / kp_scale
                            r2 = du * du + dv * dv
                            cost = min(cost, 1.0 - a + a * (r2 / (r2 + kp_delta * kp_delta)))
                    kp += kp_w[j] * cost
            value += lam_kp * kp
        if lam_prior > 0.0:
            prior = 0.0
            for d in range(prior_mu.shape[0]):
                t = (x[h, 7 + d] - prior_mu[d]) * prior_inv[d]
                prior += t * t
            value += lam_prior * prior / prior_mu.shape[0]
        values[h] = value if value == value else np.inf


@numba.njit(**JIT)
def pso_hand_kernel(x, v, pbest, pbest_value, gbest, best, first, r1, r2, redraw_rows, redraw_dims, redraw_values,
                    w, c1, c2, lo, hi, wrist, base, base_rot, abd_sign, joint_axes, lengths, scale, mirror, radii, palm,
                    thumb_meta, kinds, taper, fx, fy, cx, cy, near, far, observed, mask, d_max, free_offset, lam_sil,
                    lam_k, eps, kp_uv, kp_ratio, kp_w, kp_scale, lam_kp, kp_delta, prior_mu, prior_inv, lam_prior):
    """Generations of ``tracker.pso.optimize`` on the hand objective with the cpu scorer, without
    Python between them. State, in place: x, v, pbest (N, 27), pbest_value (N,), gbest (27,),
    best (1,). ``first``: x is the prepared swarm, evaluated to start the state. Then one
    generation per row of the moves: r1, r2 (G, N, 27) and the re-draws (G, K): row (-1 for
    none), dimension and value (``tracker.pso.draw_moves``)."""
    n = x.shape[0]
    joints = np.empty((n, 21, 3))
    frames = np.empty((n, NUM_FRAMES, 3, 4))
    transforms = np.empty((n, kinds.shape[0], 4, 4))  # the model's primitives (with or without a forearm)
    sums = np.empty((n, 3))
    values = np.empty(n)
    if first:
        _hand_objective(x, wrist, base, base_rot, abd_sign, joint_axes, lengths, scale, mirror, radii, palm,
                        thumb_meta, kinds, taper, fx, fy, cx, cy, near, far, observed, mask, d_max, free_offset,
                        lam_sil, lam_k, eps, kp_uv, kp_ratio, kp_w, kp_scale, lam_kp, kp_delta, prior_mu, prior_inv, lam_prior, joints, frames, transforms, sums,
                        values)
        pbest[:] = x
        pbest_value[:] = values
        g = 0
        for i in range(1, n):
            if pbest_value[i] < pbest_value[g]:
                g = i
        gbest[:] = x[g]
        best[0] = pbest_value[g]
    for gen in range(r1.shape[0]):
        pso_step_kernel(x, v, pbest, gbest, r1[gen], r2[gen], w, c1, c2, lo, hi)
        for k in range(redraw_rows.shape[1]):
            if redraw_rows[gen, k] >= 0:
                x[redraw_rows[gen, k], redraw_dims[gen, k]] = redraw_values[gen, k]
        _hand_objective(x, wrist, base, base_rot, abd_sign, joint_axes, lengths, scale, mirror, radii, palm,
                        thumb_meta, kinds, taper, fx, fy, cx, cy, near, far, observed, mask, d_max, free_offset,
                        lam_sil, lam_k, eps, kp_uv, kp_ratio, kp_w, kp_scale, lam_kp, kp_delta, prior_mu, prior_inv, lam_prior, joints, frames, transforms, sums,
                        values)
        for i in range(n):
            if values[i] < pbest_value[i]:
                pbest[i] = x[i]
                pbest_value[i] = values[i]
        g = 0
        for i in range(1, n):
            if pbest_value[i] < pbest_value[g]:
                g = i
        if pbest_value[g] < best[0]:
            gbest[:] = pbest[g]
            best[0] = pbest_value[g]


# ---- support plane (tracker.detect.support_plane) ---------------------------------------------
@numba.njit(**JIT)
def plane_inlier_counts_kernel(points, normals, offsets, ok, tol, counts):
    """RANSAC scoring: counts (T,) = for each trial plane t (unit normal normals (T, 3), offset
    offsets (T,) = n . a for a point a on it; skipped, 0, where not ok (T,)), the number of
    points (P, 3) mm with |p . n - offset| < tol. The same sums, in the same order, as numpy's
    elementwise ``p0 n0 + p1 n1 + p2 n2 - offset``; no BLAS (whose worker threads, left spinning
    after a matrix product, took the PSO kernel's cores)."""
    for t in range(normals.shape[0]):
        c = 0
        if ok[t]:
            n0, n1, n2, d = normals[t, 0], normals[t, 1], normals[t, 2], offsets[t]
            for i in range(points.shape[0]):
                c += abs(points[i, 0] * n0 + points[i, 1] * n1 + points[i, 2] * n2 - d) < tol
        counts[t] = c


@numba.njit(**JIT)
def plane_pixels_kernel(depth, fx, fy, cx, cy, centre, normal, tol, out):
    """out (H, W) bool: the pixels of depth (H, W) mm (0 or NaN: no reading) whose camera point
    (``CameraIntrinsics.unproject``'s arithmetic) lies within tol mm of the plane through centre
    (3,) with unit normal (3,)."""
    for v in range(depth.shape[0]):
        for u in range(depth.shape[1]):
            z = np.float64(depth[v, u])
            if z > 0.0:
                x = (u - cx) * z / fx
                y = (v - cy) * z / fy
                out[v, u] = abs((x - centre[0]) * normal[0] + (y - centre[1]) * normal[1]
                                + (z - centre[2]) * normal[2]) < tol
            else:
                out[v, u] = False


@numba.njit(**JIT)
def skeleton_distance_kernel(points, a, b, radius, out):
    """out (P,): each of points (P, 3)'s distance to the nearest of the segments a[s] -> b[s]
    ((S, 3) each) less that segment's radius[s] (S,), at least 0 (``detect.skeleton_distance``;
    a loop: numpy's version made 25 passes over every point, 30 ms of a 90 ms frame)."""
    for p in range(points.shape[0]):
        best = np.inf
        for s in range(a.shape[0]):
            abx, aby, abz = b[s, 0] - a[s, 0], b[s, 1] - a[s, 1], b[s, 2] - a[s, 2]
            apx, apy, apz = points[p, 0] - a[s, 0], points[p, 1] - a[s, 1], points[p, 2] - a[s, 2]
            t = (apx * abx + apy * aby + apz * abz) / max(abx * abx + aby * aby + abz * abz, 1e-12)
            t = min(max(t, 0.0), 1.0)
            # the closest point first, then the difference: the numpy version's order, so the
            # tracker's results did not move when this loop replaced it
            dx = points[p, 0] - (a[s, 0] + t * abx)
            dy = points[p, 1] - (a[s, 1] + t * aby)
            dz = points[p, 2] - (a[s, 2] + t * abz)
            d = math.sqrt(dx * dx + dy * dy + dz * dz) - radius[s]
            if d < best:
                best = d
        out[p] = max(best, 0.0)
