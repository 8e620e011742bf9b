"""Real hand poses for the pose prior: Intel RealSense's 69 tracked poses, fitted to our 27 parameters.

Source: ``assets/intel/hand_data_example.pose`` from Intel RealSense hand_tracking_samples
(Apache-2.0, ``assets/intel/LICENSE_Apache-2.0.txt``; commit 75d5579a), 69 frames of a right hand
tracked on an SR300. Each line holds 17 rigid bodies, ``x y z  qx qy qz qw`` each (metres; the
quaternion's scalar last), in the camera frame (x right, y down, z forward). Bodies: 0 forearm,
1 palm (origin at the wrist joint), then thumb 2-4 and index, middle, ring, pinky 5-7, 8-10,
11-13, 14-16 (proximal to distal); a body's origin is its joint with its parent, and it points
along its local +z. Fingertips are the distal body's origin plus ``TIP_OFFSET_M`` along +z (the
far end of that body's collision cage in Intel's ``model_hand.json``).

The skeletons differ (Intel's rig is not LibHand's), so poses are transferred by *directions*,
not positions: ``fit_pose`` finds the orientation and 20 finger angles (within ``LIMITS``) whose
finger-bone directions, knuckle line and wrist -> middle knuckle direction (``FIT_VECTORS``)
best match the source's, by bounded least squares. ``python -m synth.intel_poses`` rewrites
``assets/intel/intel_poses.json`` (the finger angles the prior samples) and prints the fit's
residuals; a test re-fits some poses and checks both.
"""

from __future__ import annotations

import json
import math
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from handrgbd.args import CommandParser, out_path
from handrgbd.outputs import write_json
from tracker.kinematics import HandModel
from tracker.pose import LIMITS

__all__ = ["POSE_FILE", "ANGLES_FILE", "load_intel_poses", "intel_joints", "bone_directions", "fit_pose",
           "real_pose_angles", "TIP_OFFSET_M"]

ASSET_DIR = Path(__file__).resolve().parent / "assets" / "intel"
POSE_FILE = ASSET_DIR / "hand_data_example.pose"
ANGLES_FILE = ASSET_DIR / "intel_poses.json"
NUM_BODIES = 17
#: fingertip distance along the distal body's +z, metres (its cage's far end), per distal body
TIP_OFFSET_M = {4: 0.0284, 7: 0.0234, 10: 0.0236, 13: 0.0259, 16: 0.0239}
#: source body of each of our 21 joints (MediaPipe order); tips are marked by their distal body
_JOINT_BODY = (1, 2, 3, 4, None, 5, 6, 7, None, 8, 9, 10, None, 11, 12, 13, None, 14, 15, 16, None)
_TIP_BODY = {4: 4, 8: 7, 12: 10, 16: 13, 20: 16}
#: the 20 bones as (parent joint, child joint) in MediaPipe order
BONES = tuple((0 if j % 4 == 1 else j - 1, j) for j in range(1, 21))
#: what the fit matches: the 15 finger bones (thumb CMC -> MCP -> IP -> tip, finger MCP -> PIP ->
#: DIP -> tip), the knuckle line (index MCP -> pinky MCP) and wrist -> middle MCP. The four other
#: wrist-rooted bones are left out: they are proportions of the palm, where the rigs differ
#: (Intel's fan of metacarpals is about twice as wide at the wrist as LibHand's).
FIT_VECTORS = tuple(b for b in BONES if b[0] != 0) + ((5, 17), (0, 9))


def load_intel_poses(path: str | Path = POSE_FILE) -> tuple[np.ndarray, np.ndarray]:
    """``(positions (N, 17, 3) mm, rotations (N, 17, 3, 3))`` body -> camera, from a ``.pose`` file."""
    path = Path(path)
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = np.array([float(v) for v in line.split()])
        except ValueError as e:
            raise ValueError(f"{path}:{lineno}: not a list of numbers ({e})") from None
        if values.size != NUM_BODIES * 7 or not np.isfinite(values).all():
            raise ValueError(f"{path}:{lineno}: expected {NUM_BODIES * 7} finite numbers, got {values.size}")
        rows.append(values.reshape(NUM_BODIES, 7))
    if not rows:
        raise ValueError(f"{path}: no poses")
    data = np.stack(rows)
    rotations = Rotation.from_quat(data[..., 3:].reshape(-1, 4)).as_matrix().reshape(-1, NUM_BODIES, 3, 3)
    return data[..., :3] * 1000.0, rotations


def intel_joints(positions: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """``(N, 21, 3)`` mm joints (MediaPipe order) from ``load_intel_poses`` output."""
    joints = np.empty((positions.shape[0], 21, 3))
    for j, body in enumerate(_JOINT_BODY):
        if body is not None:
            joints[:, j] = positions[:, body]
        else:
            distal = _TIP_BODY[j]
            joints[:, j] = positions[:, distal] + rotations[:, distal, :, 2] * TIP_OFFSET_M[distal] * 1000.0
    return joints


def bone_directions(joints: np.ndarray, bones=BONES) -> np.ndarray:
    """``(..., len(bones), 3)`` unit vectors of ``bones`` (default ``BONES``) from ``(..., 21, 3)`` joints."""
    parent, child = np.array(bones).T
    d = joints[..., child, :] - joints[..., parent, :]
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _params(x: np.ndarray) -> np.ndarray:
    q = Rotation.from_rotvec(x[:3]).as_quat()  # (x, y, z, w)
    return np.concatenate([[0.0, 0.0, 500.0], [q[3], q[0], q[1], q[2]], x[3:]])


def fit_pose(joints: np.ndarray, model: HandModel, starts: int = 4, seed: int = 0) -> tuple[np.ndarray, float]:
    """Fit ``model`` to ``(21, 3)`` joints by the directions of ``FIT_VECTORS``. Returns ``(params
    (27,), rms angle in degrees between fitted and source directions of the 15 finger bones)``
    (the position is a placeholder, 500 mm ahead: only directions are fitted).
    Several starts (the palm's orientation from the source, perturbed) guard against local minima."""
    target = bone_directions(joints, FIT_VECTORS)
    lo = np.concatenate([[-np.inf] * 3, LIMITS[..., 0].ravel()])
    hi = np.concatenate([[np.inf] * 3, LIMITS[..., 1].ravel()])

    def residual(x):
        return (bone_directions(model.joints(_params(x))[0], FIT_VECTORS) - target).ravel()

    rng = np.random.default_rng(seed)
    best = None
    for k in range(starts):
        x0 = np.zeros(23)
        x0[:3] = rng.normal(0, math.pi, 3) if k else _orientation_guess(joints, model)
        x0[3:] = 0.5 * (lo[3:] + hi[3:]) * (k > 0)
        sol = least_squares(residual, x0, bounds=(lo, hi), x_scale=1.0, xtol=1e-10, ftol=1e-10)
        if best is None or sol.cost < best.cost:
            best = sol
    # mean squared chord length -> rms angle between unit vectors: chord = 2 sin(angle / 2)
    chord = np.linalg.norm(best.fun.reshape(-1, 3)[:15], axis=1)
    rms_deg = math.degrees(math.sqrt(np.mean((2 * np.arcsin(np.clip(chord / 2, 0, 1))) ** 2)))
    return _params(best.x), rms_deg


def _orientation_guess(joints: np.ndarray, model: HandModel) -> np.ndarray:
    """Rotation vector aligning the model's open-hand palm triangle (wrist, index MCP, pinky MCP)
    with the source's (Kabsch)."""
    ref = model.joints(_params(np.zeros(23)))[0]
    idx = [0, 5, 9, 13, 17]
    a = ref[idx] - ref[idx].mean(0)
    b = joints[idx] - joints[idx].mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    d = np.sign(np.linalg.det(u @ vt))
    r = u @ np.diag([1, 1, d]) @ vt
    return Rotation.from_matrix(r).as_rotvec()


@lru_cache(maxsize=1)
def real_pose_angles() -> np.ndarray:
    """``(69, 5, 4)`` finger angles (radians, within ``LIMITS``) of the shipped real poses."""
    try:
        data = json.loads(ANGLES_FILE.read_text())
        angles = np.array(data["angles_rad"], dtype=np.float64)
    except (OSError, ValueError, KeyError) as e:
        raise RuntimeError(f"{ANGLES_FILE}: cannot read the real-pose prior ({e}); "
                           "rebuild it with `python -m synth.intel_poses`") from None
    if angles.ndim != 3 or angles.shape[1:] != (5, 4) or not np.isfinite(angles).all():
        raise RuntimeError(f"{ANGLES_FILE}: expected (N, 5, 4) finite angles, got shape {angles.shape}")
    return np.clip(angles, LIMITS[..., 0], LIMITS[..., 1])


#: the tracker's finger-angle prior (``tracker.objective.load_pose_prior``), made from the fitted angles
PRIOR_FILE = Path(__file__).resolve().parents[1] / "tracker" / "data" / "pose_prior.json"
#: a finger angle's prior standard deviation is at least this (a fixed angle would be infinitely sure)
PRIOR_MIN_STD_DEG = 5.0


def pose_prior_doc(angles: np.ndarray) -> dict:
    """The tracker's pose prior from real poses' finger angles ``(N, 5, 4)`` rad: each angle's
    mean and standard deviation (at least ``PRIOR_MIN_STD_DEG``), ``(5, 4)`` rad each."""
    a = np.asarray(angles, np.float64)
    return {"source": "the finger angles of synth/assets/intel/intel_poses.json (69 real poses, Intel RealSense "
                      "hand_tracking_samples, Apache-2.0), by python -m synth.intel_poses --prior-only",
            "poses": int(len(a)), "min_std_deg": PRIOR_MIN_STD_DEG,
            "mean_rad": np.round(a.mean(0), 5).tolist(),
            "std_rad": np.round(np.maximum(a.std(0), np.radians(PRIOR_MIN_STD_DEG)), 5).tolist()}


def main(argv: list[str] | None = None) -> int:
    """Fit every pose in the Intel file and write the prior's angles (JSON), and from them the
    tracker's pose prior (each finger angle's mean and spread)."""
    p = CommandParser(prog="python -m synth.intel_poses", description=main.__doc__)
    p.add_argument("--poses", default=str(POSE_FILE), help="Intel .pose file")
    p.add_argument("--out", type=out_path, default=str(ANGLES_FILE), help="output JSON")
    p.add_argument("--prior-out", type=out_path, default=str(PRIOR_FILE), help="the tracker's pose prior (JSON)")
    p.add_argument("--prior-only", action="store_true", help="only the pose prior, from the shipped angles")
    args = p.parse_args(argv)
    if args.prior_only:
        write_json(args.prior_out, pose_prior_doc(real_pose_angles()))
        print(f"pose prior -> {args.prior_out}")
        return 0
    positions, rotations = load_intel_poses(args.poses)
    joints = intel_joints(positions, rotations)
    model = HandModel("right")
    fits = [fit_pose(j, model) for j in joints]
    residuals = np.array([r for _, r in fits])
    angles = np.stack([params[7:].reshape(5, 4) for params, _ in fits])
    doc = {"source": "Intel RealSense hand_tracking_samples, datasets/hand_data_example.pose (Apache-2.0)",
           "method": "synth.intel_poses.fit_pose: finger-bone directions, bounded least squares, right hand",
           "rms_residual_deg": [round(float(r), 3) for r in residuals],
           "angles_rad": np.round(angles, 5).tolist()}
    write_json(args.out, doc)
    write_json(args.prior_out, pose_prior_doc(np.clip(angles, LIMITS[..., 0], LIMITS[..., 1])))
    print(f"{len(fits)} poses -> {args.out}; rms bone-direction residual: median {np.median(residuals):.1f} deg, "
          f"max {residuals.max():.1f} deg")
    return 0


if __name__ == "__main__":
    sys.exit(main())
