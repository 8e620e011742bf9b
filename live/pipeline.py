"""RGB frame -> 3D hand joints, with no depth sensor: localise, estimate depth, track.

``LivePipeline(camera).process(rgb) -> LiveResult`` for full frames ``(H, W, 3) uint8`` RGB:

1. **Localisation**: when no hand is being followed, ``HandFinder`` looks for it: a coarse
   depthnet pass on the whole frame (letterboxed to a square) gives candidate blobs, and with a
   keypoint network each candidate's crop, and where none is confident a search over windows
   of the frame, is judged by how sure depthnet's keypoints are there (a hand-shaped cue that
   skin-coloured clutter and backgrounds lack), the surest after a second look in a crop
   around their own keypoints. While tracking, the crop follows the tracked
   hand (its projected joints, grown by 40%).
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

import contextlib
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np

from depthnet.model import DepthNet
from depthnet.runtime import Inference
from depthnet.targets import relative_to_metric
from handrgbd.camera import CameraIntrinsics, crop_image
from handrgbd.joints import Keypoints
from renderer.projection import RegionOfInterest
from tracker.pso import PSOConfig
from tracker.tracking import Tracker, TrackerConfig, distance_from_mask

__all__ = ["LiveConfig", "LivePipeline", "LiveResult", "Observation", "HandFinder", "follow_crop", "default_camera"]

def default_camera(width: int, height: int, hfov_deg: float = 60.0) -> CameraIntrinsics:
    """A typical webcam: square pixels, centred principal point, 60 degrees horizontal field of view."""
    return CameraIntrinsics.from_fov(width, height, hfov_deg)


@dataclass(frozen=True)
class LiveConfig:
    """The live tracker's PSO budget, 32 particles x 15 generations, is the cheapest whose
    accuracy on the live benchmark's video matched the larger budgets' (docs/tracker.md, "The
    live budget": MPJPE 64-77 mm and PA-MPJPE 25-27 mm for every budget from 32 x 10 to 64 x 25,
    within the spread between seeds), at 1.5x less tracking time than 48 x 15."""

    tracker: TrackerConfig = field(default_factory=lambda: TrackerConfig(pso=PSOConfig(32, 15), init_generations=30))
    min_mask_pixels: int = 150
    crop_margin: float = 0.4
    depthnet_backend: str = "auto"
    #: use depthnet's keypoints (a keypoint network's) in the tracker's objective and start
    keypoints: bool = True


class LiveResult(NamedTuple):
    status: str                     # "tracked" | "lost" | "no_hand"
    joints_mm: np.ndarray | None    # (21, 3)
    params: np.ndarray | None       # (27,)
    crop: RegionOfInterest | None
    relative: np.ndarray | None     # (H, W) relative depth on the crop, 1 elsewhere
    mask: np.ndarray | None         # (H, W) bool
    timings: dict
    depth_mm: np.ndarray | None = None  # (H, W) float32 the metric depth tracked on (0 off the mask)
    objective: float = float("nan")     # the tracker's objective (lower is better)
    side: str | None = None


def _blobs(mask: np.ndarray, min_pixels: int = 0) -> tuple[np.ndarray, list[int]]:
    """The 8-connected blobs of ``mask (H, W)``: their labels ``(H, W)`` and the labels of those
    of at least ``min_pixels``, largest first (equal sizes in label order)."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    return labels, [1 + int(i) for i in np.argsort(-areas, kind="stable") if areas[i] >= min_pixels]


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    labels, ids = _blobs(mask)
    return labels == ids[0] if ids else mask


class Observation(NamedTuple):
    """Stage 1's output for one frame: the crop depthnet ran on (None: no hand found), and its
    relative depth and mask pasted into full-frame maps (None without a crop); with a keypoint
    network its keypoints in the frame's pixels."""

    crop: RegionOfInterest | None
    relative: np.ndarray | None     # (H, W) relative depth on the crop, 1 elsewhere
    mask: np.ndarray | None         # (H, W) bool, the largest blob
    timings: dict
    keypoints: Keypoints | None = None


#: localisation: how many of the coarse pass's largest blobs are looked at closer
LOCALISE_BLOBS = 3
#: localisation: a candidate whose keypoints' mean confidence reaches this is taken without
#: searching the frame's windows (docs/tracker.md, "Finding the hand in RGB")
LOCALISE_CONFIDENT = 0.35
#: localisation: a window replaces the surest blob's crop only if its keypoints are surer by this
LOCALISE_WINDOW_MARGIN = 0.1
#: localisation: the window search's square sides, as fractions of the frame's shorter side (a
#: hand 400-1000 mm away fills a fifth to a half of a 60-degree view's height); stride half a side
LOCALISE_WINDOWS = (0.5, 0.75)
#: localisation: how many of the surest candidates (blobs' crops, then windows) are looked at
#: again in a crop around their own keypoints (a second pass, kept when surer)
LOCALISE_REFINE = 3
#: localisation: candidates are judged by their keypoints (and windows searched) only in frames
#: at least this many times depthnet's input (a webcam frame, not a crop around a hand): in a
#: smaller frame the coarse pass already sees any hand the network could read, the largest blob
#: is the hand the frame was cut around, and on the hard bench's 256 px crops judging by the
#: keypoints picked worse blobs and windows cut close-up hands (docs/tracker.md)
LOCALISE_MIN_SCALE = 2.0


def _mean_confidence(keypoints: Keypoints) -> float:
    """How sure depthnet's keypoints are that a crop holds a hand: their mean confidence."""
    return float(np.mean(keypoints.confidence))


def _window_origins(length: int, side: int) -> list[int]:
    """Window starts along an image side of ``length`` px: stride ``side // 2``, the last flush
    with the end."""
    last = max(length - side, 0)
    starts = list(range(0, last + 1, max(side // 2, 1)))
    return starts if starts[-1] == last else starts + [last]


class HandFinder:
    """Stage 1 without the tracker: where the hand is in an RGB frame, and depthnet on a square
    crop around it. ``observe(rgb, crop)`` localises when ``crop`` is None (``localise``), then
    runs depthnet on the crop (black past the image's edge) and pastes its relative depth and
    mask into full-frame maps. ``LivePipeline`` and the ``depthnet-rgb-crop`` source
    (``handrgbd.sources``) use it.

    Localisation: a coarse depthnet pass on the whole frame letterboxed to a square; each of its
    ``LOCALISE_BLOBS`` largest mask blobs (at least ``min_mask_pixels``) gives a crop (its box
    grown by 25%, square). Without a keypoint network, or in a frame under ``LOCALISE_MIN_SCALE``
    times depthnet's input (a crop around a hand, not a webcam frame), the largest blob's crop is
    the answer. Otherwise depthnet runs on each crop and the crop whose keypoints are surest (mean
    confidence) wins; when none reaches ``LOCALISE_CONFIDENT`` (the hand is too small in the
    coarse pass to be found, or the blobs are clutter, skin-coloured objects or backgrounds),
    square windows of ``LOCALISE_WINDOWS`` of the frame's shorter side, half a side apart, compete too: a window
    must hold ``min_mask_pixels`` of mask and be surer than the best blob's crop by
    ``LOCALISE_WINDOW_MARGIN`` (a window smaller than the hand cuts it, and its keypoints can
    be a little surer than the whole hand's). Before blobs (and windows) are compared, the
    ``LOCALISE_REFINE`` surest of each are looked at again, as a hand detector's crop is handed
    to its landmark stage: depthnet on a square around the candidate's own keypoints (grown by
    ``crop_margin``, the tracked crop's: ``LiveConfig.crop_margin``), which replaces the
    candidate when its keypoints are surer (a blob's box or a window is often several times the
    hand, at a scale the network was not trained on). Up to 1 + 6 + about 23 depthnet passes
    (640 x 480), only when no hand is followed."""

    def __init__(self, depthnet: Inference, min_mask_pixels: int = LiveConfig.min_mask_pixels,
                 crop_margin: float = LiveConfig.crop_margin):
        self.depthnet = depthnet
        self.min_mask_pixels = min_mask_pixels
        self.crop_margin = crop_margin
        self._seen: tuple[np.ndarray | None, dict] | None = None  # one_frame's: (frame, predictions by square)

    @contextlib.contextmanager
    def one_frame(self):
        """Calls on one frame inside this block (``live.mining``: ``candidates``, then
        ``localise``) run depthnet once per square: a square's prediction is kept and reused
        until the block ends, or until a call brings another frame (another array), whose
        squares are predicted afresh."""
        outer, self._seen = self._seen, (None, {})
        try:
            yield self
        finally:
            self._seen = outer

    def _predict_square(self, rgb: np.ndarray, x0: int, y0: int, side: int):
        """depthnet on the square ``(x0, y0, side)`` of the frame (black where it leaves the
        image), pasted back at full size: ``(relative (H, W) float32, 1 outside; mask (H, W);
        keypoints in the frame's pixels or None)``, or None when the square misses the image."""
        if self._seen is None:
            return self._predict_new(rgb, x0, y0, side)
        frame, seen = self._seen
        if frame is not rgb:
            seen.clear()
            self._seen = (rgb, seen)
        key = (x0, y0, side)
        if key not in seen:
            seen[key] = self._predict_new(rgb, x0, y0, side)
        return seen[key]

    def _predict_new(self, rgb: np.ndarray, x0: int, y0: int, side: int):
        """``_predict_square`` without ``one_frame``'s reuse."""
        H, W = rgb.shape[:2]
        sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, W), min(y0 + side, H)
        if sx1 <= sx0 or sy1 <= sy0:
            return None
        pred = self.depthnet.predict(crop_image(rgb, x0, y0, side, side))
        relative = np.ones((H, W), np.float32)
        mask = np.zeros((H, W), bool)
        relative[sy0:sy1, sx0:sx1] = pred.relative[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
        mask[sy0:sy1, sx0:sx1] = pred.mask[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0]
        keypoints = None if pred.keypoints_px is None else \
            Keypoints(pred.keypoints_px + [x0, y0], pred.keypoint_confidence, pred.right_prob,
                      None if pred.keypoint_modes_px is None else pred.keypoint_modes_px + [x0, y0],
                      pred.keypoint_mode_ratio)
        return relative, mask, keypoints

    def localise(self, rgb: np.ndarray) -> RegionOfInterest | None:
        """The crop around the hand in the whole frame (class docstring), or None (no blob of
        ``min_mask_pixels``, and no window with as much mask)."""
        located = self._locate(rgb)
        return None if located is None else located[0]

    def _predict_crop(self, rgb: np.ndarray, crop: RegionOfInterest):
        """``_predict_square`` on ``crop``'s box (rounded to pixels, square)."""
        x0, y0, x1, y1 = (int(round(v)) for v in crop.box)
        return self._predict_square(rgb, x0, y0, max(x1 - x0, y1 - y0, 16))

    def _locate(self, rgb: np.ndarray) -> tuple[RegionOfInterest, tuple | None] | None:
        """``(crop, its prediction or None)`` of ``localise``; the prediction, when made, saves
        ``observe`` a pass."""
        crops, judged = self._blob_crops(rgb)
        if not judged:
            return (crops[0], None) if crops else None  # no keypoint head to judge by, or a crop: the largest blob
        # a blob's crop and each window below overlap the image: a prediction each
        best_score, best = self._surest(rgb, [(crop, self._predict_crop(rgb, crop)) for crop in crops])
        if best_score >= LOCALISE_CONFIDENT:
            return best
        window_score, window = self._surest(rgb, self._windows(rgb))
        # a window cuts a hand its blob's crop holds whole: it must do better
        return window if window_score > best_score + LOCALISE_WINDOW_MARGIN else best

    def _blob_crops(self, rgb: np.ndarray) -> tuple[list[RegionOfInterest], bool]:
        """The coarse pass's ``LOCALISE_BLOBS`` largest blobs' crops (largest first), and whether
        candidates are judged by their keypoints here (a keypoint network, a frame at least
        ``LOCALISE_MIN_SCALE`` times depthnet's input)."""
        # the whole frame letterboxed to a square (black bars, as crops past the image edge):
        # depthnet squashes any input to its square input size, and a squashed hand is a shape
        # it never saw
        H, W = rgb.shape[:2]
        side = max(H, W)
        coarse = self._predict_square(rgb, -((side - W) // 2), -((side - H) // 2), side)
        labels, blobs = _blobs(coarse[1], self.min_mask_pixels)
        crops = [RegionOfInterest.from_mask(labels == k, margin=0.25, square=True) for k in blobs[:LOCALISE_BLOBS]]
        return crops, coarse[2] is not None and side >= LOCALISE_MIN_SCALE * self.depthnet.config.input_size

    def _windows(self, rgb: np.ndarray) -> list[tuple[RegionOfInterest, tuple]]:
        """``[(window, prediction)]``: the square windows of ``LOCALISE_WINDOWS`` of the frame's
        shorter side, half a side apart, that hold ``min_mask_pixels`` of depthnet's mask."""
        H, W = rgb.shape[:2]
        windows = []
        for fraction in LOCALISE_WINDOWS:
            w = max(int(round(fraction * min(H, W))), 16)
            for y0 in _window_origins(H, w):
                for x0 in _window_origins(W, w):
                    crop = RegionOfInterest(x0, y0, x0 + w, y0 + w)
                    predicted = self._predict_crop(rgb, crop)
                    if predicted[1].sum() >= self.min_mask_pixels:
                        windows.append((crop, predicted))
        return windows

    def _look_again(self, rgb: np.ndarray, crop: RegionOfInterest, predicted: tuple) -> tuple:
        """``(crop, prediction)``: depthnet on a square around ``predicted``'s keypoints (grown by
        ``crop_margin``), None for both where that square misses the image."""
        closer = RegionOfInterest.from_points(predicted[2].uv_px, margin=self.crop_margin, square=True)
        again = self._predict_crop(rgb, closer)
        return (None, None) if again is None else (closer, again)

    def _surest(self, rgb: np.ndarray, candidates: list) -> tuple[float, tuple | None]:
        """``(score, (crop, prediction))`` of the surest of ``candidates`` ``[(crop,
        prediction)]`` after the ``LOCALISE_REFINE`` surest are looked at again around their
        keypoints (class docstring); ``(-inf, None)`` without candidates."""
        scored = sorted(((_mean_confidence(p[2]), n, (crop, p)) for n, (crop, p) in enumerate(candidates)),
                        key=lambda c: (-c[0], c[1]))  # surest first, ties in the given order
        best_score, best = (scored[0][0], scored[0][2]) if scored else (-np.inf, None)
        for score, _, (crop, predicted) in scored[:LOCALISE_REFINE]:
            closer, again = self._look_again(rgb, crop, predicted)
            again_score = -np.inf if again is None else _mean_confidence(again[2])
            if again_score > score:
                score, crop, predicted = again_score, closer, again
            if score > best_score:
                best_score, best = score, (crop, predicted)
        return best_score, best

    def candidates(self, rgb: np.ndarray) -> list[tuple[RegionOfInterest, float]]:
        """Every square localisation can weigh in a frame, with its keypoints' mean confidence:
        the coarse pass's blobs' crops and all the windows (``localise`` searches the windows
        only when no blob is sure), each also looked at again around its own keypoints (both
        listed; ``localise`` looks again at the surest three). For mining the squares the
        localiser would wrongly be sure of (``live.mining``); needs a keypoint network and a
        frame at least ``LOCALISE_MIN_SCALE`` times depthnet's input (ValueError otherwise)."""
        crops, judged = self._blob_crops(rgb)
        if not judged:
            raise ValueError(f"candidates are judged by a keypoint network's confidence, in frames at least "
                             f"{LOCALISE_MIN_SCALE:g} times its {self.depthnet.config.input_size} px input "
                             f"(got {rgb.shape[1]} x {rgb.shape[0]})")
        out = []
        for crop, predicted in [(crop, self._predict_crop(rgb, crop)) for crop in crops] + self._windows(rgb):
            out.append((crop, _mean_confidence(predicted[2])))
            closer, again = self._look_again(rgb, crop, predicted)
            if again is not None:
                out.append((closer, _mean_confidence(again[2])))
        return out

    def observe(self, rgb: np.ndarray, crop: RegionOfInterest | None = None) -> Observation:
        """Localise the hand when ``crop`` is None, then depthnet on the crop."""
        t = {}
        t0 = time.perf_counter()
        predicted = None
        if crop is None:
            located = self._locate(rgb)
            if located is not None:
                crop, predicted = located
        t["localisation"] = time.perf_counter() - t0
        if crop is None:
            return Observation(None, None, None, t)
        t1 = time.perf_counter()
        if predicted is None:
            predicted = self._predict_crop(rgb, crop)
        t["depthnet"] = time.perf_counter() - t1
        if predicted is None:
            return Observation(None, None, None, t)
        relative, mask, keypoints = predicted
        return Observation(crop, relative, _largest_blob(mask), t, keypoints)


def follow_crop(joints_mm: np.ndarray, camera: CameraIntrinsics, margin: float) -> RegionOfInterest | None:
    """The next frame's crop around a tracked hand: its projected joints ``(21, 3)`` mm, grown
    by ``margin`` and square; None (localise again) when a joint is behind the camera or the box
    leaves the image or grows past twice its size (lost in practice)."""
    if not np.all(joints_mm[:, 2] > 50.0):
        return None
    W, H = camera.size
    crop = RegionOfInterest.from_points(camera.project(joints_mm), margin=margin, square=True)
    inside = crop.x1 > 0 and crop.y1 > 0 and crop.x0 < W and crop.y0 < H
    return crop if inside and crop.x1 - crop.x0 <= 2 * max(W, H) else None


class LivePipeline:
    """``process(rgb)``: both stages of one frame in turn. ``process_overlapped(rgb)``: stage 1
    (localisation and depthnet) of this frame on a worker thread while stage 2 (tracking) of the
    previous frame runs on the caller's, returning the previous frame's result: one frame of
    latency, and the crop comes from the result two frames back (40% margin around the hand)."""

    def __init__(self, camera: CameraIntrinsics, net: DepthNet | Inference | None = None,
                 config: LiveConfig | None = None):
        self.camera = camera
        self.config = LiveConfig() if config is None else config
        net = DepthNet.from_pretrained() if net is None else net
        self.depthnet = net if isinstance(net, Inference) else Inference(net, self.config.depthnet_backend)
        self.finder = HandFinder(self.depthnet, self.config.min_mask_pixels, self.config.crop_margin)
        tcfg = replace(self.config.tracker, mask_source="given", depth_offset_free=True)
        self.tracker = Tracker(camera, tcfg)
        self.crop: RegionOfInterest | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._pending: tuple[np.ndarray, Future] | None = None

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=True, cancel_futures=True)
            self._worker = None
        self._pending = None
        self.tracker.close()

    def reset(self) -> None:
        """Forget the hand: the next frame localises it again (a frame in flight in
        ``process_overlapped``, observed in the old crop, is observed again without it)."""
        self._forget()
        if self._pending is not None:
            rgb, future = self._pending
            future.result()  # the worker is free again; its observation is dropped
            self._pending = (rgb, self._worker.submit(self.observe, rgb, None))

    def _forget(self) -> None:
        self.tracker.reset()
        self.crop = None

    def observe(self, rgb: np.ndarray, crop: RegionOfInterest | None = None) -> Observation:
        """Stage 1: localise the hand when ``crop`` is None, then depthnet on the crop (pixels
        outside the image are black; ``HandFinder.observe``)."""
        self._check_frame(rgb)
        return self.finder.observe(rgb, crop)

    def track(self, obs: Observation) -> LiveResult:
        """Stage 2: metric depth from RGB alone, then the tracker; sets the next crop."""
        t = dict(obs.timings)
        if obs.mask is None or obs.mask.sum() < self.config.min_mask_pixels:
            self._forget()
            return LiveResult("no_hand", None, None, obs.crop, obs.relative, obs.mask, t)
        t2 = time.perf_counter()
        z = distance_from_mask(obs.mask, self.camera, self.tracker.config.hand_length_mm)
        depth = relative_to_metric(obs.relative, obs.mask, z)  # float32, 0 off the mask
        r = self.tracker.step(depth, mask=obs.mask, keypoints=obs.keypoints if self.config.keypoints else None)
        t["tracker"] = time.perf_counter() - t2
        # the crop follows the hand while the tracker keeps a solution ("lost" frames included:
        # a poor silhouette alone does not make it start afresh), else depthnet localises again
        self.crop = follow_crop(r.joints_mm, self.camera, self.config.crop_margin) if self.tracker.has_track else None
        crop = self.crop or obs.crop
        return LiveResult(r.status, r.joints_mm, r.params, crop, obs.relative, obs.mask, t, depth, r.objective, r.side)

    def process(self, rgb: np.ndarray) -> LiveResult:
        """Both stages of one frame ``(H, W, 3) uint8`` RGB, in turn."""
        return self.track(self.observe(rgb, self.crop))

    def _check_frame(self, rgb: np.ndarray) -> None:
        H, W = rgb.shape[:2]
        if (W, H) != self.camera.size:
            raise ValueError(f"frame is {W}x{H} but the camera is {self.camera.width}x{self.camera.height}")

    def process_overlapped(self, rgb: np.ndarray) -> tuple[np.ndarray, LiveResult] | None:
        """Start stage 1 of ``rgb`` on the worker, track the previous frame here meanwhile, and
        return that frame and its result (None on the first call; ``flush()`` gives the last).
        An error in the previous frame's stages is raised here; ``rgb`` stays in flight."""
        self._check_frame(rgb)  # here, not on the worker, so the error belongs to this frame
        if self._worker is None:
            self._worker = ThreadPoolExecutor(1, thread_name_prefix="depthnet")
        previous, self._pending = self._pending, (rgb, self._worker.submit(self.observe, rgb, self.crop))
        return self._finish(previous)

    def flush(self) -> tuple[np.ndarray, LiveResult] | None:
        """The frame still in flight in ``process_overlapped`` and its result, or None."""
        previous, self._pending = self._pending, None
        return self._finish(previous)

    def _finish(self, pending: tuple[np.ndarray, Future] | None) -> tuple[np.ndarray, LiveResult] | None:
        if pending is None:
            return None
        rgb, future = pending
        return rgb, self.track(future.result())
