"""``handrgbd eval``: the paper's depth metrics on a recording folder.

* E: mean absolute depth error (mm) over the true hand pixels of all frames, the estimate made
  metric with the true hand's mean depth (the paper's setting): ``200 |D_T est - D_T true|``.
* F(e), e = 0..100 mm: fraction of true hand pixels with error below e (the paper's Fig. 5).
* Surface E (a diagnostic, not the paper's): E after ``hand_surface``, where the pixels the
  network reads as background or as a blend of hand and background at the outline take the
  value of the nearest pixel it reads as hand. It splits E into the outline's share (the mask's
  errors, which IoU also counts) and the hand's surface. A frame where the network reads no pixel
  as hand keeps its raw map.
* Flat-hand reference E: the error of an estimate that puts every true hand pixel at the hand's
  mean depth (``D_T = 0``), from the truth alone. E is only informative below it: it says how
  much of the hand's shape the network gets.
* IoU of the predicted mask (last mask stage > 0.5) with the true hand (eq. 1 on true depth).
* Tilt error (degrees, median over frames): the angle between the planes fitted (total least
  squares, in camera space) to the true and to the estimated hand surface, over the pixels that
  are hand in both. The tracker needs the hand's tilt most from the depth (docs/depthnet.md,
  "Tracking on several sequences"), and E hardly sees it. Its reference, the flat hand's tilt
  error, is the true plane's angle to the image plane.
* With a keypoint network (``cpu+keypoints``): the mean 2D joint error in pixels of the
  network's input (S x S), 2D PCK at 0.2 of the hand's box (a joint is correct within 0.2 x the
  larger side of the box around the true 2D joints), over joints inside the image; and the
  side's accuracy (right-hand probability above 0.5 for a right hand) where poses.npy tells the
  true side.
* E by hand size: frames binned by the fraction of the output the true hand covers
  (``HAND_FRACTION_BINS``); a hand far away or in a wide crop is a few output pixels wide, and
  most of them are edges.

Ground truth is ``depth_gt/`` when present (synthetic), else ``depth/`` (a real sensor), both
at the network's output resolution (nearest neighbour). Frames are resized whole to the input
size, no augmentation; with ``crop`` (``--crop``) each frame is first cut to a square around the
hand, like the paper's crops (``hand_box``): a wide real frame, where the hand covers a few
percent of the network's input, is then measured as the network is meant to see it.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import ndimage

from depthnet.data import LOW_LIGHT_SEED, Augmentation, _downsample_depth, augment_pair, check_hand_free_source, \
    degraded, hand_exclusion, hand_free_square
from depthnet.model import OUTPUT_STRIDE, DepthNet
from depthnet.targets import DEPTH_SCALE_MM, make_targets, targets_from_mask
from handrgbd.camera import CameraIntrinsics
from handrgbd.args import CommandParser, existing_file, frame_range, integer, number, out_path
from handrgbd.outputs import check_outputs, finite_or_none, make_folder, save_figure, undefined_reasons, write_csv, \
    write_image, write_json
from handrgbd.recording import Recording

log = logging.getLogger(__name__)

__all__ = ["evaluate", "eval_main", "hand_surface", "plane_normal", "tilt_error_deg", "hand_box", "THRESHOLDS_MM",
           "FLYING_RELATIVE", "CROP_SCALE", "JOINT_PAD_MM"]

THRESHOLDS_MM = np.arange(0, 101)
#: bins of the fraction of output pixels that are true hand, for E by hand size
HAND_FRACTION_BINS = (0.0, 0.08, 0.15, 0.25, 1.0)
_NO_AUG = Augmentation(enabled=False)


#: a predicted D_T at or above this (60 mm behind the hand's mean depth) is read as a blend of hand
#: and background at the outline, not as hand surface. Chosen on the validation split (300 frames,
#: the shipped weights): 0.2 / 0.3 / 0.5 gave surface E 19.89 / 19.84 / 20.26 mm.
FLYING_RELATIVE = 0.3
#: fewest pixels (hand in truth and estimate) for a frame's tilt error
MIN_TILT_PIXELS = 20
#: why a metric of metrics.json is null (its ``"undefined"`` field names the ones that are)
UNDEFINED = {"tilt_error_deg": f"no frame has {MIN_TILT_PIXELS} hand pixels that both truth and estimate call hand",
             "flat_tilt_error_deg": f"no frame has {MIN_TILT_PIXELS} hand pixels that both truth and estimate call hand",
             "keypoint_error_px": "no keypoint head in this network, or no joints.npy",
             "pck_0_2": "no keypoint head in this network, or no joints.npy",
             "side_accuracy": "no side head in this network, or no poses.npy (the side of the true hand)"}


def hand_surface(relative: np.ndarray, reliable: np.ndarray) -> np.ndarray:
    """``relative (H, W)`` where ``reliable (H, W) bool``; every other pixel takes the value of the
    nearest reliable pixel (Euclidean distance in pixels). ``(H, W) float32``; unchanged when no
    pixel (or every pixel) is reliable. For a predicted D_T map, ``reliable`` is the predicted
    mask and ``relative < FLYING_RELATIVE``: the hand's surface, extended past its outline."""
    rel = np.asarray(relative, dtype=np.float32)
    ok = np.asarray(reliable, dtype=bool)
    if rel.ndim != 2 or ok.shape != rel.shape:
        raise ValueError(f"relative must be (H, W) and reliable the same shape, got {rel.shape}, {ok.shape}")
    if not ok.any() or ok.all():
        return rel.copy()
    rows, cols = ndimage.distance_transform_edt(~ok, return_distances=False, return_indices=True)
    return rel[rows, cols]


def plane_normal(points_mm: np.ndarray) -> np.ndarray:
    """Unit normal ``(3,)`` of the total-least-squares plane through ``(N, 3)`` points (N >= 3),
    oriented toward the camera (z <= 0)."""
    p = np.asarray(points_mm, np.float64)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 3:
        raise ValueError(f"points must be (N >= 3, 3), got {p.shape}")
    n = np.linalg.svd(p - p.mean(0), full_matrices=False)[2][-1]
    return -n if n[2] > 0 else n


def tilt_error_deg(uv: np.ndarray, z_true_mm: np.ndarray, z_est_mm: np.ndarray, camera: CameraIntrinsics) -> float:
    """Angle (degrees, 0-90) between the planes fitted to two depth readings of the same pixels.

    uv : ``(N, 2)`` pixel coordinates of ``camera`` (a ``CameraIntrinsics``); z_true_mm, z_est_mm :
    ``(N,)`` depths (mm, > 0) at those pixels.
    """
    uv = np.asarray(uv, np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2 or np.shape(z_true_mm) != uv.shape[:1] or np.shape(z_est_mm) != uv.shape[:1]:
        raise ValueError(f"uv must be (N, 2) and both depths (N,), got {uv.shape}, {np.shape(z_true_mm)}, "
                         f"{np.shape(z_est_mm)}")
    return _angle_deg(plane_normal(camera.unproject(uv, z_true_mm)), plane_normal(camera.unproject(uv, z_est_mm)))


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle (degrees, 0-90) between two planes given their unit normals."""
    return float(np.degrees(np.arccos(np.clip(abs(a @ b), 0.0, 1.0))))


#: the normal of a flat hand at its mean depth: every point at one z, a fronto-parallel plane
_FRONTO_PARALLEL = np.array([0.0, 0.0, -1.0])


def _output_uv(frame_size: tuple[int, int], input_size: int, factor: int, rows, cols) -> np.ndarray:
    """Frame pixel coordinates ``(N, 2)`` of output pixels (row, col): the output keeps every
    ``factor``-th input pixel (``_downsample_depth``) of the whole frame resized to the input."""
    w, h = frame_size
    off = factor // 2
    u = (np.asarray(cols) * factor + off + 0.5) * w / input_size - 0.5
    v = (np.asarray(rows) * factor + off + 0.5) * h / input_size - 0.5
    return np.stack([u, v], axis=-1)


#: ``--crop``: the square's side over the larger side of the hand's box (the synthetic crops draw
#: 1.15-1.6, ``synth.generator.SynthConfig.crop_scale``)
CROP_SCALE = 1.3
#: the joints' box is grown by a finger's radius (mm at the nearest joint's depth): joints are
#: bone centres, the skin lies past them
JOINT_PAD_MM = 15.0


def hand_box(frame, scale: float = CROP_SCALE, hand: np.ndarray | None = None) -> tuple[int, int, int] | None:
    """The square ``(x0, y0, side)`` in pixels around the hand of ``frame`` (a
    ``handrgbd.Frame``), its side ``scale`` times the larger side of the hand's box, centred on
    it; it may reach past the image. The hand's box is its projected joints (``joints_mm``,
    grown by ``JOINT_PAD_MM``), else the pixels of ``hand (H, W) bool`` (e.g. mask/). None when
    neither is there."""
    if frame.joints_mm is not None and (frame.joints_mm[:, 2] > 0).all():
        lo, hi = frame.camera.padded_box(frame.joints_mm, JOINT_PAD_MM)
    elif hand is not None and hand.any():
        v, u = np.nonzero(hand)
        lo, hi = np.array([u.min(), v.min()], float), np.array([u.max() + 1, v.max() + 1], float)
    else:
        return None
    side = max(int(round(float((hi - lo).max()) * scale)), 8)
    centre = 0.5 * (lo + hi)
    return int(round(centre[0] - side / 2)), int(round(centre[1] - side / 2)), side


#: where eval's true hand comes from (``foreground_source``)
FOREGROUNDS = ("auto", "eq1", "mask")


def foreground_source(rec: Recording, foreground: str = "auto", network: str = "eq1") -> str:
    """``"depth_gt"`` (eq. 1 on the clean depth: synthetic recordings), ``"mask"`` (mask/, the
    labelled hand: real recordings), or ``"eq1"`` (eq. 1 on the sensor's depth, only when asked:
    it takes arms, held objects and tables within 300 mm for the hand). ``foreground="auto"``
    follows the network's own definition (``network``, its ``DepthNetConfig.foreground``): the
    labelled hand for a ``"hand"`` network, eq. 1 on clean depth for an ``"eq1"`` one where there
    is clean depth; ``"mask"`` asks for mask/, ``"eq1"`` for eq. 1 on whichever depth is there."""
    if foreground not in FOREGROUNDS:
        raise ValueError(f"--foreground: choose from {FOREGROUNDS} (got {foreground!r})")
    if foreground == "mask" or (foreground == "auto" and network == "hand"):
        if rec.frames_with("mask"):
            return "mask"
        why = "--foreground mask" if foreground == "mask" else "the network's mask is the labelled hand alone"
        raise ValueError(f"{rec.path}: no mask/ ({why}): add hand masks in mask/ (255 = hand, "
                         f"docs/data_format.md), or pass --foreground eq1")
    if rec.has_depth_gt:
        return "depth_gt"
    if foreground == "eq1":
        return "eq1"
    if rec.frames_with("mask"):
        return "mask"
    raise ValueError(f"{rec.path}: no depth_gt/ and no mask/, so nothing says which pixels are the hand: the paper's "
                     f"rule (eq. 1, everything within 300 mm of the nearest reading) would count an arm, a held object "
                     f"or a table as hand. Add hand masks in mask/ (255 = hand, docs/data_format.md; e.g. from a "
                     f"segmentation tool), or pass --foreground eq1 to use eq. 1 anyway")


@torch.no_grad()
def _frames(net: DepthNet, rec: Recording, indices, batch: int = 8, source: str = "depth_gt",
            crop: float | None = None, jpeg: int | None = None, low_light: float | None = None):
    s = net.config.input_size
    device = next(net.parameters()).device
    for start in range(0, len(indices), batch):
        items = []
        for i in indices[start:start + batch]:
            f = _degraded(rec[int(i)], int(i), jpeg, low_light)
            if crop is not None:
                box = hand_box(f, crop, f.mask if source == "mask" else None)
                if box is not None:
                    f = f.crop(box[0], box[1], box[2], box[2])
            gt = f.clean_depth_mm
            rgb, depth = augment_pair(f.rgb, gt, s, _NO_AUG, np.random.default_rng(0))
            hand = None
            if source == "mask":  # the labelled hand, through the same warp as the depth
                if f.mask is None:
                    raise ValueError(f"{rec.path} frame {f.name}: mask/ has no image for this frame (eval takes the "
                                     f"hand from mask/ when the folder has one)")
                hand = augment_pair(f.rgb, f.mask.astype(np.float32), s, _NO_AUG, np.random.default_rng(0))[1] > 0.5
                hand = _downsample_depth(hand, OUTPUT_STRIDE)
            items.append((f, rgb, depth, hand))
        x = torch.from_numpy(np.stack([it[1] for it in items]).transpose(0, 3, 1, 2).copy()).float() / 255.0
        out = net(x.to(device))
        est = out.depth.cpu().numpy()
        masks = out.mask.cpu().numpy() if out.mask is not None else None
        heatmaps = out.heatmaps.cpu().numpy() if out.heatmaps is not None else None
        sides = out.handedness.cpu().numpy() if out.handedness is not None else None
        for k, (f, rgb, depth, hand) in enumerate(items):
            heads = (None if heatmaps is None else heatmaps[k], None if sides is None else float(sides[k]))
            yield (f, rgb, _downsample_depth(depth, OUTPUT_STRIDE), est[k, 0], masks[k, 0] if masks is not None else None,
                   hand, heads)


def evaluate(net: DepthNet, folder: str | Path, max_frames: int | None = None, figure: str | Path | None = None,
             figure_frames: int = 4, progress: bool | str = False, foreground: str = "auto",
             frames: slice | None = None, crop: float | None = None, jpeg: int | None = None,
             low_light: float | None = None) -> dict:
    """Metrics on a recording folder (needs rgb/ and depth/ or depth_gt/). Returns
    ``{"depth_error_mm", "surface_error_mm", "flat_error_mm", "tilt_error_deg", "flat_tilt_error_deg", "iou",
    "frames", "pixels", "f_curve": [(e, F(e))...],
    "by_hand_fraction": [{"hand_fraction": [lo, hi], "frames", "depth_error_mm"}...]}``; with ``figure``
    also writes the paper's Fig. 6 style panel (RGB | true depth | estimate | difference);
    ``progress``: as ``handrgbd.progress.Progress``'s mode; ``foreground``: where the true hand comes
    from (``foreground_source``; the result's ``"foreground"`` says which); ``frames``: a range of
    frames (``Recording.select``), of which ``max_frames`` are spread; ``crop``: cut each frame
    to the square ``hand_box(frame, crop)`` first (the result's ``"crop"`` says the scale; frames
    without joints or a labelled hand are kept whole); ``jpeg``: JPEG-compress each frame's RGB at
    this quality first, whole (``depthnet.data.jpeg_roundtrip``; the result's ``"jpeg"``);
    ``low_light``: before that, each frame's RGB as taken with this gain in a dim scene
    (``depthnet.data.low_light``, its noise drawn from the frame's index: the same every run;
    the result's ``"low_light"``)."""
    from handrgbd.progress import Progress

    rec = Recording(folder).select(frames)
    if not rec.has_rgb or not (rec.has_depth or rec.has_depth_gt):
        raise ValueError(f"{rec.path}: evaluation needs rgb/ and depth/ (or depth_gt/)")
    source = foreground_source(rec, foreground, net.config.foreground)
    indices = rec.spread(max_frames)
    n = len(indices)
    was_training = net.training
    net.eval()
    errors, inter, union, frames, flat_sum, surface_sum, tilts, flat_tilts = [], 0, 0, 0, 0.0, 0.0, [], []
    size_sums = np.zeros((len(HAND_FRACTION_BINS) - 1, 3))  # per bin: frames, error sum, pixels
    panels = []
    show = set(indices[np.linspace(0, n - 1, min(figure_frames, n)).round().astype(int)]) if figure else set()
    bar = Progress(n, "eval", "frame", progress)
    kp_errors, kp_hits, side_hits = [], [], []
    for f, rgb, depth, rel, mask, hand, heads in _frames(net, rec, indices, source=source, crop=crop, jpeg=jpeg,
                                                          low_light=low_light):
        bar.update()
        if f.joints_mm is not None and (f.joints_mm[:, 2] > 0).all():
            _score_heads(f, heads, net.config.input_size, kp_errors, kp_hits, side_hits)
        t = targets_from_mask(depth, hand) if hand is not None else make_targets(depth)
        frames += 1
        if not t.mask.any():
            continue
        hand = t.mask > 0
        err = np.abs(rel - t.relative)[hand] * DEPTH_SCALE_MM
        errors.append(err)
        flat_sum += float(np.abs(t.relative[hand]).sum()) * DEPTH_SCALE_MM
        b = min(np.searchsorted(HAND_FRACTION_BINS, hand.mean(), side="right") - 1, len(size_sums) - 1)
        size_sums[b] += (1, err.sum(), err.size)
        pred_mask = (mask > 0.5) if mask is not None else (rel < 0.5)
        inter += (pred_mask & hand).sum()
        union += (pred_mask | hand).sum()
        surface = hand_surface(rel, pred_mask & (rel < FLYING_RELATIVE))
        surface_sum += float(np.abs(surface - t.relative)[hand].sum()) * DEPTH_SCALE_MM
        both = hand & pred_mask
        if both.sum() >= MIN_TILT_PIXELS:
            rows, cols = np.nonzero(both)
            uv = _output_uv((f.rgb.shape[1], f.rgb.shape[0]), net.config.input_size, OUTPUT_STRIDE, rows, cols)
            z_true = depth[both].astype(np.float64)
            z_est = t.mean_depth_mm + rel[both].astype(np.float64) * DEPTH_SCALE_MM
            if (z_est > 0).all():
                n_true = plane_normal(f.camera.unproject(uv, z_true))  # one fit serves both angles
                tilts.append(_angle_deg(n_true, plane_normal(f.camera.unproject(uv, z_est))))
                flat_tilts.append(_angle_deg(n_true, _FRONTO_PARALLEL))
        if f.index in show:
            panels.append(_panel(rgb, t, rel, hand))
    bar.close()
    net.train(was_training)
    if not errors:
        raise ValueError(f"{rec.path}: no frame has a hand in its depth")
    err = np.concatenate(errors)
    curve = [(int(e), float((err < e).mean())) for e in THRESHOLDS_MM]
    if figure and panels:
        make_folder(Path(figure).parent)
        write_image(figure, np.concatenate(panels, axis=0))
    by_size = [{"hand_fraction": [lo, hi], "frames": int(n), "depth_error_mm": float(e / px) if px else None,
                **({} if px else {"undefined": "no frame's hand covers this fraction of the image"})}
               for (lo, hi), (n, e, px) in zip(zip(HAND_FRACTION_BINS[:-1], HAND_FRACTION_BINS[1:]), size_sums)]
    return {"depth_error_mm": float(err.mean()), "surface_error_mm": surface_sum / err.size,
            "flat_error_mm": flat_sum / err.size,
            "tilt_error_deg": float(np.median(tilts)) if tilts else None,
            "flat_tilt_error_deg": float(np.median(flat_tilts)) if flat_tilts else None,
            "iou": float(inter / max(union, 1)), "frames": frames, "pixels": int(err.size), "f_curve": curve,
            "by_hand_fraction": by_size, "foreground": source, "crop": crop, "jpeg": jpeg, "low_light": low_light,
            "keypoint_error_px": float(np.mean(kp_errors)) if kp_errors else None,
            "pck_0_2": float(np.mean(kp_hits)) if kp_hits else None,
            "side_accuracy": float(np.mean(side_hits)) if side_hits else None}


#: hand-free squares scored per frame by ``hand_free_scores``, and the seed of their draws
HAND_FREE_SQUARES = 3
HAND_FREE_SEED = 2411


def _degraded(f, index: int, jpeg: int | None, low_light: float | None):
    """``f`` with its RGB as eval's options deliver it (``depthnet.data.degraded``: taken in a dim
    scene, the noise drawn from the frame's ``index``, then JPEG); unchanged without them."""
    if jpeg is None and low_light is None:
        return f
    return replace(f, rgb=degraded(f.rgb, jpeg, low_light, np.random.default_rng((LOW_LIGHT_SEED, int(index)))))


def _seen(low_light: float | None, jpeg: int | None) -> str:
    """How eval's options took the frames' RGB, for its printed line ("" without them)."""
    return "".join([f", RGB taken at gain {low_light:g} in a dim scene" if low_light else "",
                    f", RGB JPEG-compressed at quality {jpeg}" if jpeg else ""])


def hand_free_scores(net: DepthNet, folder: str | Path, max_frames: int | None = None, progress: bool | str = False,
                     jpeg: int | None = None, low_light: float | None = None,
                     squares: int = HAND_FREE_SQUARES) -> dict:
    """How sure a keypoint network is of a hand where there is none, on full frames (rgb/,
    depth/ or depth_gt/, mask/ for every frame; ``handrgbd synth --full-frame``): per frame the
    square around the hand (``hand_box``, ``CROP_SCALE``) and ``squares`` hand-free squares
    (``depthnet.data.hand_free_square``: away from the hands and what eq. 1 keeps with them,
    drawn from the frame's index), each through the network alone. A candidate's score is its
    keypoints' mean confidence, what the live localiser compares crops by. Returns
    ``{"frames", "squares", "hand_confidence_median", "hand_free_confidence_median",
    "hand_free_confidence_p90", "hand_free_surer_than_hand"`` (the share of hand-free squares
    surer than the hand's square of the same frame), ``"hand_free_mask_fraction"`` (the mean
    share of a hand-free square the predicted mask covers), ``"jpeg", "low_light"}``."""
    from handrgbd.progress import Progress

    if not net.config.keypoints:
        raise ValueError("hand-free scores need a network with keypoint heads (how sure it is of a hand)")
    rec = Recording(folder)
    check_hand_free_source(rec, "hand-free scores")
    indices = rec.spread(max_frames)
    hand_conf, free_conf, surer, free_mask = [], [], [], []
    bar = Progress(len(indices), "hand-free", "frame", progress)
    for i in indices:
        bar.update()
        f = _degraded(rec[int(i)], int(i), jpeg, low_light)
        box = hand_box(f, CROP_SCALE, f.mask)
        if box is None:
            continue
        x0, y0, side = box
        sure = float(np.mean(net.predict(f.crop(x0, y0, side, side).rgb).keypoint_confidence))
        hand_conf.append(sure)
        depth = f.clean_depth_mm
        exclude, rng = hand_exclusion(depth, f.mask), np.random.default_rng((HAND_FREE_SEED, int(i)))
        for _ in range(squares):
            square = hand_free_square(exclude, rng)
            if square is None:
                break
            x0, y0, side = square
            pred = net.predict(f.crop(x0, y0, side, side).rgb)
            free_conf.append(float(np.mean(pred.keypoint_confidence)))
            surer.append(free_conf[-1] > sure)
            free_mask.append(float(np.mean(pred.mask)))
    bar.close()
    if not free_conf:
        raise ValueError(f"{rec.path}: no frame has a hand and a hand-free square beside it")
    return {"frames": len(hand_conf), "squares": len(free_conf), "hand_confidence_median": float(np.median(hand_conf)),
            "hand_free_confidence_median": float(np.median(free_conf)),
            "hand_free_confidence_p90": float(np.percentile(free_conf, 90)),
            "hand_free_surer_than_hand": float(np.mean(surer)), "hand_free_mask_fraction": float(np.mean(free_mask)),
            "jpeg": jpeg, "low_light": low_light}


#: 2D PCK: a joint is correct within this fraction of the larger side of the true joints' box
PCK_FRACTION = 0.2


def _score_heads(f, heads, input_size: int, errors: list, hits: list, sides: list) -> None:
    """Append one frame's 2D joint errors (network input pixels; joints inside the image), PCK
    hits and side hit (with poses.npy) to the lists."""
    from depthnet.model import keypoints_from_heatmaps, output_to_image
    from handrgbd.joints import hand_side

    heatmaps, logit = heads
    h, w = f.camera.height, f.camera.width
    truth = f.camera.project(f.joints_mm)
    if heatmaps is not None:
        uv, _ = keypoints_from_heatmaps(heatmaps)
        out = heatmaps.shape[1:][::-1]
        scale = np.array([input_size / w, input_size / h])  # image pixels -> network input pixels
        pred = output_to_image(uv, out, (w, h))
        inside = (truth[:, 0] >= -0.5) & (truth[:, 0] < w - 0.5) & (truth[:, 1] >= -0.5) & (truth[:, 1] < h - 0.5)
        if inside.any():
            err = np.linalg.norm((pred - truth) * scale, axis=1)[inside]
            box = ((truth.max(0) - truth.min(0)) * scale).max()
            errors.extend(err.tolist())
            hits.extend((err < PCK_FRACTION * box).tolist())
    if logit is not None and f.pose is not None:
        sides.append((logit > 0) == (hand_side(f.pose, f.joints_mm) == "right"))


def _panel(rgb: np.ndarray, t, rel: np.ndarray, hand: np.ndarray, size: int = 160) -> np.ndarray:
    """RGB | true relative depth | estimate | |difference| (colour-coded, 0-50 mm)."""
    from handrgbd.draw import colorize_depth

    def up(img):
        return cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST)

    lo, hi = -0.6, 0.6
    gt = np.where(hand, t.relative, 0)
    true_img = colorize_depth(np.where(hand, t.relative - lo + 1e-3, 0).astype(np.float32), 0, hi - lo)
    est_img = colorize_depth(np.where(rel < 0.5, rel - lo + 1e-3, 0).astype(np.float32), 0, hi - lo)
    diff = np.clip(np.abs(rel - gt) * DEPTH_SCALE_MM / 50.0, 0, 1)
    diff_img = cv2.applyColorMap((255 * diff).astype(np.uint8), cv2.COLORMAP_HOT)[..., ::-1].copy()
    diff_img[~hand] = 40
    return np.concatenate([up(rgb), up(true_img), up(est_img), up(diff_img)], axis=1)


#: every file ``eval`` writes into ``--out`` (none may exist unless ``--overwrite``)
EVAL_OUTPUTS = ("metrics.json", "f_curve.csv", "f_curve.png", "qualitative.png")


def _frames_arg(text: str) -> int | slice:
    """argparse type of eval's ``--frames``: ``N`` (spread over the folder) or ``A:B`` (a range)."""
    return frame_range(text) if ":" in text else integer(1)(text)


def build_parser() -> CommandParser:
    p = CommandParser(prog="handrgbd eval", description=eval_main.__doc__)
    p.add_argument("--data", required=True, help="recording folder")
    p.add_argument("--weights", type=existing_file, default=None,
                   help="weights file (default: the shipped cpu weights)")
    p.add_argument("--out", type=out_path, default=None, help="folder for f_curve.csv, f_curve.png, qualitative.png, metrics.json")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    p.add_argument("--frames", type=_frames_arg, default=None,
                   help="N: N frames spread over the folder; A:B: frames A to B-1 (from 0)")
    p.add_argument("--crop", nargs="?", type=number(1.0, 10.0), const=CROP_SCALE, default=None,
                   help=f"cut each frame to a square around the hand first (its joints, else mask/), SCALE times the "
                        f"hand's box (default {CROP_SCALE}), like the paper's crops")
    p.add_argument("--jpeg", type=integer(1, 100), default=None, metavar="Q",
                   help="JPEG-compress each frame's RGB at quality Q first, as a webcam's MJPEG or a video file does")
    p.add_argument("--low-light", type=number(1, 1000), default=None, metavar="GAIN",
                   help="take each frame's RGB first as a camera would in a scene GAIN times dimmer (its gain "
                        "raised as much: shot and read noise; before --jpeg)")
    p.add_argument("--hand-free", action="store_true",
                   help="full frames (with mask/): instead of E, how sure the keypoints are of a hand in squares "
                        "without one, against the hand's own square (what the live localiser compares)")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    p.add_argument("--foreground", choices=FOREGROUNDS, default="auto",
                   help="the true hand: auto = the network's own (eq1 networks: depth_gt/, eq. 1 on clean depth, "
                        "else mask/, else an error; hand networks: mask/); mask = mask/, the labelled hand; eq1 = "
                        "the paper's eq. 1 on whichever depth is there")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: a log line every few seconds instead")
    return p


def eval_main(argv: list[str] | None = None) -> int:
    """Evaluate depth network weights on a recording folder (E, F(e), IoU, tilt error, figure)."""
    p = build_parser()
    args = p.parse_args(argv)
    try:
        out = check_outputs(args.out, EVAL_OUTPUTS, args.overwrite) if args.out else None
        net = DepthNet.load(args.weights) if args.weights else DepthNet.from_pretrained()
        spread, frames = (None, args.frames) if isinstance(args.frames, slice) else (args.frames, None)
        if args.hand_free:
            if out or args.crop or frames is not None:
                raise ValueError("--hand-free scores whole frames and prints its numbers: without --out, --crop "
                                 "and a frame range A:B (--frames N spreads N frames)")
            return _print_hand_free(hand_free_scores(net, args.data, spread, "log" if args.no_progress else not args.json,
                                                     args.jpeg, args.low_light), args.json)
        m = finite_or_none(evaluate(net, args.data, spread, figure=out / "qualitative.png" if out else None,
                                    progress="log" if args.no_progress else not args.json,
                                    foreground=args.foreground, frames=frames, crop=args.crop,
                                    jpeg=args.jpeg, low_light=args.low_light))
        if out:
            make_folder(out)
            write_csv(out / "f_curve.csv", [["error_mm", "fraction_of_hand_pixels"], *m["f_curve"]])
            _plot_curve(m["f_curve"], out / "f_curve.png")
            metrics = {k: v for k, v in m.items() if k != "f_curve"}
            metrics["undefined"] = undefined_reasons(metrics, UNDEFINED)
            write_json(out / "metrics.json", metrics)
    except (ValueError, OSError) as e:  # OSError: a write the checks could not foresee
        return p.fail(e)
    summary = {"depth_error_mm": m["depth_error_mm"], "surface_error_mm": m["surface_error_mm"],
               "flat_error_mm": m["flat_error_mm"],
               "tilt_error_deg": m["tilt_error_deg"], "flat_tilt_error_deg": m["flat_tilt_error_deg"], "iou": m["iou"],
               "frames": m["frames"], "by_hand_fraction": m["by_hand_fraction"], "foreground": m["foreground"],
               "crop": m["crop"], "jpeg": m["jpeg"], "low_light": m["low_light"],
               "keypoint_error_px": m["keypoint_error_px"], "pck_0_2": m["pck_0_2"],
               "side_accuracy": m["side_accuracy"]}
    if args.json:
        print(json.dumps(summary, allow_nan=False))
    else:
        print(f"E = {m['depth_error_mm']:.2f} mm over {m['pixels']} hand pixels, IoU = {m['iou']:.3f}, "
              f"{m['frames']} frames, true hand from {m['foreground']}"
              + (f", frames cut to a square {m['crop']:g}x the hand" if m["crop"] else "")
              + _seen(m["low_light"], m["jpeg"])
              + " (paper: E 22.88 mm, IoU 0.84); a flat hand "
              f"at its mean depth: "
              f"E = {m['flat_error_mm']:.2f} mm")
        print(f"  E of the hand's surface, the outline's blends and misses filled from the nearest hand "
              f"pixel: {m['surface_error_mm']:.2f} mm (a diagnostic; the paper's E is the first)")
        if m["tilt_error_deg"] is not None:
            print(f"  tilt error (median over frames) {m['tilt_error_deg']:.1f} deg; a flat hand: "
                  f"{m['flat_tilt_error_deg']:.1f} deg")
        if m["keypoint_error_px"] is not None:
            print(f"  2D joints: mean error {m['keypoint_error_px']:.2f} px of the {net.config.input_size} px input, "
                  f"PCK@0.2 {m['pck_0_2']:.3f}"
                  + (f", side told right in {m['side_accuracy']:.1%} of frames" if m["side_accuracy"] is not None
                     else ""))
        for b in m["by_hand_fraction"]:
            e = "-" if b["depth_error_mm"] is None else f"{b['depth_error_mm']:.2f} mm"
            print(f"  hand covers {b['hand_fraction'][0]:.0%}-{b['hand_fraction'][1]:.0%} of the image: "
                  f"E = {e} over {b['frames']} frames")
    return 0


def _print_hand_free(m: dict, as_json: bool) -> int:
    if as_json:
        print(json.dumps(m, allow_nan=False))
        return 0
    print(f"hand-free squares: {m['squares']} in {m['frames']} frames{_seen(m['low_light'], m['jpeg'])}; mean keypoint confidence, median "
          f"{m['hand_free_confidence_median']:.3f}, 90th percentile {m['hand_free_confidence_p90']:.3f} (the hands' "
          f"squares: median {m['hand_confidence_median']:.3f}); surer than their frame's hand: "
          f"{m['hand_free_surer_than_hand']:.1%}; predicted mask: {m['hand_free_mask_fraction']:.1%} of a square")
    return 0


def _plot_curve(curve, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    e, frac = zip(*curve)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(e, frac)
    ax.set_xlabel("error threshold e (mm)")
    ax.set_ylabel("fraction of hand pixels F(e)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(eval_main())
