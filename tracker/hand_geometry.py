"""The hand's skeleton and primitive sizes: one geometry that both hand models are built on.

Hand frame (a right hand at identity orientation): origin at the palm centre, +x toward the
thumb, -y along the fingers, -z out of the palm, millimetres. So with the identity quaternion a
right hand faces the camera with its palm, fingers up in the image, thumb on the image's right.

The geometry was measured on the LibHand mesh (``synth.libhand.calibrate_geometry``) and is
stored in ``tracker/data/hand_geometry.json`` so the tracker needs no mesh at run time; a test
checks that recalibrating reproduces the file. Regenerate it with::

    python -m synth.libhand --write-geometry

Each of the five chains (thumb, index, middle, ring, pinky) is a base joint (thumb CMC, finger
MCP) and three segments:

* ``base_rotation`` ``(5, 3, 3)``: columns x = flexion axis at the base joint, y = the chain's
  zero direction (straight; for fingers in the palm plane), z = x cross y.
* ``abduction_sign`` ``(5,)``: +1/-1 so that positive abduction turns the chain about z toward
  the thumb side (fingers) or toward the palm side (thumb).
* ``joint_axes`` ``(5, 2, 3)``: flexion axes of the 2nd and 3rd joints (PIP, DIP; thumb MCP,
  IP), each a unit vector in the frame of the segment before it.
* ``lengths_mm`` ``(5, 3)``, ``base_mm`` ``(5, 3)``: segment lengths and base joint positions.
* ``radii_mm`` ``(5, 4)``: radius of the primitive spheres at the four joints of each chain.
* ``rest_angles_rad`` ``(5, 4)``: the LibHand mesh's modelled pose in our parameters.
* ``size_factors`` ``(26,)``: how the primitive sizes (radii, palm, thumb metacarpal) were
  scaled from their direct measurement to best match the mesh's rendered depth (see
  ``synth.libhand.refine_size_factors``); the stored sizes already include them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

__all__ = ["HandGeometry", "default_geometry", "GEOMETRY_PATH", "NUM_CHAINS"]

GEOMETRY_PATH = Path(__file__).resolve().parent / "data" / "hand_geometry.json"
NUM_CHAINS = 5
#: multipliers applied to the measured sizes: radii (5 x 4), palm half width, half thickness,
#: cap, thumb metacarpal ellipsoid (3); fitted so the primitives match the mesh's depth
NUM_SIZE_FACTORS = 26

_ARRAYS = {
    "wrist_mm": (3,),
    "base_mm": (5, 3),
    "base_rotation": (5, 3, 3),
    "abduction_sign": (5,),
    "joint_axes": (5, 2, 3),
    "lengths_mm": (5, 3),
    "radii_mm": (5, 4),
    "rest_angles_rad": (5, 4),
    "palm_half_width_mm": (),
    "palm_half_thickness_mm": (),
    "palm_bottom_y_mm": (),
    "palm_top_y_mm": (),
    "palm_cap_mm": (),
    "thumb_metacarpal_scale": (3,),
    "size_factors": (NUM_SIZE_FACTORS,),
}


@dataclass(frozen=True, eq=False)
class HandGeometry:
    """Skeleton and primitive sizes of the default right hand, hand-frame millimetres.

    hand_length_mm : wrist to middle fingertip of this geometry (the size that scale 1 means).
    Other fields: see the module docstring.
    """

    hand_length_mm: float
    wrist_mm: np.ndarray
    base_mm: np.ndarray
    base_rotation: np.ndarray
    abduction_sign: np.ndarray
    joint_axes: np.ndarray
    lengths_mm: np.ndarray
    radii_mm: np.ndarray
    rest_angles_rad: np.ndarray
    palm_half_width_mm: float
    palm_half_thickness_mm: float
    palm_bottom_y_mm: float
    palm_top_y_mm: float
    palm_cap_mm: float
    thumb_metacarpal_scale: np.ndarray
    size_factors: np.ndarray

    def __post_init__(self) -> None:
        if not (np.isfinite(self.hand_length_mm) and self.hand_length_mm > 0):
            raise ValueError(f"HandGeometry.hand_length_mm must be > 0, got {self.hand_length_mm}")
        for name, shape in _ARRAYS.items():
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != shape:
                raise ValueError(f"HandGeometry.{name} must have shape {shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"HandGeometry.{name} has non-finite values")
            object.__setattr__(self, name, float(value) if shape == () else value)
        if np.any(self.lengths_mm <= 0) or np.any(self.radii_mm <= 0):
            raise ValueError("HandGeometry: lengths and radii must be > 0")
        for f in range(NUM_CHAINS):
            R = self.base_rotation[f]
            if not np.allclose(R.T @ R, np.eye(3), atol=1e-6) or np.linalg.det(R) < 0:
                raise ValueError(f"HandGeometry.base_rotation[{f}] is not a rotation")
        if not np.allclose(np.linalg.norm(self.joint_axes, axis=-1), 1.0, atol=1e-6):
            raise ValueError("HandGeometry.joint_axes must be unit vectors")

    def to_dict(self) -> dict:
        d = {"hand_length_mm": self.hand_length_mm}
        for name in _ARRAYS:
            v = getattr(self, name)
            d[name] = v.tolist() if isinstance(v, np.ndarray) else v
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "HandGeometry":
        missing = [k for k in ["hand_length_mm", *_ARRAYS] if k not in d]
        if missing:
            raise ValueError(f"hand geometry is missing {missing}")
        return cls(**{k: d[k] for k in ["hand_length_mm", *_ARRAYS]})

    def save(self, path: str | Path) -> None:
        """Strict JSON, written atomically."""
        from handrgbd.outputs import write_json

        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "HandGeometry":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: cannot read hand geometry ({e}); regenerate it with "
                             f"`python -m synth.libhand --write-geometry`") from e
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as e:
            raise ValueError(f"{path}: {e}") from e


@lru_cache(maxsize=1)
def default_geometry() -> HandGeometry:
    """The shipped geometry (measured on the LibHand mesh)."""
    return HandGeometry.load(GEOMETRY_PATH)
