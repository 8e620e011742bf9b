"""The Python API: RGB (and optionally depth) frames in, 3D hand joints out.

    from handrgbd import HandTracker

    with HandTracker() as tracker:          # camera=None: a 60 degree webcam guess
        for rgb in frames:                  # (H, W, 3) uint8 RGB
            r = tracker.process(rgb)        # or process(rgb, depth_mm) with a depth sensor
            if r.status == "tracked":
                print(r.joints_mm[0])       # the wrist, camera frame, mm

Two routes, chosen by the first frame and kept for the tracker's life:

* **RGB only** (``depth_mm=None``): ``live.pipeline.LivePipeline``: depthnet finds the hand and
  estimates its relative depth, the distance comes from the silhouette of a hand of
  ``hand_length_mm``, and the PSO tracker fits the model (the C2-rgb condition of
  ``experiments/pose_c1_c2.py``).
* **RGB-D** (``depth_mm`` given, ``(H, W)`` float mm aligned with the RGB): the PSO tracker on the
  sensor's depth with the hand found in the depth (the C1 condition; ``handrgbd track``).

This facade composes the packages' public classes; ``handrgbd``'s core modules import none of
them, and ``handrgbd.HandTracker`` is imported on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from handrgbd.camera import CameraIntrinsics

__all__ = ["HandTracker", "HandResult", "DEFAULT_HFOV_DEG"]

#: the horizontal field of view assumed without ``camera`` (a typical webcam), degrees
DEFAULT_HFOV_DEG = 60.0


@dataclass(frozen=True)
class HandResult:
    """One frame's hand.

    status: ``"tracked"``, ``"lost"`` (the solution does not explain the observed
    silhouette, or its objective is too high; joints given but not to be trusted; three frames in
    a row with too high an objective re-initialise) or
    ``"no_hand"``. joints_mm ``(21, 3)`` camera frame, mm, and joints_px ``(21, 2)`` pixels
    (``handrgbd.Joint`` order), None without a hand. mask ``(H, W)`` bool: the hand mask fitted to
    (depthnet's, or the hand found in the sensor's depth). depth_mm ``(H, W)`` float32: the depth
    fitted to, 0 off the hand (RGB only: depthnet's relative depth placed at the silhouette's
    distance; RGB-D: the sensor's). side: the model's side. confidence in [0, 1]:
    ``1 - objective / lost_objective``, clipped: 1 a perfect fit, 0 at the tracker's loss
    threshold (``TrackerConfig.lost_objective``); 0 without a hand. params ``(27,)``: the model's
    pose parameters."""

    status: str
    joints_mm: np.ndarray | None
    joints_px: np.ndarray | None
    mask: np.ndarray | None
    depth_mm: np.ndarray | None
    side: str | None
    confidence: float
    params: np.ndarray | None


class HandTracker:
    """RGB (and optionally depth) frames -> ``HandResult`` (see the module docstring).

    camera : intrinsics of the frames; None: square pixels, centred, ``hfov_deg`` wide, set from
        the first frame's size.
    side : ``"right"``, ``"left"`` or ``"auto"`` (both models at every initialisation, the better
        fit kept; right in 2 of 7 synthetic sequences: docs/tracker.md).
    hand_length_mm : wrist to middle fingertip (RGB only, it sets the distance).
    particles, generations : the PSO budget (default: live's 32 x 15 for RGB, 64 x 25 for RGB-D).
    depthnet_backend : ``"auto"``, ``"onnxruntime"`` or ``"torch"``; weights: a depthnet weights
        file (default: the shipped ones).
    """

    def __init__(self, camera: CameraIntrinsics | None = None, side: str = "right", hand_length_mm: float = 180.0,
                 hfov_deg: float = DEFAULT_HFOV_DEG, particles: int | None = None, generations: int | None = None,
                 depthnet_backend: str = "auto", weights: str | None = None, seed: int = 0):
        from tracker.pso import PSOConfig
        from tracker.tracking import TrackerConfig

        if camera is not None and not isinstance(camera, CameraIntrinsics):
            raise ValueError(f"camera must be CameraIntrinsics or None, got {type(camera).__name__}")
        CameraIntrinsics.from_fov(640, 480, hfov_deg)  # the field of view's check, before any frame
        self.camera = camera
        self.hfov_deg = float(hfov_deg)
        self._budget = (particles, generations)
        if particles is not None or generations is not None:  # the budget's check, before any frame
            PSOConfig(2 if particles is None else particles, 1 if generations is None else generations)
        from handrgbd.args import SEED_MAX

        if not (isinstance(seed, (int, np.integer)) and 0 <= seed <= SEED_MAX):
            raise ValueError(f"seed must be an integer in [0, {SEED_MAX}], got {seed!r}")
        self._tracker_config = TrackerConfig(side=side, hand_length_mm=hand_length_mm, seed=int(seed))
        self.depthnet_backend = depthnet_backend
        self.weights = weights
        self._rgb = None    # LivePipeline, RGB only
        self._depth = None  # Tracker, RGB-D
        self._closed = False

    # ---- the two routes ------------------------------------------------------------------
    def _pso(self, default):
        from tracker.pso import PSOConfig

        particles, generations = self._budget
        return PSOConfig(default.particles if particles is None else particles,
                         default.generations if generations is None else generations)

    def _camera_for(self, rgb: np.ndarray) -> CameraIntrinsics:
        H, W = rgb.shape[:2]
        if self.camera is None:
            self.camera = CameraIntrinsics.from_fov(W, H, self.hfov_deg)
        if self.camera.size != (W, H):
            raise ValueError(f"frame is {W}x{H} but the camera is {self.camera.width}x{self.camera.height}")
        return self.camera

    def _rgb_route(self, camera: CameraIntrinsics):
        if self._rgb is None:
            from depthnet.model import DepthNet
            from depthnet.runtime import Inference
            from live.pipeline import LiveConfig, LivePipeline

            live = LiveConfig(depthnet_backend=self.depthnet_backend)
            tracker = replace(live.tracker, side=self._tracker_config.side, seed=self._tracker_config.seed,
                              hand_length_mm=self._tracker_config.hand_length_mm, pso=self._pso(live.tracker.pso))
            net = DepthNet.load(self.weights) if self.weights else DepthNet.from_pretrained()
            self._rgb = LivePipeline(camera, Inference(net, self.depthnet_backend), replace(live, tracker=tracker))
        return self._rgb

    def _depth_route(self, camera: CameraIntrinsics):
        if self._depth is None:
            from tracker.tracking import Tracker

            cfg = self._tracker_config
            self._depth = Tracker(camera, replace(cfg, pso=self._pso(cfg.pso)))
        return self._depth

    # ---- frames --------------------------------------------------------------------------
    def process(self, rgb: np.ndarray, depth_mm: np.ndarray | None = None) -> HandResult:
        """One frame: ``rgb (H, W, 3) uint8`` RGB, ``depth_mm (H, W)`` float mm or None."""
        if self._closed:
            raise ValueError("HandTracker.process: the tracker is closed")
        rgb = np.asarray(rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.dtype} {rgb.shape}")
        camera = self._camera_for(rgb)
        if depth_mm is None:
            if self._depth is not None:
                raise ValueError("HandTracker.process: this tracker was given depth before; every frame needs "
                                 "depth_mm (or use another HandTracker for RGB-only frames)")
            first = self._rgb is None
            try:
                r = self._rgb_route(camera).process(np.ascontiguousarray(rgb))
            except BaseException:
                if first and self._rgb is not None:  # a first frame that fails decides nothing
                    self._rgb.close()
                    self._rgb = None
                raise
            objective, side, mask, depth = r.objective, r.side, r.mask, r.depth_mm
        else:
            if self._rgb is not None:
                raise ValueError("HandTracker.process: this tracker was given RGB-only frames before; depth_mm "
                                 "cannot start now (use another HandTracker for RGB-D frames)")
            depth = np.asarray(depth_mm)  # float mm: the tracker refuses raw integer sensor units with a hint
            first = self._depth is None
            try:
                r = self._depth_route(camera).step(depth, rgb=rgb)
            except BaseException:
                if first and self._depth is not None:  # a first frame that fails decides nothing
                    self._depth.close()
                    self._depth = None
                raise
            objective, side, mask = r.objective, r.side, r.mask
            depth = None if mask is None else np.where(mask, depth, 0.0).astype(np.float32)
        joints = r.joints_mm
        if joints is None or r.status == "no_hand":
            return HandResult(r.status, None, None, mask, depth, None, 0.0, None)
        lost_at = self._tracker_config.lost_objective
        confidence = 0.0 if not math.isfinite(objective) else float(np.clip(1.0 - objective / lost_at, 0.0, 1.0))
        return HandResult(r.status, joints, camera.project(joints), mask, depth, side, confidence, r.params)

    def reset(self) -> None:
        """Forget the hand: the next frame finds it afresh."""
        for route in (self._rgb, self._depth):
            if route is not None:
                route.reset()

    def close(self) -> None:
        for route in (self._rgb, self._depth):
            if route is not None:
                route.close()
        self._rgb = self._depth = None
        self._closed = True

    def __enter__(self) -> "HandTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
