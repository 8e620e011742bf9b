"""A prior over hand poses for synthetic data: articulations and the orientations a camera sees.

Finger angles come from a mixture (``sample_angles``):

* a canonical gesture (``tracker.CANONICAL_POSES``) with Gaussian jitter (0.12 rad),
* free articulation: every angle uniform within its limits, with the DIP following the PIP
  (``dip = 0.7 pip + noise``, the coupling of real fingers), abduction kept uncrossed,
* the interpolation of two such samples at a random fraction,
* with probability ``real_fraction``: one of 69 real poses tracked by Intel RealSense
  (``synth.intel_poses``, fitted to our parameters) with Gaussian jitter (0.08 rad).

Orientations (``sample_orientation``): half uniform over all rotations (Shoemake's method), half
"facing": palm or back of the hand toward the camera, tilted up to 70 degrees about a random
axis, any roll in the image plane (side views and fingers pointing at the camera come from
the tilt).

All functions take a ``numpy.random.Generator``; nothing here keeps state.
"""

from __future__ import annotations

import math

import numpy as np

from synth.intel_poses import real_pose_angles
from tracker.pose import CANONICAL_POSES, LIMITS, axis_angle_quaternion, quaternion_multiply

__all__ = ["sample_angles", "sample_orientation", "random_rotation_quaternion", "axis_angle_quaternion",
           "quaternion_multiply"]

_GESTURES = sorted(CANONICAL_POSES)


def random_rotation_quaternion(rng: np.random.Generator) -> np.ndarray:
    """Uniform over SO(3) (Shoemake, Graphics Gems III)."""
    u1, u2, u3 = rng.random(3)
    a, b = math.sqrt(1 - u1), math.sqrt(u1)
    return np.array([b * math.cos(2 * math.pi * u3), a * math.sin(2 * math.pi * u2),
                     a * math.cos(2 * math.pi * u2), b * math.sin(2 * math.pi * u3)])


def sample_orientation(rng: np.random.Generator, uniform_fraction: float = 0.5,
                       max_tilt_rad: float = math.radians(70)) -> np.ndarray:
    """A hand -> camera quaternion (w, x, y, z) from the mixture in the module docstring."""
    if rng.random() < uniform_fraction:
        return random_rotation_quaternion(rng)
    q = np.array([1.0, 0.0, 0.0, 0.0])
    if rng.random() < 0.5:  # back of the hand toward the camera
        q = axis_angle_quaternion([0, 1, 0], math.pi)
    axis = rng.normal(size=3)
    axis[2] = 0.0 if np.linalg.norm(axis[:2]) > 0 else 1.0
    tilt = axis_angle_quaternion(axis, rng.uniform(0, max_tilt_rad))
    roll = axis_angle_quaternion([0, 0, 1], rng.uniform(-math.pi, math.pi))
    return quaternion_multiply(roll, quaternion_multiply(tilt, q))


def _free_articulation(rng: np.random.Generator) -> np.ndarray:
    lo, hi = LIMITS[..., 0], LIMITS[..., 1]
    a = rng.uniform(lo, hi)
    a[1:, 3] = np.clip(0.7 * a[1:, 2] + rng.normal(0, 0.1, 4), lo[1:, 3], hi[1:, 3])
    a[1:, 1] = np.sort(a[1:, 1])[::-1]  # index .. pinky abduction decreasing: fingers do not cross
    return a


def _gesture(rng: np.random.Generator) -> np.ndarray:
    return CANONICAL_POSES[_GESTURES[rng.integers(len(_GESTURES))]] + rng.normal(0, 0.12, (5, 4))


def sample_angles(rng: np.random.Generator, real_fraction: float = 0.0) -> np.ndarray:
    """``(5, 4)`` finger angles (radians) within ``LIMITS``, from the mixture in the module doc.
    With ``real_fraction == 0`` no real pose is drawn and the random stream is the one of the
    prior before real poses were added (older data sets reproduce)."""
    if not 0.0 <= real_fraction <= 1.0:
        raise ValueError(f"real_fraction must be in [0, 1], got {real_fraction}")
    u = rng.random()
    if u < real_fraction:
        real = real_pose_angles()
        a = real[rng.integers(len(real))] + rng.normal(0, 0.08, (5, 4))
        return np.clip(a, LIMITS[..., 0], LIMITS[..., 1])
    u = (u - real_fraction) / (1.0 - real_fraction)
    if u < 0.4:
        a = _gesture(rng)
    elif u < 0.75:
        a = _free_articulation(rng)
    else:
        first = _gesture(rng) if rng.random() < 0.5 else _free_articulation(rng)
        second = _gesture(rng) if rng.random() < 0.5 else _free_articulation(rng)
        t = rng.random()
        a = (1 - t) * first + t * second
    return np.clip(a, LIMITS[..., 0], LIMITS[..., 1])
