"""The 27-parameter hand pose space shared by the tracker and the synthetic-data generator.

Layout of a parameter vector ``(27,)`` (see ``PARAM_NAMES``)::

    [0:3]    palm position, mm, camera frame (the hand frame's origin: the palm centre)
    [3:7]    orientation, unit quaternion (w, x, y, z): hand frame -> camera frame
    [7:11]   thumb:  CMC flexion, CMC abduction, MCP flexion, IP flexion        (radians)
    [11:15]  index:  MCP flexion, MCP abduction, PIP flexion, DIP flexion
    [15:19]  middle, [19:23] ring, [23:27] pinky: as index

Angles are 0 for a straight finger in the palm plane (the LibHand mesh's natural spread);
positive flexion curls toward the palm; positive abduction turns a finger toward the thumb
(and the thumb toward the palm side). A left hand is the mirror image of a right hand with the
same parameters: its hand frame has x negated (see ``tracker.kinematics``). Limits are in
``LIMITS`` (anatomical ranges; sources in docs/hand_model.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import InitVar, dataclass
from pathlib import Path

import numpy as np

__all__ = ["HandPose", "PARAM_NAMES", "NUM_PARAMS", "LIMITS", "CANONICAL_POSES", "FINGER_NAMES",
           "quaternion_to_matrix", "matrix_to_quaternion", "quaternion_slerp", "quaternion_multiply", "axis_angle_quaternion",
           "mirror_quaternion", "SIDES"]

NUM_PARAMS = 27
FINGER_NAMES = ("thumb", "index", "middle", "ring", "pinky")
SIDES = ("right", "left")
_THUMB_DOF = ("cmc_flexion", "cmc_abduction", "mcp_flexion", "ip_flexion")
_FINGER_DOF = ("mcp_flexion", "mcp_abduction", "pip_flexion", "dip_flexion")
PARAM_NAMES: tuple[str, ...] = (
    ("x_mm", "y_mm", "z_mm", "qw", "qx", "qy", "qz")
    + tuple(f"thumb_{d}" for d in _THUMB_DOF)
    + tuple(f"{f}_{d}" for f in FINGER_NAMES[1:] for d in _FINGER_DOF)
)

_deg = math.radians
#: (5, 4, 2) lower/upper limit per finger angle, radians.
LIMITS = np.array([
    # thumb: CMC flexion, CMC abduction, MCP flexion, IP flexion
    [(_deg(-20), _deg(50)), (_deg(-20), _deg(40)), (_deg(-10), _deg(60)), (_deg(-10), _deg(85))],
    # index, middle, ring, pinky: MCP flexion, MCP abduction, PIP flexion, DIP flexion
    [(_deg(-10), _deg(100)), (_deg(-20), _deg(20)), (_deg(-5), _deg(110)), (_deg(-5), _deg(90))],
    [(_deg(-10), _deg(100)), (_deg(-15), _deg(15)), (_deg(-5), _deg(110)), (_deg(-5), _deg(90))],
    [(_deg(-10), _deg(100)), (_deg(-15), _deg(15)), (_deg(-5), _deg(110)), (_deg(-5), _deg(90))],
    [(_deg(-10), _deg(100)), (_deg(-25), _deg(20)), (_deg(-5), _deg(110)), (_deg(-5), _deg(90))],
])

_FIST = [(1.45, 0.0, 1.75, 1.0)] * 4
#: Named finger configurations, (5, 4) radians each (thumb first). ``relaxed`` is the LibHand
#: mesh's modelled pose (it comes from tracker/data/hand_geometry.json).
CANONICAL_POSES: dict[str, np.ndarray] = {
    "open": np.zeros((5, 4)),
    "spread": np.array([(0.0, 0.3, 0.0, 0.0), (0.0, 0.3, 0.0, 0.0), (0.0, 0.1, 0.0, 0.0),
                        (0.0, -0.15, 0.0, 0.0), (0.0, -0.35, 0.0, 0.0)]),
    "fist": np.array([(0.6, 0.3, 0.7, 0.9)] + _FIST),
    "point": np.array([(0.6, 0.3, 0.7, 0.9), (0.0, 0.0, 0.0, 0.0)] + _FIST[:3]),
    "victory": np.array([(0.6, 0.3, 0.7, 0.9), (0.0, 0.25, 0.0, 0.0), (0.0, -0.2, 0.0, 0.0)] + _FIST[:2]),
    "thumbs_up": np.array([(-0.2, -0.2, 0.0, 0.0)] + _FIST),
    # thumb and index tips meet (solved by least squares on the shipped geometry; a test checks it)
    "pinch": np.array([(0.22, 0.32, 0.17, 0.34), (0.52, -0.18, 0.75, 0.48), (0.2, 0.0, 0.2, 0.1),
                       (0.2, 0.0, 0.2, 0.1), (0.2, 0.0, 0.2, 0.1)]),
    "ok": np.array([(0.22, 0.32, 0.17, 0.34), (0.52, -0.18, 0.75, 0.48), (0.0, 0.05, 0.0, 0.0),
                    (0.0, -0.1, 0.0, 0.0), (0.0, -0.2, 0.0, 0.0)]),
}


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """``(..., 4)`` quaternions (w, x, y, z), any norm > 0 -> ``(..., 3, 3)`` rotation matrices."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def matrix_to_quaternion(R: np.ndarray) -> np.ndarray:
    """``(3, 3)`` rotation matrix -> unit quaternion (w, x, y, z) (scipy's, half-turns included)."""
    from scipy.spatial.transform import Rotation

    x, y, z, w = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    return np.array([w, x, y, z])


def quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (w, x, y, z) quaternions (rotation b, then a)."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


def axis_angle_quaternion(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    return np.concatenate([[math.cos(angle_rad / 2)], math.sin(angle_rad / 2) * axis])


def mirror_quaternion(q: np.ndarray) -> np.ndarray:
    """The orientation of the mirror-image hand (camera x -> -x): ``(w, x, y, z) -> (w, x, -y, -z)``."""
    return np.asarray(q, dtype=np.float64) * np.array([1.0, 1.0, -1.0, -1.0])


def quaternion_slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between unit quaternions (shortest arc), ``t`` in [0, 1]."""
    q0 = np.asarray(q0, float) / np.linalg.norm(q0)
    q1 = np.asarray(q1, float) / np.linalg.norm(q1)
    dot = float(q0 @ q1)
    if dot < 0:
        q1, dot = -q1, -dot
    if dot > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = math.acos(dot)
    return (math.sin((1 - t) * theta) * q0 + math.sin(t * theta) * q1) / math.sin(theta)


@dataclass(frozen=True, eq=False)
class HandPose:
    """One hand pose: 27 parameters and the hand side.

    position_mm : ``(3,)`` palm centre, camera frame, mm.
    orientation : ``(4,)`` quaternion (w, x, y, z) hand -> camera; normalised on construction,
        or, with ``strict=True``, required to be unit already.
    angles_rad : ``(5, 4)`` finger angles (thumb first, see the module docstring).
    side : ``"right"`` or ``"left"``.
    """

    position_mm: np.ndarray
    orientation: np.ndarray
    angles_rad: np.ndarray
    side: str = "right"
    strict: InitVar[bool] = False

    def __post_init__(self, strict: bool) -> None:
        fields = {"position_mm": (3,), "orientation": (4,), "angles_rad": (5, 4)}
        for name, shape in fields.items():
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"HandPose.{name} must have shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"HandPose.{name} has non-finite values: {value.tolist()}")
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        norm = float(np.linalg.norm(self.orientation))
        if norm < 1e-9:
            raise ValueError("HandPose.orientation is a zero quaternion")
        if strict and abs(norm - 1.0) > 1e-6:
            raise ValueError(f"HandPose.orientation must be a unit quaternion (norm {norm:.6f})")
        q = self.orientation / norm
        q = -q if q[0] < 0 else q  # one sign for each rotation
        q.setflags(write=False)
        object.__setattr__(self, "orientation", q)
        if self.side not in SIDES:
            raise ValueError(f"HandPose.side must be one of {SIDES}, got {self.side!r}")

    # ---- arrays ---------------------------------------------------------------------
    def to_array(self) -> np.ndarray:
        """``(27,) float64`` in the layout of ``PARAM_NAMES``."""
        return np.concatenate([self.position_mm, self.orientation, self.angles_rad.ravel()])

    @classmethod
    def from_array(cls, params: np.ndarray, side: str = "right", strict: bool = False) -> "HandPose":
        p = np.asarray(params, dtype=np.float64)
        if p.shape != (NUM_PARAMS,):
            raise ValueError(f"pose parameters must have shape ({NUM_PARAMS},), got {p.shape}")
        return cls(p[0:3], p[3:7], p[7:].reshape(5, 4), side, strict=strict)

    @property
    def rotation(self) -> np.ndarray:
        """``(3, 3)`` hand -> camera rotation."""
        return quaternion_to_matrix(self.orientation)

    # ---- limits ---------------------------------------------------------------------
    def within_limits(self, tol: float = 1e-9) -> bool:
        return bool(np.all(self.angles_rad >= LIMITS[..., 0] - tol) and np.all(self.angles_rad <= LIMITS[..., 1] + tol))

    def clamped(self) -> "HandPose":
        """The same pose with every angle clamped to ``LIMITS``."""
        return HandPose(self.position_mm, self.orientation,
                        np.clip(self.angles_rad, LIMITS[..., 0], LIMITS[..., 1]), self.side)

    # ---- operations -----------------------------------------------------------------
    def interpolate(self, other: "HandPose", t: float) -> "HandPose":
        """Pose at fraction ``t`` from self to ``other``: linear in position and angles, slerp in
        orientation."""
        if other.side != self.side:
            raise ValueError("cannot interpolate between a right and a left hand")
        if not (0.0 <= t <= 1.0):
            raise ValueError(f"interpolation fraction must be in [0, 1], got {t}")
        return HandPose((1 - t) * self.position_mm + t * other.position_mm,
                        quaternion_slerp(self.orientation, other.orientation, t),
                        (1 - t) * self.angles_rad + t * other.angles_rad, self.side)

    def mirrored(self) -> "HandPose":
        """The other hand, mirror image through the camera's x = 0 plane (joints x -> -x)."""
        return HandPose(self.position_mm * [-1.0, 1.0, 1.0], mirror_quaternion(self.orientation), self.angles_rad,
                        "left" if self.side == "right" else "right")

    @classmethod
    def canonical(cls, name: str, position_mm=(0.0, 0.0, 500.0), orientation=(1.0, 0.0, 0.0, 0.0),
                  side: str = "right") -> "HandPose":
        """A named pose (``CANONICAL_POSES`` or ``"relaxed"``), palm toward the camera by default."""
        if name == "relaxed":
            from tracker.hand_geometry import default_geometry

            angles = default_geometry().rest_angles_rad
        elif name in CANONICAL_POSES:
            angles = CANONICAL_POSES[name]
        else:
            raise ValueError(f"unknown pose {name!r}; known: {sorted(CANONICAL_POSES) + ['relaxed']}")
        return cls(position_mm, orientation, angles, side)

    # ---- serialisation --------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"side": self.side, "position_mm": self.position_mm.tolist(),
                "orientation_wxyz": self.orientation.tolist(),
                "angles_rad": {name: dict(zip(_THUMB_DOF if f == 0 else _FINGER_DOF, self.angles_rad[f].tolist()))
                               for f, name in enumerate(FINGER_NAMES)}}

    @classmethod
    def from_dict(cls, d: dict, strict: bool = False) -> "HandPose":
        try:
            angles = [[d["angles_rad"][name][dof] for dof in (_THUMB_DOF if f == 0 else _FINGER_DOF)]
                      for f, name in enumerate(FINGER_NAMES)]
            return cls(d["position_mm"], d["orientation_wxyz"], angles, d.get("side", "right"), strict=strict)
        except KeyError as e:
            raise ValueError(f"hand pose is missing {e}") from e

    def save(self, path: str | Path) -> None:
        """Strict JSON, written atomically."""
        from handrgbd.outputs import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "HandPose":
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError, ValueError, TypeError) as e:
            raise ValueError(f"{path}: not a hand pose file ({e})") from e
