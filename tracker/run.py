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
import csv
import json
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from handrgbd.recording import Recording
from tracker.kinematics import DEFAULT_HAND_LENGTH_MM, HandModel
from tracker.metrics import pose_metrics
from tracker.pso import PSOConfig
from tracker.tracking import Tracker, TrackerConfig

log = logging.getLogger(__name__)

__all__ = ["track_recording", "infer_side_and_length", "track_main", "SHEET_FRAMES"]

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


def _overlay(frame, joints: np.ndarray | None, status: str) -> np.ndarray:
    """RGB (or the depth in grey) with the tracked skeleton, its palm centre (the mean of the
    wrist and the four finger MCPs, a ring) and the frame's status: ``(H, W, 3) uint8`` RGB."""
    import cv2

    from handrgbd.draw import draw_skeleton, grey_depth
    from tracker.detect import PALM_JOINTS

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


def track_recording(data: str | Path, out: str | Path | None, config: TrackerConfig, init: str = "auto",
                    mask_dir: str | Path | None = None, frames: int | None = None, progress: bool = True,
                    overlay: bool = False, independent: bool = False) -> dict:
    """Track every frame of a recording; returns the results dict (also written to ``out``).
    ``overlay``: also write ``out/overlay/NAME.png`` (skeleton over RGB, or over the depth in
    grey) and the contact sheet ``out/overlay.jpg``; ``independent``: initialise every frame
    afresh (frames as unrelated images; with ``init="gt"`` frame 0 still starts from truth)."""
    from tqdm import tqdm

    rec = Recording(data)
    if not rec.has_depth:
        raise ValueError(f"{rec.path}: tracking needs depth/ (this folder has none)")
    n = len(rec) if frames is None else min(frames, len(rec))
    gt = rec.joints_mm[:n] if rec.has_joints else None
    if init == "gt":
        if not (rec.has_poses and rec.has_joints):
            raise ValueError(f"{rec.path}: --init gt needs poses.npy and joints.npy")
        side, length = infer_side_and_length(rec.poses[0].astype(np.float64), rec.joints_mm[0].astype(np.float64))
        config = replace(config, side=side, hand_length_mm=length)
    masks = Recording(mask_dir) if mask_dir else None
    out = Path(out) if out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps({"tracker": asdict(config), "data": str(data), "init": init,
                                                     "independent": independent,
                                                     "mask": str(mask_dir) if mask_dir else config.mask_source},
                                                    indent=1, default=str) + "\n")
    joints = np.full((n, 21, 3), np.nan)
    poses = np.full((n, 27), np.nan)
    rows = []
    sheet_frames = set(np.linspace(0, n - 1, min(n, SHEET_FRAMES)).round().astype(int).tolist()) if n else set()
    tiles = []
    with Tracker(rec.camera, config) as tracker:
        if init == "gt":
            tracker.reset(rec.poses[0])
        try:
            for i in tqdm(range(n), disable=not progress, desc="track", unit="frame"):
                if independent and i > 0:
                    tracker.reset()
                frame = rec[i]
                mask = masks[i].mask if masks is not None else None
                r = tracker.step(frame.depth_mm, mask=mask, rgb=frame.rgb, camera=frame.camera)
                if r.joints_mm is not None:
                    joints[i], poses[i] = r.joints_mm, r.params
                rows.append({"frame": frame.name, "status": r.status, "objective": r.objective, "seconds": r.seconds})
                if overlay and out:
                    import cv2

                    (out / "overlay").mkdir(exist_ok=True)
                    img = _overlay(frame, r.joints_mm, r.status)
                    cv2.imwrite(str(out / "overlay" / f"{frame.name}.png"), img[..., ::-1])
                    if i in sheet_frames:
                        tiles.append(cv2.resize(img, (SHEET_TILE_PX, round(img.shape[0] * SHEET_TILE_PX / img.shape[1])),
                                                interpolation=cv2.INTER_AREA))
        finally:  # results so far are never lost
            results = _summarise(rows, joints, gt, tracker.backend)
            if out:
                np.save(out / "joints.npy", joints.astype(np.float32))
                np.save(out / "poses.npy", poses.astype(np.float32))
                with open(out / "frames.csv", "w", newline="") as f:
                    w = csv.DictWriter(f, fieldnames=["frame", "status", "objective", "seconds"])
                    w.writeheader()
                    w.writerows(rows)
                (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
            if tiles:  # after the results: a failing sheet loses nothing else
                import cv2

                from handrgbd.draw import tile_images

                cv2.imwrite(str(out / "overlay.jpg"), tile_images(tiles, SHEET_COLUMNS, SHEET_TILE_PX)[..., ::-1],
                            [cv2.IMWRITE_JPEG_QUALITY, SHEET_JPEG_QUALITY])
    return results


def _summarise(rows, joints, gt, backend) -> dict:
    done = len(rows)
    seconds = [r["seconds"] for r in rows]
    res = {"frames": done, "backend": backend,
           "fps": float(done / sum(seconds)) if seconds and sum(seconds) > 0 else None,
           "lost_frames": sum(r["status"] != "tracked" for r in rows),
           "no_hand_frames": sum(r["status"] == "no_hand" for r in rows),
           "mpjpe_mm": None}
    if gt is not None and done:
        m = pose_metrics(joints[:done], gt[:done])
        res.update({k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in m.items()})
    return res


def track_main(argv: list[str] | None = None) -> int:
    """Track the hand through a recording folder (depth), and score against ground truth."""
    p = argparse.ArgumentParser(prog="handrgbd track", description=track_main.__doc__)
    p.add_argument("data", help="recording folder")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--backend", choices=("auto", "gl", "cpu"), default="auto", help="scoring backend")
    p.add_argument("--particles", type=int, default=64, help="PSO particles")
    p.add_argument("--generations", type=int, default=25, help="PSO generations per frame")
    p.add_argument("--init", choices=("gt", "auto"), default="auto", help="frame 0 from ground truth, or automatic")
    p.add_argument("--independent", action="store_true",
                   help="initialise every frame afresh (frames as unrelated images), not only after a loss")
    p.add_argument("--mask", default="depth",
                   help="observed hand mask: depth (the hand found in the depth, default) | eq1 (the paper's "
                        "nearest 300 mm) | skin | a recording folder with mask/")
    p.add_argument("--side", choices=("right", "left"), default="right", help="hand side (--init auto)")
    p.add_argument("--hand-length", type=float, default=DEFAULT_HAND_LENGTH_MM, help="wrist to middle tip, mm")
    p.add_argument("--frames", type=int, default=None, help="track only the first N frames")
    p.add_argument("--seed", type=int, default=0, help="PSO random seed")
    p.add_argument("--overlay", action="store_true", help="also write OUT/overlay/*.png (skeleton over the image)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = p.parse_args(argv)
    mask_dir = None if args.mask in ("depth", "eq1", "skin") else args.mask
    try:
        config = TrackerConfig(side=args.side, hand_length_mm=args.hand_length,
                               pso=PSOConfig(args.particles, args.generations), backend=args.backend,
                               mask_source="given" if mask_dir else args.mask, seed=args.seed)
        res = track_recording(args.data, args.out, config, args.init, mask_dir, args.frames, progress=not args.json,
                              overlay=args.overlay, independent=args.independent)
    except ValueError as e:
        log.error("%s", e)
        return 2
    if args.json:
        print(json.dumps({k: v for k, v in res.items() if k != "pck_curve"}))
    else:
        mp = res.get("mpjpe_mm")
        print(f"{res['frames']} frames at {res['fps']:.1f} fps ({res['backend']} backend), lost {res['lost_frames']}"
              + (f", MPJPE {mp:.1f} mm, PA-MPJPE {res['pa_mpjpe_mm']:.1f} mm, AUC {res['pck_auc_0_50']:.3f}" if mp else ""))
    return 0


if __name__ == "__main__":
    sys.exit(track_main())
