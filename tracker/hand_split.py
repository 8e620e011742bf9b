"""The hand's pixels in sensor depth: a small CNN that splits a detected region into hand and not.

A held object touches the palm, so the depth's surface runs from the hand onto it and the
detector's region (``tracker.detect``) takes in both; a box larger than the hand even draws the
detected palm onto itself (hard bench, object sequence 0: the palm 94 mm off, every start 56-78 mm
off). Oikonomidis et al. (ICCV 2011) model the object; here a network trained on the synthetic
generator's labels (``mask/``: the hand alone, not the object, not the arm) says which of the
region's pixels are hand, from the depth alone, and the tracker's start leaves the others out
(``TrackerConfig.hand_split``; what is left out is scored as an occluder).

Input: ``tracker.start_net.start_input``'s three channels (the region, its depth relative to the
palm, every reading as context) on a wider crop, ``SPLIT_SIZE`` px square and
``2 x SPLIT_CROP_HALF x 180 mm`` wide at the detected palm's depth (the region's pixels beyond it
are left as they are). Output: the logit of "hand" per crop pixel, ``(SPLIT_SIZE,
SPLIT_SIZE)``, taken back to the frame's pixels by the inverse of the crop's map.

Training (``python -m tracker.hand_split --data DIR [DIR ...] [--out PATH]``): recordings with
``mask/`` (the synthetic generator's); each frame's hand is detected as the tracker does and its
crop labelled from ``mask/``; frames without a detection, or whose crop holds under half the
labelled hand, are skipped. The shipped weights' recipe is in docs/tracker.md ("The learned
start": this network first, then the start's, which trains on its regions).
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from handrgbd.camera import CameraIntrinsics
from tracker.detect import DetectorConfig, HandDetection, detect_hand, without_support_plane
from tracker.small_nets import Checkpoint, fit, held_out, load_network, one_cycle, training_main
from tracker.start_net import DEPTH_CLIP, crop_matrix, start_input, turn_crops

log = logging.getLogger(__name__)

__all__ = ["SPLIT_SIZE", "SPLIT_CROP_HALF", "split_input", "to_frame", "HandSplitter", "find_hand", "default_weights",
           "prepare", "train"]

#: the crop's side, pixels, and its half width at the palm's depth in units of 180 mm (4.2 mm a
#: pixel at the palm's depth: a finger two pixels wide); the region's pixels beyond it stay hand
SPLIT_SIZE = 64
SPLIT_CROP_HALF = 0.75
#: a crop pixel is hand above this probability
THRESHOLD = 0.5
#: training frames whose crop holds less than this share of the labelled hand are skipped
MIN_HAND_IN_CROP = 0.5
WEIGHTS_NAME = "hand_split.pt"


# ---- geometry (pure functions) -----------------------------------------------------------------
def split_input(region: np.ndarray, depth_mm: np.ndarray, context_mm: np.ndarray, camera: CameraIntrinsics,
                palm_uv: np.ndarray, palm_z_mm: float) -> np.ndarray:
    """The network's input ``(3, SPLIT_SIZE, SPLIT_SIZE) float32``: ``start_input``'s channels
    (same arguments) on the wider crop."""
    return start_input(region, depth_mm, context_mm, camera, palm_uv, palm_z_mm, half=SPLIT_CROP_HALF,
                       size=SPLIT_SIZE)


def to_frame(crop: np.ndarray, camera: CameraIntrinsics, palm_uv: np.ndarray, palm_z_mm: float,
             shape: tuple[int, int], outside: float = 0.0) -> np.ndarray:
    """``crop (SPLIT_SIZE, SPLIT_SIZE) float32`` (e.g. probabilities) in the frame's pixels,
    ``shape (H, W)``, bilinear; ``outside`` beyond the crop."""
    M = crop_matrix(camera, palm_uv, palm_z_mm, SPLIT_CROP_HALF, SPLIT_SIZE)
    return cv2.warpAffine(np.ascontiguousarray(crop, np.float32), M, (shape[1], shape[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=outside)


def label_crop(mask: np.ndarray, camera: CameraIntrinsics, palm_uv: np.ndarray, palm_z_mm: float) -> np.ndarray:
    """A frame's hand label ``mask (H, W) bool`` on the crop, ``(SPLIT_SIZE, SPLIT_SIZE) bool``:
    a crop pixel is hand where most of the frame's pixels under it are (the mask averaged over a
    crop pixel's footprint, then sampled)."""
    M = crop_matrix(camera, palm_uv, palm_z_mm, SPLIT_CROP_HALF, SPLIT_SIZE)
    k = max(1, int(round(1.0 / abs(float(M[0, 0])))))  # frame pixels per crop pixel
    share = cv2.blur(mask.astype(np.float32), (k, k)) if k > 1 else mask.astype(np.float32)
    return cv2.warpAffine(share, M, (SPLIT_SIZE, SPLIT_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0) > 0.5


# ---- the network --------------------------------------------------------------------------------
def _network():
    """A small U-Net: 64 -> 32 -> 16 -> 8 and back, 8 / 16 / 32 / 64 channels, skip
    connections; one logit per pixel (0.12 M parameters)."""
    import torch
    import torch.nn as nn

    def block(i: int, o: int):
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.e1, self.e2, self.e3, self.mid = block(3, 8), block(8, 16), block(16, 32), block(32, 64)
            self.d3, self.d2, self.d1 = block(64 + 32, 32), block(32 + 16, 16), block(16 + 8, 8)
            self.head = nn.Conv2d(8, 1, 1)

        def forward(self, x):
            pool, up = nn.functional.max_pool2d, nn.functional.interpolate
            e1 = self.e1(x)
            e2 = self.e2(pool(e1, 2))
            e3 = self.e3(pool(e2, 2))
            m = self.mid(pool(e3, 2))
            d = self.d3(torch.cat([up(m, scale_factor=2.0), e3], 1))
            d = self.d2(torch.cat([up(d, scale_factor=2.0), e2], 1))
            d = self.d1(torch.cat([up(d, scale_factor=2.0), e1], 1))
            return self.head(d)[:, 0]

    return UNet()


def default_weights() -> Path:
    """The shipped weights file."""
    return Path(__file__).resolve().parent / "data" / WEIGHTS_NAME


class HandSplitter:
    """The trained network, loaded once; ``hand`` splits a detection's region."""

    def __init__(self, weights: str | os.PathLike | None = None):
        path = Path(weights) if weights is not None else default_weights()
        self.net, _ = load_network(path, lambda saved: _network(), "the hand split",
                                   "docs/tracker.md, 'The learned start',")
        self.path = path

    def probability(self, x: np.ndarray) -> np.ndarray:
        """``x (3, S, S)`` -> the probability of hand per crop pixel ``(S, S) float32``."""
        import torch

        with torch.no_grad():
            y = self.net(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])[0]
        return torch.sigmoid(y).numpy()

    def hand(self, region: np.ndarray, depth_mm: np.ndarray, context_mm: np.ndarray, camera: CameraIntrinsics,
             palm_uv: np.ndarray, palm_z_mm: float) -> np.ndarray:
        """``(H, W) bool``: the pixels of ``region`` the network calls hand, and those beyond its
        crop (``split_input``'s arguments: the detection's region, the depth it saw, every
        reading, its palm)."""
        x = split_input(region, depth_mm, context_mm, camera, palm_uv, palm_z_mm)
        p = to_frame(self.probability(x), camera, palm_uv, palm_z_mm, region.shape, outside=1.0)
        return region & (p > THRESHOLD)


def find_hand(depth_mm: np.ndarray, context_mm: np.ndarray, camera: CameraIntrinsics,
              detector: DetectorConfig | None = None, splitter: HandSplitter | None = None,
              min_pixels: int = 50) -> tuple[HandDetection | None, np.ndarray]:
    """The hand in sensor depth, as the tracker's start sees it: ``tracker.detect.detect_hand``
    on ``depth_mm (H, W)`` (the support plane already left out), its region split by
    ``splitter`` (None: not split) with ``context_mm`` (every reading) as the network's context.

    Where the split leaves out some of the region, the hand is detected again in the depth
    without those pixels; where that finds no hand at least ``min_pixels`` large (the default is
    ``TrackerConfig.min_hand_pixels``'s) mostly inside what the network called hand (a palm
    hidden behind the object leaves only fingers, which are no palm to detect), the first
    detection is kept with the hand's pixels as its region. The border distance (the arm's
    reach) is the nearer of the two detections': the cut can part the hand from its arm.
    Returns (the detection or None, the depth it saw: ``depth_mm`` without the pixels left out)."""
    found = detect_hand(depth_mm, camera, detector)
    if found is None or found.mask is None or splitter is None:
        return found, depth_mm
    keep = splitter.hand(found.mask, depth_mm, context_mm, camera, found.palm_uv, float(found.palm_mm[2]))
    other = found.mask & ~keep
    if keep.sum() < min_pixels or not other.any():
        return found, depth_mm
    cut = np.where(other, 0.0, depth_mm).astype(np.float32)
    again = detect_hand(cut, camera, detector)
    if again is None or again.mask is None or again.mask.sum() < min_pixels \
            or (again.mask & keep).sum() < 0.5 * again.mask.sum():
        return found._replace(mask=keep), cut
    log.debug("hand split: %d of the region's %d pixels left out; palm moved %.0f mm", int(other.sum()),
              int(found.mask.sum()), float(np.linalg.norm(again.palm_mm - found.palm_mm)))
    return again._replace(border_mm=min(found.border_mm, again.border_mm)), cut


# ---- training -----------------------------------------------------------------------------------
def prepare(folders: Sequence[str | os.PathLike]) -> dict[str, np.ndarray]:
    """Inputs and labels from recordings: ``x (N, 3, S, S) float16``, ``y (N, S, S) bool`` (the
    labelled hand with a reading)."""
    from handrgbd.recording import Recording

    xs, ys = [], []
    for folder in folders:
        rec = Recording(folder)
        if not rec.has_mask:
            raise ValueError(f"{rec.path}: the hand split trains on mask/ (the labelled hand); this recording has none")
        kept, t0 = 0, time.perf_counter()
        for i in range(len(rec.names)):
            fr = rec[i]
            if fr.mask is None or fr.depth_mm is None:
                continue
            raw = np.where(np.isfinite(fr.depth_mm), fr.depth_mm, 0.0).astype(np.float32)
            depth = without_support_plane(raw, fr.camera)
            found = detect_hand(depth, fr.camera)
            if found is None or found.mask is None:
                continue
            z = float(found.palm_mm[2])
            seen = fr.mask & (raw > 0)
            y = label_crop(seen, fr.camera, found.palm_uv, z)
            # crop pixels per frame pixel
            scale = float(crop_matrix(fr.camera, found.palm_uv, z, SPLIT_CROP_HALF, SPLIT_SIZE)[1, 1]) ** 2
            if not seen.any() or y.sum() < MIN_HAND_IN_CROP * seen.sum() * scale:
                continue
            xs.append(split_input(found.mask, depth, raw, fr.camera, found.palm_uv, z).astype(np.float16))
            ys.append(y)
            kept += 1
        log.info("hand_split: %s: %d of %d frames kept (%.0f s)", rec.path, kept, len(rec.names), time.perf_counter() - t0)
    if not xs:
        raise ValueError(f"no usable frame in {', '.join(map(str, folders))} (no hand detected, or the crop misses it)")
    return {"x": np.array(xs), "y": np.array(ys)}


def region_iou(pred: np.ndarray, truth: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Per sample IoU of the hand inside the region: ``(N, S, S) bool`` each -> ``(N,)``."""
    p, t = pred & region, truth & region
    union = (p | t).sum((1, 2))
    return np.where(union > 0, (p & t).sum((1, 2)) / np.maximum(union, 1), 1.0)


def train(data: dict[str, np.ndarray], out: str | os.PathLike, epochs: int = 12, batch: int = 64, lr: float = 3e-3,
          seed: int = 0, val: int = 500) -> dict:
    """Train on ``prepare``'s arrays; the last ``val`` shuffled samples are held out. Loss: binary
    cross-entropy over the crop's readings, three times over the region's. Augmented by in-plane
    rotations, left-right flips and a shift of the relative depth (+-0.1). A checkpoint
    ``OUT.ckpt`` is written atomically after every epoch and resumed from; ``out`` gets the
    float16 weights and the held-out metrics (the region's hand IoU before and after the split)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    va, tr = held_out(len(data["x"]), val, rng)
    X = torch.from_numpy(data["x"].astype(np.float32))
    Y = torch.from_numpy(data["y"].astype(np.float32))
    net = _network()
    opt, sched = one_cycle(net, lr, epochs, math.ceil(len(tr) / batch))
    ckpt = Checkpoint(out, "hand_split")
    start, rng = ckpt.resume(net, opt, sched, rng)

    def evaluate() -> dict:
        net.eval()
        with torch.no_grad():
            p = torch.cat([net(X[va[i:i + 256]]) for i in range(0, len(va), 256)]).numpy() > 0
        net.train()
        region, truth = data["x"][va, 0] > 0.5, data["y"][va]
        before, after = region_iou(region, truth, region), region_iou(p, truth, region)
        return {"val_frames": int(len(va)), "region_hand_iou_before": float(before.mean()),
                "region_hand_iou_after": float(after.mean()),
                "worst_tenth_before": float(np.sort(before)[: max(1, len(va) // 10)].mean()),
                "worst_tenth_after": float(np.sort(after)[: max(1, len(va) // 10)].mean())}

    def loss_of(b):
        x, y = X[b].clone(), Y[b].clone()[:, None]
        x[:, 1:] += (torch.rand(len(b), 1, 1, 1) - 0.5) * 0.2 * (x[:, 1:] != 0)
        flip = torch.rand(len(b)) < 0.5
        x[flip], y[flip] = x[flip].flip(-1), y[flip].flip(-1)
        x, y = turn_crops(x, (torch.rand(len(b)) * 2 - 1) * math.pi, y)
        weight = (x[:, 2] < DEPTH_CLIP).float() + 2.0 * x[:, 0]  # readings, the region three times
        return (F.binary_cross_entropy_with_logits(net(x), y[:, 0], reduction="none") * weight).sum() / weight.sum()

    metrics = fit(net, opt, sched, ckpt, rng, tr, batch, epochs, start, loss_of, evaluate, lambda m: (
        f"region's hand IoU {m['region_hand_iou_before']:.3f} -> {m['region_hand_iou_after']:.3f} (worst tenth "
        f"{m['worst_tenth_before']:.3f} -> {m['worst_tenth_after']:.3f})"))
    ckpt.finish(net, metrics=metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    return training_main(argv, "Train the hand split (tracker/hand_split.py) on synthetic recordings.",
                         "recording folders with mask/ (the labelled hand)", default_weights(), 12, prepare, train)


if __name__ == "__main__":
    raise SystemExit(main())
