"""Forward kinematics of the 27-parameter hand and its 37 primitives (38 with a forearm),
batched over hypotheses.

``HandModel(side, hand_length_mm)`` turns parameters ``(N, 27)`` into

* joints ``(N, 21, 3) float64`` mm, camera frame, MediaPipe order (``handrgbd.Joint``);
* primitive transforms ``(N, 37, 4, 4)`` (``(N, 38, 4, 4)`` with ``forearm``) for
  ``renderer.HypothesisRenderer`` with ``model.primitive_set`` (22 spheres/ellipsoids, 15
  cones/cylinders, ``PRIMITIVE_LAYOUT``);
* segment frames ``(N, 16, 3, 4)`` (hand frame + 15 finger segments), which the LibHand mesh is
  skinned with, so both hand models move the same skeleton.

A left hand mirrors the right hand's geometry (hand-frame x negated) before the global
rotation; the same parameters give mirror-image joints.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from renderer.tiled import PrimitiveKind, PrimitiveSet
from tracker._kernels import (FOREARM_TAPER, NUM_FRAMES, NUM_PRIMITIVES, forward_kinematics_kernel,
                              primitive_transforms_kernel)
from tracker.hand_geometry import HandGeometry, default_geometry
from tracker.pose import FINGER_NAMES, NUM_PARAMS, SIDES

__all__ = ["HandModel", "Kinematics", "PRIMITIVE_LAYOUT", "DEFAULT_HAND_LENGTH_MM", "HAND_LENGTH_RANGE_MM", "finger_crossing_penalty"]

#: Wrist to middle fingertip of an adult hand (mean of adult women ~172 mm and men ~189 mm).
DEFAULT_HAND_LENGTH_MM = 180.0
#: Hand lengths (wrist to middle fingertip) the model accepts: a small child to a large glove.
HAND_LENGTH_RANGE_MM = (50.0, 400.0)

_FINGER_PRIMS = ("mcp_sphere", "proximal_cone", "pip_sphere", "middle_cone", "dip_sphere", "distal_cone", "tip_sphere")
_THUMB_PRIMS = ("metacarpal_ellipsoid", "mcp_sphere", "proximal_cone", "ip_sphere", "distal_cone", "tip_sphere")
#: Name of each of the 37 primitives, in order.
PRIMITIVE_LAYOUT: tuple[str, ...] = (
    ("palm_cylinder", "palm_cap_wrist", "palm_cap_knuckles")
    + tuple(f"thumb_{p}" for p in _THUMB_PRIMS)
    + tuple(f"{f}_{p}" for f in FINGER_NAMES[1:] for p in _FINGER_PRIMS)
)
assert len(PRIMITIVE_LAYOUT) == NUM_PRIMITIVES


class Kinematics(NamedTuple):
    """joints ``(N, 21, 3)`` mm; frames ``(N, 16, 3, 4)`` [A | o] local -> camera (see _kernels)."""

    joints: np.ndarray
    frames: np.ndarray


def _check_params(params: np.ndarray) -> np.ndarray:
    p = np.asarray(params, dtype=np.float64)
    if p.ndim == 1:
        p = p[None]
    if p.ndim != 2 or p.shape[1] != NUM_PARAMS:
        raise ValueError(f"pose parameters must have shape (N, {NUM_PARAMS}), got {np.shape(params)}")
    if not np.isfinite(p).all():
        raise ValueError(f"pose parameters contain non-finite values (row {np.argwhere(~np.isfinite(p))[0][0]})")
    q = p[:, 3:7]
    if (np.einsum("ij,ij->i", q, q) < 1e-18).any():  # |q| < 1e-9, without norm's overhead (called per generation)
        raise ValueError("pose parameters contain a zero quaternion")
    return np.ascontiguousarray(p)


def finger_crossing_penalty(params: np.ndarray) -> np.ndarray:
    """Oikonomidis et al.'s kc: sum over adjacent fingers (index..pinky) of
    ``-min(abd_i - abd_(i+1), 0)``; 0 when no finger crosses its neighbour. ``(N,)`` radians."""
    p = np.asarray(params, dtype=np.float64)
    p = p[None] if p.ndim == 1 else p
    if p.ndim != 2 or p.shape[1] != NUM_PARAMS:  # values are not checked: NaN in, NaN out (called per generation)
        raise ValueError(f"pose parameters must have shape (N, {NUM_PARAMS}), got {np.shape(params)}")
    abd = p[:, 12:25:4]  # index, middle, ring, pinky MCP abduction (positive toward the thumb)
    return -np.minimum(abd[:, :-1] - abd[:, 1:], 0.0).sum(axis=1)


class HandModel:
    """The 27-parameter hand of a given side and size.

    side : ``"right"`` or ``"left"``.
    hand_length_mm : wrist to middle fingertip; scales the whole geometry.
    geometry : skeleton and primitive sizes (default: the shipped LibHand-calibrated geometry).
    forearm : one more primitive after the hand's 37, ``"forearm"``: an elliptic cone rigid with
        the palm, from its heel away from the fingers (``tracker._kernels.FOREARM_*``). The
        tracker scores it so that an arm in view is explained by an arm, not by the hand sliding
        onto it; it has no joint and moves with the palm (a bent wrist is not modelled).
    """

    def __init__(self, side: str = "right", hand_length_mm: float = DEFAULT_HAND_LENGTH_MM,
                 geometry: HandGeometry | None = None, forearm: bool = False):
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        lo, hi = HAND_LENGTH_RANGE_MM
        if not (np.isfinite(hand_length_mm) and lo <= hand_length_mm <= hi):
            raise ValueError(f"hand_length_mm must be in [{lo:g}, {hi:g}] mm, got {hand_length_mm}")
        self.side = side
        self.hand_length_mm = float(hand_length_mm)
        self.geometry = default_geometry() if geometry is None else geometry
        self.scale = self.hand_length_mm / self.geometry.hand_length_mm
        g = self.geometry
        self._palm = np.array([g.palm_half_width_mm, g.palm_half_thickness_mm, g.palm_bottom_y_mm,
                               g.palm_top_y_mm, g.palm_cap_mm])
        kinds, taper = [PrimitiveKind.CONE, PrimitiveKind.SPHERE, PrimitiveKind.SPHERE], [1.0, 1.0, 1.0]
        for f in range(5):
            r = g.radii_mm[f]
            if f == 0:
                kinds += [PrimitiveKind.SPHERE, PrimitiveKind.SPHERE, PrimitiveKind.CONE, PrimitiveKind.SPHERE,
                          PrimitiveKind.CONE, PrimitiveKind.SPHERE]
                taper += [1.0, 1.0, r[2] / r[1], 1.0, r[3] / r[2], 1.0]
            else:
                kinds += [PrimitiveKind.SPHERE, PrimitiveKind.CONE] * 3 + [PrimitiveKind.SPHERE]
                taper += [1.0, r[1] / r[0], 1.0, r[2] / r[1], 1.0, r[3] / r[2], 1.0]
        self.forearm = bool(forearm)
        if self.forearm:
            kinds, taper = kinds + [PrimitiveKind.CONE], taper + [FOREARM_TAPER]
        self.primitive_set = PrimitiveSet(kinds, taper)

    def kinematics(self, params: np.ndarray) -> Kinematics:
        """Joints and segment frames for parameters ``(N, 27)`` (or ``(27,)``)."""
        p = _check_params(params)
        g = self.geometry
        joints = np.empty((p.shape[0], 21, 3))
        frames = np.empty((p.shape[0], NUM_FRAMES, 3, 4))
        forward_kinematics_kernel(p, g.wrist_mm, g.base_mm, g.base_rotation, g.abduction_sign, g.joint_axes,
                                  g.lengths_mm, self.scale, -1.0 if self.side == "left" else 1.0, joints, frames)
        return Kinematics(joints, frames)

    def joints(self, params: np.ndarray) -> np.ndarray:
        """``(N, 21, 3)`` joints in mm, camera frame."""
        return self.kinematics(params).joints

    def primitives(self, params: np.ndarray) -> np.ndarray:
        """``(N, 37, 4, 4)`` unit-primitive -> camera transforms, for ``self.primitive_set`` (38
        with ``forearm``: ``PRIMITIVE_LAYOUT`` then ``"forearm"``)."""
        return self.primitives_from_frames(self.kinematics(params).frames)

    def kernel_arrays(self) -> tuple:
        """The model as the kernels take it (``tracker._kernels.pso_hand_kernel``): wrist, base,
        base rotations, abduction signs, joint axes, lengths, scale, mirror (-1 left, 1 right),
        radii, palm, thumb metacarpal semi-axes."""
        g = self.geometry
        return (g.wrist_mm, g.base_mm, g.base_rotation, g.abduction_sign, g.joint_axes, g.lengths_mm, self.scale,
                -1.0 if self.side == "left" else 1.0, g.radii_mm, self._palm, g.thumb_metacarpal_scale)

    def primitives_from_frames(self, frames: np.ndarray) -> np.ndarray:
        g = self.geometry
        out = np.empty((frames.shape[0], len(self.primitive_set), 4, 4))
        primitive_transforms_kernel(frames, g.lengths_mm, g.radii_mm, self._palm, g.thumb_metacarpal_scale, out)
        return out
