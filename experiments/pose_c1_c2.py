"""The paper's C1 vs C2 study, end to end, with ground truth where the data has it.

On a recording folder (default: the embedded held-out synthetic test sequence):

1. depthnet estimates every frame's relative depth and hand mask from RGB alone; E (mm over
   true hand pixels), F(e) and mask IoU against the true depth (depth_gt/, else depth/).
2. The tracker runs three times:
   * C1: on the sensor depth (mask: eq. (1) on depth);
   * C2: on the estimated depth made metric with the hand's mean depth from the sensor (the
     paper's setting), with depthnet's mask;
   * C2-rgb: with no sensor information at all: the estimated relative depth is placed at the
     distance given by the palm's width in depthnet's mask, and the tracker fits the distance (the depth term takes
     the best constant shift per hypothesis; the silhouette of a hand of known size fixes the
     distance).
3. Reports the paper's number (mean distance of corresponding joints C1 vs C2; paper 24.71 mm)
   and, with ground-truth joints, MPJPE / root-relative / PA-MPJPE and 3D PCK AUC of each
   condition, and the tracker's speed.

A folder with RGB but no depth runs depthnet and C2-rgb only; ``--independent`` then treats the
frames as unrelated photographs (automatic initialisation on every frame).

Run: ``python -m experiments.pose_c1_c2 [--data DIR] [--out DIR] [...]``.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np

from depthnet.model import DepthNet, mask_has_arm
from depthnet.runtime import BACKENDS as DEPTHNET_BACKENDS
from depthnet.runtime import Inference
from handrgbd.progress import Progress
from depthnet.targets import DEPTH_SCALE_MM, make_targets, relative_to_metric, targets_from_mask
from handrgbd.args import SEED_MAX, CommandParser, existing_file, frame_range, integer, out_path
from handrgbd.depth import MAX_RANGE_MM, usable_depth
from handrgbd.outputs import check_outputs, clear_outputs, finite_or_none, make_folder, save_figure, save_npy, \
    undefined_reasons, write_csv, write_image, write_json
from handrgbd.recording import Recording
from tracker.metrics import PCK_THRESHOLDS_MM, pose_metrics
from tracker.pso import MAX_GENERATIONS, MAX_PARTICLES, PSOConfig
from tracker.run import truth_start
from tracker.tracking import SIDE_CHOICES, TrackerConfig

log = logging.getLogger(__name__)

__all__ = ["run", "main", "DEFAULT_DATA", "PAPER"]

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / "data" / "embedded" / "test_sequence"
PAPER = {"depth_error_mm": 22.88, "iou": 0.84, "c1_c2_joint_discrepancy_mm": 24.71}
CONDITIONS = ("c1", "c2", "c2rgb", "c2kp", "c2rgbkp")
#: the conditions' names in tables and plots; the +kp rows add depthnet's 2D keypoints to the
#: tracker (issue 21), extra rows beside the paper's C2, which stays as the paper defines it
LABELS = {"c1": "C1", "c2": "C2", "c2rgb": "C2-rgb", "c2kp": "C2+kp", "c2rgbkp": "C2-rgb+kp"}
_NO_TRUTH = "no ground-truth joints, or no frame with both a tracked hand and ground truth"
#: why a number of results.json is null (its ``"undefined"`` field names the ones that are)
UNDEFINED = {"depth_error_mm": "no frame has true depth (depth_gt/ or depth/) with a hand in it",
             "iou": "no frame has true depth (depth_gt/ or depth/) with a hand in it",
             "c1_c2_joint_discrepancy_mm": "no sensor depth (no C1), or no frame tracked in both C1 and C2",
             "tracker_fps": "no frame was tracked",
             **{f"{c}_{k}": _NO_TRUTH for c in CONDITIONS for k in ("mpjpe_mm", "rr_mpjpe_mm", "pa_mpjpe_mm",
                                                                  "pck_auc_0_50")}}


#: every file the study writes into its output folder (none may exist unless ``overwrite``)
OUTPUTS = ("config.json", "results.json", "frames.csv", *(f"joints_{c}.npy" for c in CONDITIONS), "f_curve.png",
           "discrepancy.png", "pck.png", "qualitative.png")


def run(data: str | Path = DEFAULT_DATA, out: str | Path = "out/pose_c1_c2", weights: str | None = None,
        frames: int | slice | None = None, particles: int = 64, generations: int = 25, backend: str = "auto",
        init: str = "gt", seed: int = 0, independent: bool = False, progress: bool | str = True,
        overwrite: bool = False, depthnet_backend: str = "auto", side: str = "right") -> dict:
    """Run the study; writes everything to ``out`` and returns the results dict.

    ``frames``: the first N frames, or a ``slice`` of them (``Recording.select``). ``side``: the
    hand model's side at automatic initialisations (``right``, ``left`` or ``auto``: both fitted,
    the better kept); a start from the truth (``init="gt"``) takes the true hand's side, and
    ``auto`` stays ``auto`` for later re-initialisations.

    ``out`` must not hold an earlier run's files unless ``overwrite``. It is created only after
    the recording, the weights and every frame's RGB (depthnet's pass) have been read, so bad
    input leaves nothing behind; a run stopped while tracking writes results.json with
    ``"complete": false``, ``"stopped_at"`` and ``"error"``."""
    out = check_outputs(out, OUTPUTS, overwrite)
    rec = Recording(data)
    if len(rec) == 0:
        raise ValueError(f"{rec.path}: no frames")
    rec = rec.select(slice(0, frames) if isinstance(frames, int) else frames)
    if not rec.has_rgb:
        raise ValueError(f"{rec.path}: the study needs rgb/ (depth is estimated from it)")
    n = len(rec)
    net = Inference(DepthNet.load(weights) if weights else DepthNet.from_pretrained(), depthnet_backend)
    has_depth, has_gt = rec.has_depth, rec.has_joints
    if init == "gt" and not has_gt:
        log.warning("%s has no ground-truth joints: automatic initialisation instead of --init gt", rec.path)
        init = "auto"
    config = TrackerConfig(side=side, pso=PSOConfig(particles, generations), backend=backend, seed=seed)
    start = start_side = None
    if init == "gt":  # poses.npy, or the pose fitted to frame 0's joints
        start, start_side, length = truth_start(rec)
        config = replace(config, side="auto" if side == "auto" else start_side, hand_length_mm=length)
    conditions = [c for c in (CONDITIONS if has_depth else ("c2rgb", "c2rgbkp"))
                  if net.config.keypoints or not c.endswith("kp")]
    # as track_frames configures them from depthnet's observations (an eq. 1 network's mask has the arm)
    given = replace(config, mask_source="given", mask_has_arm=mask_has_arm(net.config.foreground))
    cond_cfg = {"c1": config, "c2": given, "c2rgb": replace(given, depth_offset_free=True)}
    cond_cfg.update(c2kp=cond_cfg["c2"], c2rgbkp=cond_cfg["c2rgb"])

    # 1. depth from RGB; this and the depth metrics read every frame, so a bad file stops the
    # study before it writes anything ---------------------------------------------------------
    t0 = time.perf_counter()
    preds = []
    with Progress(n, "depthnet", "frame", progress) as bar:
        for i in range(n):
            preds.append(net.predict(rec[i].rgb))
            bar.update()
    depthnet_fps = n / (time.perf_counter() - t0)
    errors, per_frame, inter, union, usable = [], [], 0, 0, 0
    for i in range(n):
        f = rec[i]
        usable += f.depth_mm is not None and bool(usable_depth(f.depth_mm).any())
        gt_depth = f.clean_depth_mm
        row = {"frame": f.name}
        if gt_depth is not None:
            # the true hand as the network defines it: eq. 1, or the labelled hand (mask/)
            own = preds[i].foreground == "hand" and f.mask is not None
            t = targets_from_mask(gt_depth, f.mask > 0) if own else make_targets(gt_depth)
            hand = t.mask > 0
            err = np.abs(preds[i].relative - t.relative)[hand] * DEPTH_SCALE_MM
            errors.append(err)
            inter += (preds[i].mask & hand).sum()
            union += (preds[i].mask | hand).sum()
            row.update(depth_error_mm=float(err.mean()) if err.size else None,
                       iou=float((preds[i].mask & hand).sum() / max((preds[i].mask | hand).sum(), 1)))
        per_frame.append(row)
    all_err = np.concatenate(errors) if errors else np.array([])
    f_curve = [(int(e), float((all_err < e).mean())) for e in range(101)] if all_err.size else []

    if has_depth and not usable:
        raise ValueError(f"{rec.path}: no frame has usable depth in depth/ (every reading is 0 or past "
                         f"{MAX_RANGE_MM / 1000:g} m), which C1 and C2 track on; check depth/ and depth_unit_mm in "
                         f"camera.json")
    make_folder(out)
    clear_outputs(out, OUTPUTS)  # with overwrite: the earlier run's files go, none mix with ours
    write_json(out / "config.json", {
        "data": str(data), "weights": weights or "shipped (DepthNet.from_pretrained)", "frames": n,
        "frame_names": [rec.names[0], rec.names[-1]], "init": init,
        "independent": independent, "depthnet": net.config.to_dict(), "depthnet_backend": net.backend,
        "trackers": {c: asdict(cond_cfg[c]) for c in conditions}}, default=str)

    # 2. trackers -----------------------------------------------------------------------------
    joints = {c: np.full((n, 21, 3), np.nan) for c in conditions}
    status = {c: [] for c in conditions}
    seconds: dict[str, list[float]] = {c: [] for c in conditions}
    try:
        for c in conditions:
            backend = _track(c, rec, config, start, start_side, independent, preds, progress, joints[c], status[c],
                             seconds[c])
            save_npy(out / f"joints_{c}.npy", joints[c].astype(np.float32))
    except BaseException as e:  # noqa: BLE001 - recorded, then re-raised
        stopped = next((c for c in conditions if len(status[c]) < n), conditions[-1])
        write_json(out / "results.json", {
            "data": str(data), "frames": n, "complete": False,
            "stopped_at": f"{stopped} frame {rec.names[min(len(status[stopped]), n - 1)]}",
            "error": "interrupted" if isinstance(e, KeyboardInterrupt) else str(e)})
        raise

    # 3. report ---------------------------------------------------------------------------------
    gt = rec.joints_mm[:n] if has_gt else None
    res = {"data": str(data), "frames": n,
           "depth_error_mm": float(all_err.mean()) if all_err.size else None,
           "iou": float(inter / union) if union else None,
           "c1_c2_joint_discrepancy_mm": None, "c1_mpjpe_mm": None, "c2_mpjpe_mm": None, "c2rgb_mpjpe_mm": None,
           "tracker_fps": _fps(seconds, "c1" if "c1" in conditions else "c2rgb"),
           "depthnet_fps": depthnet_fps, "depthnet_backend": net.backend, "tracker_backend": backend}
    if "c1" in conditions:
        d = np.linalg.norm(joints["c1"] - joints["c2"], axis=-1).mean(-1)
        ok = np.isfinite(d)
        res["c1_c2_joint_discrepancy_mm"] = float(d[ok].mean()) if ok.any() else None
        for i, row in enumerate(per_frame):
            row["c1_c2_mm"] = float(d[i]) if ok[i] else None
    curves = {}
    for c in conditions:
        res[f"{c}_lost_frames"] = sum(s != "tracked" for s in status[c])
        res[f"{c}_fps"] = _fps(seconds, c)
        if gt is not None:
            m = pose_metrics(joints[c], gt)
            res[f"{c}_mpjpe_mm"] = m["mpjpe_mm"]
            res[f"{c}_rr_mpjpe_mm"] = m["rr_mpjpe_mm"]
            res[f"{c}_pa_mpjpe_mm"] = m["pa_mpjpe_mm"]
            res[f"{c}_pck_auc_0_50"] = m["pck_auc_0_50"]
            curves[c] = m["pck_curve"]
            err = np.linalg.norm(joints[c] - gt, axis=-1).mean(-1)
            for i, row in enumerate(per_frame):
                row[f"{c}_error_mm"] = float(err[i]) if np.isfinite(err[i]) else None
    res = finite_or_none(res)
    res["complete"] = True
    res["undefined"] = undefined_reasons(res, UNDEFINED)
    write_json(out / "results.json", res)
    write_csv(out / "frames.csv", per_frame, list(dict.fromkeys(k for row in per_frame for k in row)))
    _figures(out, rec, preds, joints, f_curve, curves, per_frame, n, config.hand_length_mm)
    return res


def _track(condition: str, rec: Recording, config: TrackerConfig, start: np.ndarray | None, start_side: str | None,
           independent: bool, preds, progress: bool | str, joints: np.ndarray, status: list, seconds: list) -> str | None:
    """Track every frame of ``rec`` in one condition (``handrgbd.sources.track_frames`` on the
    condition's source: ``sensor`` for C1, ``depthnet`` for C2 and ``depthnet-rgb`` for C2-rgb,
    both from the predictions ``preds`` already made), filling ``joints (n, 21, 3)`` and
    ``status`` in place and appending each tracked frame's time to ``seconds``; returns the
    scoring backend used. A frame whose observation cannot be made raises ``ValueError`` naming
    the recording, the frame and the condition."""
    from handrgbd.sources import depthnet_provider, make_provider, track_frames

    def predict(frame):
        return preds[frame.index]

    provider = make_provider("sensor") if condition == "c1" else \
        depthnet_provider(rgb_only=condition.startswith("c2rgb"), predict=predict, keypoints=condition.endswith("kp"))
    backend = None
    with Progress(len(rec), f"track {condition}", "frame", progress) as bar:
        try:
            for step in track_frames(rec, provider, config, start, independent, start_side=start_side):
                status.append(step.status)
                backend = step.backend or backend
                if step.result is not None:
                    seconds.append(step.result.seconds)
                    if step.result.joints_mm is not None:
                        joints[step.frame.index] = step.result.joints_mm
                bar.update()
        except ValueError as e:
            raise ValueError(f"{e} ({condition})") from e
    return backend


def _fps(seconds: dict, condition: str) -> float | None:
    """Frames per second of one condition's tracker over the frames it tracked, after the first:
    that one pays for numba's compilation on a fresh clone (seconds) and the initialisation."""
    times = seconds[condition][1:] or seconds[condition]
    return len(times) / sum(times) if sum(times) > 0 else None


def _figures(out: Path, rec: Recording, preds, joints, f_curve, curves, per_frame, n,
             hand_length_mm: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if f_curve:
        e, fr = zip(*f_curve)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(e, fr)
        ax.set(xlabel="error e (mm)", ylabel="F(e): fraction of hand pixels", xlim=(0, 100), ylim=(0, 1))
        ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, out / "f_curve.png")
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key, label in (("c1_c2_mm", "C1 vs C2"), ("c1_error_mm", "C1 vs truth"), ("c2_error_mm", "C2 vs truth"),
                       ("c2rgb_error_mm", "C2-rgb vs truth"), ("c2kp_error_mm", "C2+kp vs truth"),
                       ("c2rgbkp_error_mm", "C2-rgb+kp vs truth")):
        ys = [row.get(key) for row in per_frame]
        if any(y is not None for y in ys):
            ax.plot([y if y is not None else np.nan for y in ys], label=label)
    ax.set(xlabel="frame", ylabel="mean joint distance (mm)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, out / "discrepancy.png")
    plt.close(fig)
    if curves:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for c, curve in curves.items():
            ax.plot(PCK_THRESHOLDS_MM, curve, label=LABELS[c])
        ax.set(xlabel="threshold (mm)", ylabel="3D PCK", xlim=(0, 50), ylim=(0, 1))
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, out / "pck.png")
        plt.close(fig)
    # qualitative figure (paper's Fig. 6 + skeletons): RGB | sensor depth | estimate | difference | skeletons
    from handrgbd.draw import colorize_depth, draw_skeleton
    from handrgbd.sources import c2_mean_depth

    rows = []
    for i in np.unique(np.linspace(0, n - 1, min(4, n)).round().astype(int)):
        f = rec[int(i)]
        size = 192
        def fit(img):
            return cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)
        sensor = f.depth_mm if f.depth_mm is not None else np.zeros(f.rgb.shape[:2], np.float32)
        t = make_targets(sensor) if f.depth_mm is not None else None
        m = c2_mean_depth(sensor, f.camera, preds[i].mask, "hand" if preds[i].foreground == "hand" else "eq1",
                          hand_length_mm)  # C2's zero, as its tracker saw it
        mean = m if t is not None and np.isfinite(m) else 500.0
        est = relative_to_metric(preds[i].relative, preds[i].mask, mean)
        hand = (t.mask > 0) if t is not None else preds[i].mask
        lo, hi = mean - 150, mean + 150
        diff = np.clip(np.abs(est - sensor) / 50.0, 0, 1)
        diff_img = cv2.applyColorMap((255 * diff).astype(np.uint8), cv2.COLORMAP_HOT)[..., ::-1].copy()
        diff_img[~(hand & preds[i].mask)] = 40
        skel = f.rgb.copy()
        for c, colour in (("c1", (40, 220, 40)), ("c2", (255, 80, 40)), ("c2rgb", (60, 120, 255)),
                          ("c2rgbkp", (230, 60, 230))):
            if c in joints and np.isfinite(joints[c][i]).all():
                draw_skeleton(skel, f.camera.project(joints[c][i]), colour, 1)
        rows.append(np.concatenate([fit(f.rgb), fit(colorize_depth(np.where(hand, sensor, 0), lo, hi)),
                                    fit(colorize_depth(est, lo, hi)), fit(diff_img), fit(skel)], axis=1))
    write_image(out / "qualitative.png", np.concatenate(rows, axis=0))


def _table(res: dict) -> str:
    def fmt(v, unit=""):
        return "-" if v is None else (f"{v:.2f}{unit}" if isinstance(v, float) else str(v))

    rows = [("depth error E over hand pixels (mm)", res["depth_error_mm"], PAPER["depth_error_mm"]),
            ("mask IoU", res["iou"], PAPER["iou"]),
            ("C1 vs C2 mean joint distance (mm)", res["c1_c2_joint_discrepancy_mm"], PAPER["c1_c2_joint_discrepancy_mm"]),
            ("C1 MPJPE vs truth (mm)", res["c1_mpjpe_mm"], None),
            ("C2 MPJPE vs truth (mm)", res["c2_mpjpe_mm"], None),
            ("C2-rgb MPJPE vs truth (mm)", res["c2rgb_mpjpe_mm"], None)]
    rows += [(f"{LABELS[c]} MPJPE vs truth (mm), keypoint term", res[f"{c}_mpjpe_mm"], None)
             for c in ("c2kp", "c2rgbkp") if res.get(f"{c}_mpjpe_mm") is not None]
    for c in CONDITIONS:
        if res.get(f"{c}_pa_mpjpe_mm") is not None:
            rows.append((f"{LABELS[c]} PA-MPJPE / PCK AUC 0-50 mm",
                         f"{res[f'{c}_pa_mpjpe_mm']:.1f} / {res[f'{c}_pck_auc_0_50']:.3f}", None))
    rows += [("tracker fps (C1, from frame 2; 2 CPU cores / GTX 580)", res["tracker_fps"], 15.0),
             (f"depthnet fps ({res['depthnet_backend']}, one frame at a time)", res["depthnet_fps"], None)]
    width = max(len(name) for name, _, _ in rows) + 2
    lines = [f"{'quantity':<{width}}{'ours':>12}{'paper':>10}", "-" * (width + 22)]
    for name, ours, paper in rows:
        lines.append(f"{name:<{width}}{fmt(ours):>12}{fmt(paper):>10}")
    lines.append(f"frames: {res['frames']}; paper: Kinect v2 recordings, GPU (15 Hz tracker)")
    return "\n".join(lines)


def build_parser() -> CommandParser:
    p = CommandParser(prog="python -m experiments.pose_c1_c2",
                      description="The paper's C1 vs C2 study (tracking on sensor vs estimated depth).")
    p.add_argument("--data", default=str(DEFAULT_DATA), help="recording folder (default: the embedded test sequence)")
    p.add_argument("--out", type=out_path, default="out/pose_c1_c2", help="output folder (created once the input is accepted)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    p.add_argument("--weights", type=existing_file, default=None,
                   help="depthnet weights (default: the shipped cpu weights)")
    p.add_argument("--frames", type=frame_range, default=None,
                   help="N: the first N frames; A:B: frames A to B-1 (from 0; --init gt starts from A's truth)")
    p.add_argument("--side", choices=SIDE_CHOICES, default="right",
                   help="hand side at automatic initialisations (auto: both models fitted, the better kept); a start "
                        "from the truth takes the true hand's side")
    p.add_argument("--particles", type=integer(2, MAX_PARTICLES), default=64, help="PSO particles")
    p.add_argument("--generations", type=integer(1, MAX_GENERATIONS), default=25, help="PSO generations")
    p.add_argument("--backend", choices=("auto", "gl", "cpu"), default="auto", help="tracker scoring backend")
    p.add_argument("--depthnet-backend", choices=("auto", *DEPTHNET_BACKENDS), default="auto",
                   help="depthnet inference (auto: onnxruntime when installed, else torch)")
    p.add_argument("--init", choices=("gt", "auto"), default="gt", help="frame 0 from ground truth, or automatic")
    p.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help="tracker random seed")
    p.add_argument("--independent", action="store_true", help="automatic initialisation on every frame")
    p.add_argument("--no-progress", action="store_true", help="no progress bars: a log line every few seconds instead")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    try:
        res = run(args.data, args.out, args.weights, args.frames, args.particles, args.generations, args.backend,
                  args.init, args.seed, args.independent, progress="log" if args.no_progress else True, overwrite=args.overwrite,
                  depthnet_backend=args.depthnet_backend, side=args.side)
    except (ValueError, OSError) as e:  # OSError: a write the checks could not foresee
        return p.fail(e)
    except KeyboardInterrupt:  # results.json says where it stopped
        print(f"{p.prog}: interrupted", file=sys.stderr, flush=True)
        return 130
    print(_table(res))
    print(f"results: {Path(args.out) / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
