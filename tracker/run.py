"""``handrgbd track``: run the tracker over a recording folder and score it against ground truth.

Writes ``OUT/joints.npy`` ``(N, 21, 3)`` mm (NaN rows for frames without a hand),
``OUT/poses.npy`` ``(N, 27)``, ``OUT/frames.csv`` (status, objective, seconds per frame),
``OUT/results.json`` and the resolved config. With ground-truth joints in the folder it reports
MPJPE, root-relative MPJPE, PA-MPJPE and the 3D PCK curve with its AUC (0-50 mm). Results so
far are written even when a frame fails. ``--overlay`` adds ``OUT/overlay/NAME.png`` (the
skeleton over the RGB, or over the depth in grey for depth-only recordings) and
``OUT/overlay.jpg``, a contact sheet of up to ``SHEET_FRAMES`` of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path

import cv2
import numpy as np

from handrgbd.args import SEED_MAX, CommandParser, frame_range, integer, number, out_path
from handrgbd.depth import MAX_RANGE_MM
from handrgbd.draw import draw_skeleton, fit_width, grey_depth, tile_images
from handrgbd.outputs import (check_outputs, clear_outputs, finite_or_none, make_folder, save_npy, undefined_reasons,
                              write_csv, write_image, write_json)
from handrgbd.recording import Recording
from tracker.detect import PALM_JOINTS
from tracker.kinematics import DEFAULT_HAND_LENGTH_MM, HAND_LENGTH_RANGE_MM, HandModel
from tracker.metrics import pose_metrics
from tracker.pso import MAX_GENERATIONS, MAX_PARTICLES, PSOConfig
from tracker.pose import SIDES
from tracker.tracking import SIDE_CHOICES, TrackerConfig

log = logging.getLogger(__name__)

__all__ = ["track_recording", "infer_side_and_length", "truth_side_and_length", "truth_start", "track_main", "build_parser",
           "SHEET_FRAMES", "TRACK_OUTPUTS"]

#: the overlay contact sheet shows at most this many frames, evenly spaced over the recording
SHEET_FRAMES = 60
SHEET_COLUMNS, SHEET_TILE_PX, SHEET_JPEG_QUALITY = 5, 320, 85


def infer_side_and_length(pose: np.ndarray, joints: np.ndarray) -> tuple[str, float]:
    """The hand side and length that make ``pose (27,)`` produce ``joints (21, 3)`` (synthetic
    ground truth stores both, not the side or size)."""
    best = None
    for side in ("right", "left"):
        ref = HandModel(side, DEFAULT_HAND_LENGTH_MM).joints(pose)[0]
        t = pose[:3]
        scale = np.sum((joints - t) * (ref - t)) / max(np.sum((ref - t) ** 2), 1e-9)
        err = np.linalg.norm(t + scale * (ref - t) - joints, axis=1).mean()
        if best is None or err < best[0]:
            best = (err, side, DEFAULT_HAND_LENGTH_MM * scale)
    return best[1], float(best[2])


def truth_start(rec: Recording, index: int = 0) -> tuple[np.ndarray, str, float]:
    """Frame ``index``'s true pose ``(27,)``, side and hand length, for ``--init gt``: from
    poses.npy and joints.npy, or with joints.npy alone fitted to its joints (``tracker.fit``;
    the residual is logged). ``ValueError`` naming the recording without joints.npy."""
    if rec.has_poses and rec.has_joints:
        side, length = truth_side_and_length(rec, index)
        return rec.poses[index].astype(np.float64), side, length
    if not rec.has_joints:
        raise ValueError(f"{rec.path}: starting from the true pose (--init gt) needs joints.npy (poses.npy too, "
                         f"or the pose is fitted to the joints)")
    from tracker.fit import fit_pose

    try:
        fit = fit_pose(rec.joints_mm[index])
    except ValueError as e:
        raise ValueError(f"{rec.path} frame {rec.names[index]}: {e}") from e
    log.info("%s has no poses.npy: frame %s's pose fitted to its joints (%s hand, %.1f mm long, mean residual "
             "%.2f mm, worst joint %.2f mm)", rec.path, rec.names[index], fit.side, fit.hand_length_mm,
             fit.residual_mm, fit.max_mm)
    return fit.params, fit.side, fit.hand_length_mm


def truth_side_and_length(rec: Recording, index: int = 0) -> tuple[str, float]:
    """:func:`infer_side_and_length` from frame ``index``'s poses.npy and joints.npy; ``ValueError``
    naming the recording when it has no such ground truth or the two files disagree."""
    if not (rec.has_poses and rec.has_joints):
        raise ValueError(f"{rec.path}: starting from the true pose (--init gt) needs poses.npy and joints.npy")
    side, length = infer_side_and_length(rec.poses[index].astype(np.float64), rec.joints_mm[index].astype(np.float64))
    lo, hi = HAND_LENGTH_RANGE_MM
    if not lo <= length <= hi:
        raise ValueError(f"{rec.path}: poses.npy and joints.npy of frame {rec.names[index]} disagree: they imply a "
                         f"hand {length:.3g} mm long ({lo:g}-{hi:g} expected)")
    return side, length


def _overlay(frame, joints: np.ndarray | None, status: str) -> np.ndarray:
    """RGB (or the depth in grey) with the tracked skeleton, its palm centre (the mean of the
    wrist and the four finger MCPs, a ring) and the frame's status: ``(H, W, 3) uint8`` RGB."""
    img = frame.rgb.copy() if frame.rgb is not None else grey_depth(frame.depth_mm)
    scale = max(1, round(max(img.shape[:2]) / 320))  # lines and text readable on big frames
    if joints is not None:
        uv = frame.camera.project(joints)
        draw_skeleton(img, uv, (40, 230, 40), scale, dot_radius=scale + 1)
        palm = tuple(int(round(c)) for c in uv[list(PALM_JOINTS)].mean(0))
        cv2.circle(img, palm, 4 * scale, (255, 200, 0), scale, cv2.LINE_AA)
    cv2.putText(img, f"{frame.name} {status}", (4, 14 * scale), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * scale,
                (255, 255, 255), scale, cv2.LINE_AA)
    return img


#: every file and folder ``track`` writes into ``--out`` (none may exist unless ``--overwrite``)
TRACK_OUTPUTS = ("config.json", "results.json", "joints.npy", "poses.npy", "frames.csv", "overlay", "overlay.jpg")
#: why a metric of results.json is null (the ``"undefined"`` field names the ones that are)
UNDEFINED = {"fps": "no frame was processed"}
_TRUTH_METRICS = ("mpjpe_mm", "rr_mpjpe_mm", "pa_mpjpe_mm", "pck_auc_0_50", "pck_curve")


def track_recording(data: str | Path, out: str | Path | None, config: TrackerConfig, init: str = "auto",
                    mask_dir: str | Path | None = None, frames: int | slice | None = None, progress: bool | str = True,
                    overlay: bool = False, independent: bool = False, overwrite: bool = False,
                    depth_source: str = "auto") -> dict:
    """Track every frame of a recording; returns the results dict (also written to ``out``).
    ``frames``: the first N frames, or a ``slice`` of them (``Recording.select``; ``--init gt``
    starts from the first selected frame's truth). ``depth_source``: what the tracker fits, a
    source of ``handrgbd.sources`` (``sensor``: depth/; ``depthnet-rgb[:WEIGHTS]``: depth
    estimated from the RGB alone, C2-rgb; ``depthnet-rgb-crop``: the same on a crop depthnet
    finds, as live; ``depthnet``: estimated, scaled by the sensor; ...) or ``auto``: ``sensor``
    when the folder has depth/, else ``depthnet-rgb-crop``. ``overlay``: also
    write ``out/overlay/NAME.png`` (skeleton over RGB, or over the depth in grey) and the
    contact sheet ``out/overlay.jpg``; ``independent``: initialise every frame afresh (frames as
    unrelated images; with ``init="gt"`` the first frame still starts from truth).

    ``out`` must not hold a previous run's files unless ``overwrite``; it is created once the
    recording has been accepted. A run that stops early (a bad frame, Ctrl-C) still writes
    everything so far, with ``"complete": false``, ``"stopped_at"`` (the frame's name) and
    ``"error"``. Frames without usable depth are ``no_hand``; a recording with none at all
    raises ``ValueError`` once its results are written."""
    from handrgbd.progress import Progress
    from handrgbd.sources import (DEPTHNET_SOURCES, MASK_FROM_RGB, Observation, make_provider, missing_images,
                                  track_frames)

    out = check_outputs(out, TRACK_OUTPUTS, overwrite) if out else None
    rec = Recording(data)
    if len(rec) == 0:
        raise ValueError(f"{rec.path}: no frames")
    rec = rec.select(slice(0, frames) if isinstance(frames, int) else frames)
    n = len(rec)
    if depth_source == "auto":
        depth_source = "sensor" if rec.has_depth else "depthnet-rgb-crop"
    provider = make_provider(depth_source)
    lacking = missing_images(rec, depth_source)
    if lacking:
        raise ValueError(f"{rec.path}: depth source {depth_source} needs {lacking}/ (this folder has none"
                         + ("; an RGB-only folder tracks with --depth-source depthnet-rgb-crop)" if lacking == "depth" else ")"))
    if depth_source.split(":")[0] in DEPTHNET_SOURCES:
        from handrgbd.sources import check_source_weights

        check_source_weights(depth_source)
    from_rgb = depth_source.split(":")[0] in MASK_FROM_RGB  # depthnet's mask comes with the depth
    if from_rgb and (mask_dir or config.mask_source not in ("depth", "given")):
        raise ValueError(f"--mask: depth source {depth_source} brings depthnet's mask; --mask applies to sensor depth")
    gt = rec.joints_mm if rec.has_joints else None
    start = start_side = None
    if init == "gt":  # the true side; "auto" stays for the re-initialisations
        start, start_side, length = truth_start(rec)
        config = replace(config, side="auto" if config.side == "auto" else start_side, hand_length_mm=length)
    masks = Recording(mask_dir) if mask_dir else None
    if masks is not None:
        missing = sorted(set(rec.names) - set(masks.frames_with("mask")))
        if missing:
            raise ValueError(f"--mask: {masks.path} needs mask/ images for the {n} frames tracked; frame "
                             f"{missing[0]} has none")
        masks = masks.select(slice(masks.names.index(rec.names[0]), masks.names.index(rec.names[-1]) + 1))
        if masks.names != rec.names:
            raise ValueError(f"--mask: {masks.path}'s frames are not those of {rec.path}")
    if config.mask_source == "skin" and not rec.has_rgb:
        raise ValueError(f"--mask skin: {rec.path} has no rgb/ to find skin in")
    first = rec[0]  # the first frame must read: a bad file stops the run before --out exists
    if masks is not None and first.depth_mm is not None and masks[0].mask.shape != first.depth_mm.shape:
        raise ValueError(f"--mask: {masks.path}'s masks are {masks[0].mask.shape[1]}x{masks[0].mask.shape[0]}, the "
                         f"depth of {rec.path} is {first.depth_mm.shape[1]}x{first.depth_mm.shape[0]}")
    if masks is not None:
        sensor = provider

        def provider(frame, state):  # the sensor's depth, the hand from --mask DIR
            return Observation(sensor(frame, state).depth_mm, masks[frame.index].mask)
    if out:
        make_folder(out)
        clear_outputs(out, TRACK_OUTPUTS)  # with overwrite: the earlier run's files go, none mix with ours
        write_json(out / "config.json", finite_or_none({
            "tracker": asdict(config), "data": str(data), "frames": [rec.names[0], rec.names[-1]],
            "depth_source": depth_source, "init": init, "independent": independent,
            "mask": str(mask_dir) if mask_dir else ("depthnet" if from_rgb else config.mask_source)}), default=str)
    joints = np.full((n, 21, 3), np.nan)
    poses = np.full((n, 27), np.nan)
    rows = []
    unusable = 0
    sheet_frames = set(np.linspace(0, n - 1, min(n, SHEET_FRAMES)).round().astype(int).tolist())
    tiles = []
    stop: dict = {"stopped_at": rec.names[0]}
    backend = None
    steps = track_frames(rec, provider, config, start, independent, start_side=start_side)
    with Progress(n, "track", "frame", progress) as bar:
        try:
            for step in steps:
                i, frame, r = step.frame.index, step.frame, step.result
                backend = step.backend or backend
                unusable += not step.usable
                if r is not None and r.joints_mm is not None:
                    joints[i], poses[i] = r.joints_mm, r.params
                rows.append({"frame": frame.name, "status": step.status, "side": None if r is None else r.side,
                             "objective": float("nan") if r is None else r.objective,
                             "seconds": 0.0 if r is None else r.seconds})
                if overlay and out:
                    (out / "overlay").mkdir(exist_ok=True)
                    img = _overlay(frame, None if r is None else r.joints_mm, step.status)
                    write_image(out / "overlay" / f"{frame.name}.png", img)
                    if i in sheet_frames:  # kept at the sheet's size, not the frame's
                        tiles.append(fit_width(img, SHEET_TILE_PX))
                bar.update()
                stop = {"stopped_at": rec.names[i + 1]} if i + 1 < n else {}
        except BaseException as e:  # noqa: BLE001 - recorded, then re-raised
            stop["error"] = "interrupted" if isinstance(e, KeyboardInterrupt) else str(e)
            raise
        finally:  # results so far are never lost
            steps.close()  # the tracker too, now
            if not stop and unusable == n:
                stop = {"error": (f"{rec.path}: no frame has usable depth (every reading is 0 or past "
                                  f"{MAX_RANGE_MM / 1000:g} m); check depth/ and depth_unit_mm in camera.json")
                        if not from_rgb else f"{rec.path}: depthnet found no hand in any frame"}
            results = _summarise(rows, joints, gt, backend, n, stop, unusable)
            results["depth_source"] = depth_source
            if out:
                save_npy(out / "joints.npy", joints.astype(np.float32))
                save_npy(out / "poses.npy", poses.astype(np.float32))
                write_csv(out / "frames.csv", rows, ["frame", "status", "side", "objective", "seconds"])
                write_json(out / "results.json", results)
            if tiles:  # after the results: a failing sheet loses nothing else
                write_image(out / "overlay.jpg", tile_images(tiles, SHEET_COLUMNS, SHEET_TILE_PX),
                            [cv2.IMWRITE_JPEG_QUALITY, SHEET_JPEG_QUALITY])
    if results.get("error"):
        raise ValueError(results["error"])
    return results


def _summarise(rows, joints, gt, backend, n, stop, unusable) -> dict:
    """results.json: counts, speed and (with ground truth) accuracy; strict JSON (nulls with
    reasons in ``"undefined"``), ``"complete"`` false with ``"stopped_at"`` and ``"error"`` when
    the run ended before its last frame."""
    done = len(rows)
    seconds = sum(r["seconds"] for r in rows)
    res = {"frames": done, "frames_requested": n, "complete": "stopped_at" not in stop, **stop, "backend": backend,
           "fps": done / seconds if seconds > 0 else None,
           "lost_frames": sum(r["status"] != "tracked" for r in rows),
           "no_hand_frames": sum(r["status"] == "no_hand" for r in rows),
           "unusable_depth_frames": unusable,
           "sides": {side: sum(r["side"] == side for r in rows) for side in SIDES},  # frames tracked as each
           "mpjpe_mm": None}
    if gt is not None and done:
        res.update(pose_metrics(joints[:done], gt[:done]))
        if not np.isfinite(res["pck_curve"]).all():  # no frame with both a hand and truth
            res["pck_curve"] = None
    res = finite_or_none(res)
    no_truth = "no ground-truth joints (joints.npy)" if gt is None else "no frame with both a tracked hand and ground truth"
    res["undefined"] = undefined_reasons(res, {**UNDEFINED, **{k: no_truth for k in _TRUTH_METRICS}})
    return res


def _mask_arg(text: str) -> str:
    """argparse type of ``--mask``: a mask source's name, or a folder."""
    if text in ("depth", "eq1", "skin") or (text.strip() and Path(text).is_dir()):
        return text
    raise argparse.ArgumentTypeError(f"must be depth, eq1, skin or a recording folder with mask/ (got {text!r})")


def _source_arg(text: str) -> str:
    """argparse type of ``--depth-source``: ``auto`` or a depth source of ``handrgbd.sources``."""
    if text == "auto":
        return text
    from handrgbd.sources import source_arg

    return source_arg(text)


def build_parser() -> CommandParser:
    p = CommandParser(prog="handrgbd track", description=track_main.__doc__)
    p.add_argument("data", help="recording folder")
    p.add_argument("--out", type=out_path, required=True, help="output folder (created once the recording is accepted)")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    p.add_argument("--backend", choices=("auto", "gl", "cpu"), default="auto", help="scoring backend")
    p.add_argument("--particles", type=integer(2, MAX_PARTICLES), default=64, help="PSO particles")
    p.add_argument("--generations", type=integer(1, MAX_GENERATIONS), default=25, help="PSO generations per frame")
    p.add_argument("--init", choices=("gt", "auto"), default="auto", help="frame 0 from ground truth, or automatic")
    p.add_argument("--independent", action="store_true",
                   help="initialise every frame afresh (frames as unrelated images), not only after a loss")
    p.add_argument("--forearm", action=argparse.BooleanOptionalAction, default=True,
                   help="score a forearm with the hand (a cone rigid with the palm; on by default): sensor depth "
                        "with the arm in view holds the hand where a model without it slides down the arm (hard "
                        "bench, docs/tracker.md); (re-)initialisation fits the hand alone unless the arm is in "
                        "view for its length. A mask from --mask DIR is taken as the hand alone and never gets it; "
                        "depthnet's (trained on eq. 1, the arm in it) gets it with metric depth, not RGB alone")
    p.add_argument("--mask", type=_mask_arg, default="depth",
                   help="observed hand mask: depth (the hand found in the depth, default) | eq1 (the paper's "
                        "nearest 300 mm) | skin | a recording folder with mask/")
    p.add_argument("--side", choices=SIDE_CHOICES, default="right",
                   help="hand side at automatic initialisations (--init gt starts from the true side); auto: both "
                        "models are fitted and the better fit's side is tracked (right in 2 of 7 synthetic sequences: "
                        "docs/tracker.md)")
    p.add_argument("--hand-length", type=number(*HAND_LENGTH_RANGE_MM), default=DEFAULT_HAND_LENGTH_MM,
                   help="wrist to middle tip, mm")
    p.add_argument("--frames", type=frame_range, default=None,
                   help="N: the first N frames; A:B: frames A to B-1 (from 0; --init gt starts from A's truth)")
    p.add_argument("--depth-source", type=_source_arg, default="auto",
                   help="what the tracker fits: auto (sensor with depth/, else depthnet-rgb-crop) | sensor | "
                        "depthnet-rgb-crop[:WEIGHTS] (depth estimated from the RGB alone, on a crop around the hand "
                        "depthnet finds and follows) | depthnet-rgb[:WEIGHTS] (the same on the whole frame: crops) | "
                        "depthnet[:WEIGHTS] (estimated, scaled by the sensor) | sensor+kp[:WEIGHTS] (the sensor's "
                        "depth and depthnet's 2D keypoints from the registered RGB) | clean | degraded:NOISE:HOLES "
                        "(docs/compare.md)")
    p.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help="PSO random seed")
    p.add_argument("--overlay", action="store_true", help="also write OUT/overlay/*.png (skeleton over the image)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: a log line every few seconds instead")
    return p


def track_main(argv: list[str] | None = None) -> int:
    """Track the hand through a recording folder (sensor depth, or depth estimated from RGB), and score against
    ground truth."""
    p = build_parser()
    args = p.parse_args(argv)
    mask_dir = None if args.mask in ("depth", "eq1", "skin") else args.mask
    try:
        config = TrackerConfig(side=args.side, hand_length_mm=args.hand_length,
                               pso=PSOConfig(args.particles, args.generations), backend=args.backend,
                               mask_source="given" if mask_dir else args.mask, seed=args.seed, forearm=args.forearm)
        progress = "log" if args.no_progress else not args.json
        res = track_recording(args.data, args.out, config, args.init, mask_dir, args.frames, progress=progress,
                              overlay=args.overlay, independent=args.independent, overwrite=args.overwrite,
                              depth_source=args.depth_source)
    except (ValueError, OSError) as e:  # OSError: a write the checks could not foresee
        return p.fail(e)
    if args.json:
        print(json.dumps({k: v for k, v in res.items() if k != "pck_curve"}, allow_nan=False))
    else:
        mp = res.get("mpjpe_mm")
        fps = "-" if res["fps"] is None else f"{res['fps']:.1f}"
        print(f"{res['frames']} frames at {fps} fps ({res['backend']} backend), lost {res['lost_frames']}"
              + (f", MPJPE {mp:.1f} mm, PA-MPJPE {res['pa_mpjpe_mm']:.1f} mm, AUC {res['pck_auc_0_50']:.3f}"
                 if mp is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(track_main())
