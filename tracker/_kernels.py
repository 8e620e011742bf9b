"""numba kernels of the hand model: forward kinematics and primitive placement, batched over N.

Pure functions over arrays; ``tracker.kinematics`` checks inputs and wraps them. Every kernel
has a plain-numpy twin in tests/naive_hand.py. Flags are set once, here. They run serially:
a hypothesis costs microseconds, less than waking threads (and the scoring kernel after them
is the parallel one).
"""

from __future__ import annotations

import math

import numba
import numpy as np

JIT = dict(nogil=True, cache=True, fastmath=False)

NUM_FRAMES = 16  # hand frame + 5 chains x 3 segments
NUM_PRIMITIVES = 37


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
    """frames (N, 16, 3, 4) -> out (N, 37, 4, 4) unit-primitive -> camera transforms.

    palm = (half_width, half_thickness, bottom_y, top_y, cap) mm; thumb_meta = ellipsoid
    semi-axes (across, along, thickness) mm of the thumb metacarpal. Layout: see
    tracker.kinematics.PRIMITIVE_LAYOUT.
    """
    n = frames.shape[0]
    for h in range(n):
        for i in range(37):
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
