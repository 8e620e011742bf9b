"""The 27-parameter hand fitted to 21 joints: ground truth for recordings that give joints only.

Real data sets give 3D joints, never our parameters; ``--init gt`` and ``handrgbd fit-poses``
need a pose. ``fit_pose(joints)`` finds the side, the hand length and the pose whose model
joints are nearest (least squares over the 63 coordinates, the finger angles within the joint
limits, the quaternion kept at unit length), and reports the residual. The model's joints scale
about its position with the hand length, so the length is one more parameter.

Start: for each side and each of three canonical poses, the palm (wrist and the four finger
knuckles) is aligned to the target's by a similarity transform (Umeyama), giving position,
orientation and length; then ``scipy.optimize.least_squares`` (trust region reflective, bounds).
The best of the starts wins. Given the previous frame's fit (``start``), a sequence is fitted from
it alone (and from the canonical starts when that fit is worse than ``RESTART_MM``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tracker.kinematics import DEFAULT_HAND_LENGTH_MM, HAND_LENGTH_RANGE_MM, HandModel
from tracker.pose import SIDES, HandPose, matrix_to_quaternion, quaternion_multiply
from tracker.pso import LOWER, UPPER

__all__ = ["JointFit", "fit_pose", "fit_recording", "PALM", "RESTART_MM", "MIN_JOINTS"]

#: wrist and the index, middle, ring and pinky knuckles (``handrgbd.Joint`` order)
PALM = (0, 5, 9, 13, 17)
#: a fit from the previous frame's pose worse than this (mean joint distance, mm) tries all starts
RESTART_MM = 5.0
#: the fewest given (finite) joints a pose is fitted to
MIN_JOINTS = 8
_STARTS = ("open", "relaxed", "fist")
_QUATERNION_WEIGHT = 100.0  # mm per unit of |q|^2 - 1: keeps q at unit length (FK normalises it)
# mm per radian away from the start's angles: next to nothing against the joints, but an angle no
# given joint depends on (a missing fingertip's last bend) stays put instead of stalling the solver
_ANGLE_PRIOR = 0.01
_MAX_EVALUATIONS = 400


@dataclass(frozen=True)
class JointFit:
    """params ``(27,)``; side; hand_length_mm; residual_mm: mean distance of the model's joints to
    the given targets; max_mm: the largest; joints_mm ``(21, 3)`` the fitted model's joints."""

    params: np.ndarray
    side: str
    hand_length_mm: float
    residual_mm: float
    max_mm: float
    joints_mm: np.ndarray


def _umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """R, t, c minimising ``|c R src + t - dst|`` over points ``(K, 3)``."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, s, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    D = np.diag([1.0, 1.0, d])
    R = u @ D @ vt
    c = float(np.trace(np.diag(s) @ D) / max((a ** 2).sum() / len(src), 1e-12))
    return R, md - c * R @ ms, c


def _solve(model: HandModel, target: np.ndarray, x0: np.ndarray, length_mm: float | None, given: np.ndarray):
    """Least squares over the ``given`` joints from ``x0`` = 27 parameters + log(length /
    default); returns (x, all 21 model joints)."""
    from scipy.optimize import least_squares

    lo = np.concatenate([LOWER, [math.log(HAND_LENGTH_RANGE_MM[0] / DEFAULT_HAND_LENGTH_MM)]])
    hi = np.concatenate([UPPER, [math.log(HAND_LENGTH_RANGE_MM[1] / DEFAULT_HAND_LENGTH_MM)]])
    lo[3:7], hi[3:7] = -2.0, 2.0
    fixed = None if length_mm is None else math.log(length_mm / DEFAULT_HAND_LENGTH_MM)

    def joints(x: np.ndarray) -> np.ndarray:
        p = x[:27]
        scale = math.exp(fixed if fixed is not None else x[27])
        return p[:3] + scale * (model.joints(p)[0] - p[:3])

    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)
    angles0 = x0[7:27].copy()

    def residual(x: np.ndarray) -> np.ndarray:
        q = x[3:7]
        return np.concatenate([(joints(x)[given] - target[given]).ravel(), [_QUATERNION_WEIGHT * (q @ q - 1.0)],
                               _ANGLE_PRIOR * (x[7:27] - angles0)])

    if fixed is not None:  # the length is given: a zero-width bound would stop the solver
        lo, hi, x0 = lo[:27], hi[:27], x0[:27]
        res = least_squares(lambda x: residual(np.concatenate([x, [fixed]])), x0, bounds=(lo, hi), x_scale="jac",
                            max_nfev=_MAX_EVALUATIONS)
        x = np.concatenate([res.x, [fixed]])
    else:
        res = least_squares(residual, x0, bounds=(lo, hi), x_scale="jac", max_nfev=_MAX_EVALUATIONS)
        x = res.x
    x[3:7] /= np.linalg.norm(x[3:7])
    return x, joints(x)


def _canonical_start(model: HandModel, side: str, name: str, target: np.ndarray, given: np.ndarray) -> np.ndarray:
    start = HandPose.canonical(name, position_mm=(0.0, 0.0, 0.0), side=side).to_array()
    ref = model.joints(start)[0]
    palm = [j for j in PALM if given[j]]
    R, t, c = _umeyama(ref[palm], target[palm])
    x = start.copy()
    x[:3] = t  # the model's position sits at the origin of ref: it maps to t
    x[3:7] = quaternion_multiply(matrix_to_quaternion(R), start[3:7])
    return np.concatenate([x, [math.log(min(max(c, 1e-3), 1e3))]])


def fit_pose(joints_mm: np.ndarray, side: str | None = None, hand_length_mm: float | None = None,
             start: JointFit | None = None) -> JointFit:
    """The model fitted to ``joints_mm (21, 3)`` (camera frame, mm, ``handrgbd.Joint`` order;
    NaN rows are missing joints, left out, as long as ``MIN_JOINTS`` remain, 3 of them on the
    palm). ``side``: None tries both; ``hand_length_mm``: None fits it; ``start``: a previous
    fit to start from (its side and length then hold unless given). The residual is over the
    given joints."""
    target = np.asarray(joints_mm, dtype=np.float64)
    if target.shape != (21, 3):
        raise ValueError(f"joints must be (21, 3) mm, got shape {target.shape}")
    given = np.isfinite(target).all(axis=1)
    if given.sum() < MIN_JOINTS or given[list(PALM)].sum() < 3:
        raise ValueError(f"only {int(given.sum())} of 21 joints given ({int(given[list(PALM)].sum())} on the palm): a "
                         f"pose needs {MIN_JOINTS}, 3 of them among the wrist and the finger knuckles")
    if side is not None and side not in SIDES:
        raise ValueError(f"side must be one of {SIDES} or None, got {side!r}")
    span = np.nanmax(np.linalg.norm(target[given] - target[given].mean(0), axis=1)) * 2
    if not 20.0 <= span <= 2 * HAND_LENGTH_RANGE_MM[1]:
        raise ValueError(f"joints span {span:.3g} mm from the wrist: not a hand in millimetres")
    best = None
    if start is not None:
        s = side or start.side
        x0 = np.concatenate([start.params, [math.log(start.hand_length_mm / DEFAULT_HAND_LENGTH_MM)]])
        best = _candidate(HandModel(s), s, target, x0, hand_length_mm or start.hand_length_mm, given)
        if best.residual_mm <= RESTART_MM:
            return best
    for s in (SIDES if side is None else (side,)):
        model = HandModel(s)
        for name in _STARTS:
            fit = _candidate(model, s, target, _canonical_start(model, s, name, target, given), hand_length_mm, given)
            if best is None or fit.residual_mm < best.residual_mm:
                best = fit
    return best


def _candidate(model: HandModel, side: str, target: np.ndarray, x0: np.ndarray, length_mm: float | None,
               given: np.ndarray) -> JointFit:
    x, joints = _solve(model, target, x0, length_mm, given)
    d = np.linalg.norm(joints[given] - target[given], axis=1)
    length = DEFAULT_HAND_LENGTH_MM * math.exp(x[27])
    return JointFit(x[:27].copy(), side, float(length), float(d.mean()), float(d.max()), joints)


def fit_recording(rec, side: str | None = None, hand_length_mm: float | None = None,
                  progress: bool | str = False) -> list[JointFit]:
    """Every frame of a ``handrgbd.Recording`` with joints.npy, each from the previous frame's
    fit; ``side``/``hand_length_mm`` None: fitted on frame 0, then kept for every frame (one
    hand: poses.npy stores neither)."""
    from handrgbd.progress import Progress

    if not rec.has_joints:
        raise ValueError(f"{rec.path}: fitting poses needs joints.npy")
    fits: list[JointFit] = []
    with Progress(len(rec), "fit-poses", "frame", progress) as bar:
        for i, joints in enumerate(rec.joints_mm):
            try:
                if fits:
                    side, hand_length_mm = fits[0].side, fits[0].hand_length_mm
                fits.append(fit_pose(joints, side, hand_length_mm, fits[-1] if fits else None))
            except ValueError as e:
                raise ValueError(f"{rec.path} frame {rec.names[i]}: {e}") from e
            bar.update()
    return fits


def build_parser():
    from handrgbd.args import CommandParser, number

    p = CommandParser(prog="handrgbd fit-poses", description=fit_main.__doc__)
    p.add_argument("data", help="recording folder with joints.npy")
    p.add_argument("--side", choices=(*SIDES, "auto"), default="auto", help="hand side (auto: the better fit)")
    p.add_argument("--hand-length", type=number(*HAND_LENGTH_RANGE_MM), default=None,
                   help="wrist to middle fingertip, mm (default: fitted)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing poses.npy")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: a log line every few seconds instead")
    return p


def fit_main(argv: list[str] | None = None) -> int:
    """Fit the 27-parameter hand to every frame's joints.npy and write the recording's poses.npy
    (ground truth for --init gt); prints each frame's residual."""
    import json

    from handrgbd.outputs import check_output_file, save_npy
    from handrgbd.recording import Recording

    p = build_parser()
    args = p.parse_args(argv)
    try:
        rec = Recording(args.data)
        if not rec.has_joints:
            raise ValueError(f"{rec.path}: fitting poses needs joints.npy (this folder has none)")
        check_output_file(rec.path / "poses.npy", args.overwrite, "poses.npy")
        fits = fit_recording(rec, None if args.side == "auto" else args.side, args.hand_length,
                             "log" if args.no_progress else not args.json)
        save_npy(rec.path / "poses.npy", np.stack([f.params for f in fits]).astype(np.float32))
    except (ValueError, OSError) as e:
        return p.fail(e)
    residual = np.array([f.residual_mm for f in fits])
    summary = {"frames": len(fits), "side": fits[0].side, "hand_length_mm": round(fits[0].hand_length_mm, 2),
               "residual_mm_mean": float(residual.mean()), "residual_mm_max": float(residual.max()),
               "per_frame": [{"frame": n, "residual_mm": round(f.residual_mm, 3), "max_mm": round(f.max_mm, 3)}
                             for n, f in zip(rec.names, fits)], "poses": str(rec.path / "poses.npy")}
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"{'frame':<12}{'mean mm':>9}{'max mm':>9}")
    for row in summary["per_frame"]:
        print(f"{row['frame']:<12}{row['residual_mm']:>9.2f}{row['max_mm']:>9.2f}")
    print(f"{len(fits)} frames, {fits[0].side} hand {fits[0].hand_length_mm:.1f} mm long: mean residual "
          f"{residual.mean():.2f} mm (worst frame {residual.max():.2f}); wrote {rec.path / 'poses.npy'}")
    return 0
