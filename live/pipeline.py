"""RGB frame -> 3D hand joints, with no depth sensor: localise, estimate depth, track.

``LivePipeline(camera).process(rgb) -> LiveResult`` for full frames ``(H, W, 3) uint8`` RGB:

1. **Localisation**: when no hand is being followed, a coarse depthnet pass on the whole frame
   (letterboxed to a square) gives a hand mask; its largest blob's bounding box (grown, square) becomes the crop. While
   tracking, the crop follows the tracked hand (its projected joints, grown by 40%).
2. **Depth from RGB**: depthnet on the crop: relative depth and mask, pasted into full-frame
   maps.
3. **Metric depth from RGB alone** (as C2-rgb in experiments/pose_c1_c2.py): the relative depth
   is placed at the distance given by the palm's width in the mask (``distance_from_mask``), and the tracker treats the
   depth as known up to a constant (``depth_offset_free``), fitting the hand's distance from its
   silhouette and the known hand size.
4. **Tracking**: the PSO tracker with temporal seeding, loss detection and re-initialisation.

Timings per stage are in ``LiveResult.timings`` (seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np

from depthnet.model import DepthNet
from depthnet.targets import relative_to_metric
from handrgbd.camera import CameraIntrinsics
from renderer.projection import RegionOfInterest
from tracker.pso import PSOConfig
from tracker.tracking import Tracker, TrackerConfig, distance_from_mask

__all__ = ["LiveConfig", "LivePipeline", "LiveResult", "default_camera"]

def default_camera(width: int, height: int, hfov_deg: float = 60.0) -> CameraIntrinsics:
    """A typical webcam: square pixels, centred principal point, 60 degrees horizontal field of view."""
    return CameraIntrinsics.from_fov(width, height, hfov_deg)


@dataclass(frozen=True)
class LiveConfig:
    tracker: TrackerConfig = field(default_factory=lambda: TrackerConfig(pso=PSOConfig(48, 15), init_generations=30))
    min_mask_pixels: int = 150
    crop_margin: float = 0.4


class LiveResult(NamedTuple):
    status: str                     # "tracked" | "lost" | "no_hand"
    joints_mm: np.ndarray | None    # (21, 3)
    params: np.ndarray | None       # (27,)
    crop: RegionOfInterest | None
    relative: np.ndarray | None     # (H, W) relative depth on the crop, 1 elsewhere
    mask: np.ndarray | None         # (H, W) bool
    timings: dict


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return labels == k


class LivePipeline:
    def __init__(self, camera: CameraIntrinsics, net: DepthNet | None = None, config: LiveConfig | None = None):
        self.camera = camera
        self.net = DepthNet.from_pretrained() if net is None else net
        self.config = LiveConfig() if config is None else config
        tcfg = replace(self.config.tracker, mask_source="given", depth_offset_free=True)
        self.tracker = Tracker(camera, tcfg)
        self.crop: RegionOfInterest | None = None

    def close(self) -> None:
        self.tracker.close()

    def reset(self) -> None:
        """Forget the hand: the next frame localises it again."""
        self.tracker.reset()
        self.crop = None

    def _predict_square(self, rgb: np.ndarray, x0: int, y0: int, side: int):
        """depthnet on the square ``(x0, y0, side)`` of the frame (black where it leaves the
        image), pasted back at full size: ``(relative (H, W) float32, 1 outside; mask (H, W))``,
        or None when the square misses the image."""
        H, W = rgb.shape[:2]
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        patch = np.zeros((side, side, 3), np.uint8)
        patch[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = rgb[sy0:sy1, sx0:sx1]
        pred = self.net.predict(patch)
        relative = np.ones((H, W), np.float32)
        mask = np.zeros((H, W), bool)
        relative[sy0:sy1, sx0:sx1] = pred.relative[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
        mask[sy0:sy1, sx0:sx1] = pred.mask[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
        return relative, mask

    def _localise(self, rgb: np.ndarray) -> RegionOfInterest | None:
        # the whole frame letterboxed to a square (black bars, as crops past the image edge):
        # depthnet squashes any input to its square input size, and a squashed hand is a shape
        # it never saw
        H, W = rgb.shape[:2]
        side = max(H, W)
        mask = _largest_blob(self._predict_square(rgb, -((side - W) // 2), -((side - H) // 2), side)[1])
        if mask.sum() < self.config.min_mask_pixels:
            return None
        return RegionOfInterest.from_mask(mask, margin=0.25, square=True)

    def process(self, rgb: np.ndarray) -> LiveResult:
        t = {}
        t0 = time.perf_counter()
        H, W = rgb.shape[:2]
        if (W, H) != self.camera.size:
            raise ValueError(f"frame is {W}x{H} but the camera is {self.camera.width}x{self.camera.height}")
        crop = self.crop or self._localise(rgb)
        t["localisation"] = time.perf_counter() - t0
        if crop is None:
            self.tracker.reset()
            return LiveResult("no_hand", None, None, None, None, None, t)
        # depthnet on the crop (pixels outside the image are black), pasted back at full size
        t1 = time.perf_counter()
        x0, y0, x1, y1 = (int(round(v)) for v in crop.box)
        predicted = self._predict_square(rgb, x0, y0, max(x1 - x0, y1 - y0, 16))
        if predicted is None:
            self.reset()
            return LiveResult("no_hand", None, None, None, None, None, t)
        relative, mask = predicted
        mask = _largest_blob(mask)
        t["depthnet"] = time.perf_counter() - t1
        if mask.sum() < self.config.min_mask_pixels:
            self.reset()
            return LiveResult("no_hand", None, None, crop, relative, mask, t)
        # metric depth from RGB alone + tracking
        t2 = time.perf_counter()
        z = distance_from_mask(mask, self.camera, self.tracker.config.hand_length_mm)
        depth = relative_to_metric(relative, mask, z)
        r = self.tracker.step(depth, mask=mask)
        t["tracker"] = time.perf_counter() - t2
        self.crop = None
        if r.status == "tracked" and np.all(r.joints_mm[:, 2] > 50.0):
            uv = self.camera.project(r.joints_mm)
            crop = RegionOfInterest.from_points(uv, margin=self.config.crop_margin, square=True)
            inside = crop.x1 > 0 and crop.y1 > 0 and crop.x0 < W and crop.y0 < H
            if inside and crop.x1 - crop.x0 <= 2 * max(W, H):  # else: lost in practice, localise again
                self.crop = crop
        return LiveResult(r.status, r.joints_mm, r.params, crop, relative, mask, t)
