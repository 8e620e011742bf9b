"""Plain-numpy twins of the numba kernels of the hand models (written independently: scipy
rotations, explicit loops). Used only by the tests."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def _rot(axis, angle):
    return Rotation.from_rotvec(np.asarray(axis, float) / np.linalg.norm(axis) * angle).as_matrix()


def forward_kinematics(params, geometry, scale=1.0, mirror=1.0):
    """One pose (27,) -> joints (21, 3), frames (16, 3, 4)."""
    p = np.asarray(params, float)
    q = p[3:7]
    R = Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()  # scipy is (x, y, z, w)
    G = R @ np.diag([mirror, 1.0, 1.0]) * scale
    t = p[:3]
    joints, frames = [G @ geometry.wrist_mm + t], [np.c_[G, t]]
    chain_joints = []
    for f in range(5):
        flex1, abd, flex2, flex3 = p[7 + 4 * f: 11 + 4 * f]
        B = geometry.base_rotation[f]
        Rseg = B @ _rot([0, 0, 1], geometry.abduction_sign[f] * abd) @ _rot([1, 0, 0], flex1)
        pos = geometry.base_mm[f].copy()
        js = [G @ pos + t]
        for k in range(3):
            if k > 0:
                Rseg = Rseg @ _rot(geometry.joint_axes[f, k - 1], (flex2, flex3)[k - 1])
            frames.append(np.c_[G @ Rseg, G @ pos + t])
            pos = pos + geometry.lengths_mm[f, k] * Rseg[:, 1]
            js.append(G @ pos + t)
        chain_joints.append(js)
    for js in chain_joints:
        joints += js
    return np.array(joints), np.array(frames)


def primitive_transforms(frames, geometry):
    """frames (16, 3, 4) -> (37, 4, 4), the layout of tracker.kinematics.PRIMITIVE_LAYOUT."""
    def affine(cols, origin):
        m = np.eye(4)
        m[:3, :3] = np.stack(cols, axis=1)
        m[:3, 3] = origin
        return m

    g = geometry
    A0, o0 = frames[0][:, :3], frames[0][:, 3]
    x, y, z = A0[:, 0], A0[:, 1], A0[:, 2]
    out = [affine([x * g.palm_half_width_mm, z * g.palm_half_thickness_mm,
                   -y * (g.palm_bottom_y_mm - g.palm_top_y_mm)], o0 + y * g.palm_bottom_y_mm)]
    for yy in (g.palm_bottom_y_mm, g.palm_top_y_mm):
        out.append(affine([x * g.palm_half_width_mm, y * g.palm_cap_mm, z * g.palm_half_thickness_mm], o0 + y * yy))
    for f in range(5):
        segs = [frames[1 + 3 * f + k] for k in range(3)]
        L, r = g.lengths_mm[f], g.radii_mm[f]
        for k, seg in enumerate(segs):
            A, o = seg[:, :3], seg[:, 3]
            end = L[k] - r[3] if k == 2 else L[k]
            if f == 0 and k == 0:
                s = g.thumb_metacarpal_scale
                out.append(affine([A[:, 0] * s[0], A[:, 1] * s[1], A[:, 2] * s[2]], o + A[:, 1] * L[0] / 2))
                continue
            if k == 0 or f == 0:
                out.append(affine([A[:, 0] * r[k], A[:, 1] * r[k], A[:, 2] * r[k]], o))
            out.append(affine([A[:, 2] * r[k], A[:, 0] * r[k], A[:, 1] * end], o))
            if f > 0 or k == 2:
                out.append(affine([A[:, 0] * r[k + 1], A[:, 1] * r[k + 1], A[:, 2] * r[k + 1]], o + A[:, 1] * end))
    return np.array(out)


def linear_blend_skinning(weights, matrices, vertices):
    """Dense weights (V, F), matrices (F, 3, 4), vertices (V, 3) -> (V, 3)."""
    homo = np.c_[vertices, np.ones(len(vertices))]
    per_frame = np.einsum("fij,vj->fvi", matrices, homo)  # every frame moves every vertex
    return np.einsum("vf,fvi->vi", weights, per_frame)
