"""The tracking loop: observation -> region of interest -> PSO over the 27 parameters -> joints.

``Tracker(camera, config).step(depth_mm, mask=None, rgb=None) -> TrackResult``, one frame at a
time:

1. Observed hand mask (``config.mask_source``): ``"depth"`` (default) finds the hand in the
   depth (``tracker.detect``: the hand-sized surface at the end of a geodesic extremum, so not
   the torso or a chair that is nearer) on (re-)initialisation, its region split into hand and
   not by ``tracker.hand_split`` (``hand_split``: a held object the surface runs onto is left
   out and scored as an occluder, the hand detected again without it), and while tracking keeps the
   surface around the previous solution's palm and knuckles (``hand_region``), of it the points
   near the solution's skeleton and not in front of it (``region_margin_mm``: a held object or
   a touched cup is one surface with the hand), the rest of the depth scored as occluders; ``"eq1"`` is
   the paper's eq. (1), the valid pixels within 300 mm of the nearest one (the nearest taken
   as the 0.1th percentile of valid depth, robust to single outliers); ``"given"`` uses the ``mask``
   argument (e.g. depthnet's, condition C2); ``"skin"`` a skin-colour detector on ``rgb``
   (YCrCb box) inside the eq. (1) foreground. ``"given"`` and ``"skin"`` also detect the hand
   inside their mask on (re-)initialisation (a forearm in the mask is cut to a stub, the palm
   found); a given mask with the arm (``mask_has_arm``, eq. 1's) is kept, while tracking with
   metric depth, to the surface grown from the previous palm (``hand_region``). Fewer than
   ``min_hand_pixels`` (or no hand detected with ``"depth"``) -> status ``"no_hand"``.
2. Region of interest: the previous solution's projected joints, grown by ``roi_margin``
   (FORTH's zoomed virtual camera), and with ``depth_offset_free`` also the mask's box; on
   (re-)initialisation, the mask's bounding box. The
   observed depth (on the mask) and the mask are resampled onto the T x T tile grid.
3. PSO (``tracker.pso``): the swarm is seeded around the previous frame's solution (particle 0
   is that solution itself); on initialisation, around the best of a grid of canonical poses
   x orientations placed at the mask's centroid and median depth; with a detection that knows
   the fingers' direction (away from the arm), only the orientations whose fingers point that
   way; with ``init_generations``, ``init_restarts`` times (independent swarms, each seeded from
   its share of the best candidates: the 1st, R+1-th, ... best for the first), the best fit kept
   (6 with metric depth, 1 with ``depth_offset_free``). With sensor depth (``mask_source="depth"``)
   the candidates are instead the learned start's (``learned_start``, ``tracker.start_net``: a
   CNN on the detection's depth crop proposes three distinct rotations with finger angles and a
   position), one swarm from each.
   With ``depth_offset_free`` the observed depth is taken as known up to a constant (relative
   depth estimated from RGB): each hypothesis's depth term uses the best constant shift, and
   the distance of the hand follows from its silhouette and the known hand size.
   With ``forearm=True`` (the default) the tracked model has a forearm (with a ``"given"`` mask
   only when it takes in the arm, ``mask_has_arm``, and the depth is metric: a cone rigid with
   the palm, scored, never a joint), so an arm in the observation is explained by the arm: a
   fit without it slid down the forearm or, with the arm cut at the previous wrist, crept up the
   hand (hard bench). (Re-)initialisation fits
   the hand alone (its own model and scorer) where the detection shows a stub of the arm, and
   the forearm too where the arm is in view for its length (``START_FOREARM_REACH``).
   A model without the forearm (a given mask of the hand alone, RGB only, or ``forearm=False``)
   drops the observed pixels more than ``wrist_cut_mm`` (0) past the previous solution's wrist,
   along the hand's axis.
   With 2D keypoints (``step(..., keypoints=)``, e.g. depthnet's heatmaps; issue 21) the objective
   adds their reprojection term (``tracker.objective.keypoint_term``, weight
   ``keypoint_weight``; joints below ``min_keypoint_confidence`` unused; with ``keypoint_modes``
   > 1 each joint may match any of its heatmap's modes, ``Keypoints.modes_px``, at a cost that
   grows as the mode is weaker), and an initialisation
   whose palm keypoints (wrist and four knuckles) are all confident starts from the palm's pose
   solved from them (PnP with the model's palm of the known hand length, ``pnp_palm_poses``)
   with each canonical finger pose, instead of the orientation grid. With ``side="auto"`` a
   confident side (``right_prob`` beyond ``side_confidence`` of 0.5) fits that side only.
   With ``pose_prior_weight`` > 0 (default 1) a frame that follows a previous solution (not a start) also
   weighs the finger angles against 69 real poses' (``tracker.objective.pose_prior_term``).
4. Does the solution explain the observation? Its silhouette is compared with the observed mask
   (on the tile, the hand pixels outside it counted as missed): ``iou`` (intersection over
   union) and ``coverage`` (the share of the observed hand pixels it covers). A frame is
   ``"tracked"`` only with ``iou >= min_iou`` and ``coverage >= min_coverage``; otherwise it
   is ``"lost"`` (joints still given, but not to be trusted). An objective above
   ``lost_objective`` for ``lost_frames`` frames in a row is ``"lost"`` too and, like no hand,
   sends the tracker back to initialisation (a poor silhouette alone does not: restarting from
   a detection did worse on the hard bench); with a ``"given"`` mask that start competes with
   the solution let go of (``restart_competes``). Frames without a hand give ``status="no_hand"``
   with ``joints=None``; never NaN.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass, field, replace
from typing import NamedTuple

import cv2
import numpy as np

from handrgbd.camera import CameraIntrinsics
from handrgbd.depth import usable_depth
from handrgbd.joints import Joint, Keypoints
from renderer.projection import RegionOfInterest
from tracker.detect import (PALM_JOINTS, DetectorConfig, HandDetection, detect_hand, hand_region, near_skeleton,
                            without_support_plane)
from tracker.hand_split import HandSplitter, find_hand
from tracker.kinematics import DEFAULT_HAND_LENGTH_MM, HandModel, finger_crossing_penalty
from tracker.objective import (CpuScorer, KeypointTerm, ObjectiveConfig, PosePrior, keypoint_term, load_pose_prior,
                               make_scorer, objective_from_sums, pose_prior_term)
from tracker.pose import SIDES, HandPose, axis_angle_quaternion, quaternion_multiply
from tracker.pso import PSOConfig, optimize

log = logging.getLogger(__name__)

__all__ = ["TrackerConfig", "Tracker", "TrackResult", "depth_foreground", "skin_mask", "distance_from_mask"]

MASK_SOURCES = ("depth", "eq1", "given", "skin")
#: ``TrackerConfig.init_restarts`` with metric depth (hard bench, automatic start: plain 43 -> 11 mm)
INIT_RESTARTS = 6


@dataclass(frozen=True)
class TrackerConfig:
    side: str = "right"
    hand_length_mm: float = DEFAULT_HAND_LENGTH_MM
    pso: PSOConfig = field(default_factory=PSOConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    tile_size: int = 64
    backend: str = "auto"
    mask_source: str = "depth"
    detector: DetectorConfig = field(default_factory=DetectorConfig)  # its hand length is set to ours
    foreground_mm: float = 300.0
    min_hand_pixels: int = 50
    roi_margin: float = 0.3
    seed_sigma_mm: float = 8.0
    seed_sigma_quaternion: float = 0.03
    seed_sigma_rad: float = 0.12
    #: track with a forearm cone (``HandModel(forearm=True)``) where the observation has the arm
    #: (not with a ``"given"`` mask of the hand alone; at (re-)initialisation only where the arm is
    #: in view for its length, ``START_FOREARM_REACH``); a model without it cuts the arm away at
    #: ``wrist_cut_mm`` past the previous wrist (None: no cut). docs/tracker.md, "The forearm"
    forearm: bool = True
    #: the ``"given"`` mask takes in the arm, as eq. 1's foreground and a network trained on it
    #: (the shipped ``cpu`` weights) do: with metric depth the model has its forearm, and while
    #: tracking the mask is cut to the surface grown from the previous palm (``hand_region``),
    #: which leaves out a blob the mask joined to the hand. With ``depth_offset_free`` (RGB only)
    #: the wrist cut instead: the forearm did worse there (docs/tracker.md, "The forearm")
    mask_has_arm: bool = False
    #: that cut keeps the mask's pixels within this many pixels of the grown surface: along a
    #: network's outline its depth blends into the background's (one pixel of depthnet's 64 x 64
    #: output is 4 of a 256 px frame), and the surface leaves that band out (embedded sequence:
    #: C2 10.9 mm over three seeds without the band, 8.8 with it; docs/tracker.md, "The forearm")
    given_outline_px: int = 4
    wrist_cut_mm: float | None = 0.0
    #: while tracking with ``mask_source="depth"``, the hand's region keeps only the points within
    #: ``region_margin_mm`` of the previous solution's skeleton (``tracker.detect.near_skeleton``,
    #: the forearm as far as the region reaches), with the parts past it nowhere wider than
    #: ``2 region_thin_mm`` (a finger not followed yet), and not observed more than
    #: ``region_front_mm`` in front of the solution's rendered depth: a cup the fingers touch,
    #: or an object held in front of the palm, joins the hand's surface but lies farther from
    #: its bones, or nearer the camera. What is left out is scored as occluders (as
    #: ``occluders``). Only while the solution lies on the region: under ``region_min_cover`` of
    #: its hand's silhouette on it, the hand has moved past the margin and keeps the whole region.
    #: None: the region as grown (and no occluders unless asked for), the tracker before this
    #: rule. docs/tracker.md, "The hand's region while tracking"
    region_margin_mm: float | None = 25.0
    region_front_mm: float | None = 20.0
    region_thin_mm: float | None = 12.0
    region_min_cover: float = 0.7
    #: observed surfaces outside the hand mask (e.g. a held object that a hand network's mask
    #: leaves out) hide the hypothesis's pixels that lie behind them instead of counting against
    #: it (metric depth only; ``tracker._kernels.OCCLUDER_MARGIN_MM``; docs/tracker.md, "Occluders")
    occluders: bool = False
    depth_offset_free: bool = False
    init_generations: int = 40
    #: independent PSO runs at (re-)initialisation, each seeded from its share of the best start
    #: candidates; the best fit is kept (docs/tracker.md, "Initialisation": one swarm seeded from
    #: all of them settled in the best-looking basin, which was often not the hand's). None:
    #: ``INIT_RESTARTS`` with metric depth, 1 with ``depth_offset_free`` (RGB only: the silhouette
    #: leaves the distance loose, and a more thorough search found wrong fits that score better);
    #: resolved where used, so ``dataclasses.replace(config, depth_offset_free=True)`` follows
    init_restarts: int | None = None
    lost_objective: float = 25.0
    #: a solution explains the observation when its silhouette's IoU with the observed mask and
    #: its coverage of the observed hand pixels reach these (docs/tracker.md, "Lost or tracked")
    min_iou: float = 0.5
    min_coverage: float = 0.5
    lost_frames: int = 3
    #: the start after a loss competes with carrying on: the solution let go of, run through the
    #: frame's swarm on the start's view, is kept when it scores at least as well. None: on with a
    #: ``"given"`` mask (a network's: C2, C2-rgb, live), where a mask that takes in the background
    #: or an arm scores every fit poorly and a start on it landed farther off than carrying on;
    #: off with the others (docs/tracker.md, "Lost or tracked")
    restart_competes: bool | None = None
    seed: int = 0
    #: the keypoint term's weight lambda_p (docs/tracker.md, "Keypoints": chosen on the validation split
    #: with the true 2D joints as keypoints: the best RGB only, within 1 mm of the best with depth)
    keypoint_weight: float = 100.0
    keypoint_delta: float = 0.1
    min_keypoint_confidence: float = 0.2
    #: each joint's heatmap modes the keypoint term may match (``Keypoints.modes_px``; 1: the peak
    #: alone). More helped from a good start and hurt from the tracker's own (docs/tracker.md,
    #: "Heatmap modes"), so off by default
    keypoint_modes: int = 1
    #: the finger angles' prior from 69 real poses, its weight lambda_a (0: none), while following a
    #: previous solution (not at a start; docs/tracker.md, "A pose prior": C1 from the truth 9.3 ->
    #: 8.0 mm on the hard bench's plain scenario, the main job's C1 8.4 -> 6.0 over 3 seeds)
    pose_prior_weight: float = 1.0
    #: with ``mask_source="depth"`` (sensor depth), a start from a detection tries the learned
    #: start's poses (``tracker.start_net``: a CNN on the detection's depth crop proposes this many
    #: distinct rotations with its finger angles and position; one swarm from each) instead of the
    #: orientation grid x canonical poses; 0: the grid (docs/tracker.md, "The learned start")
    learned_start: int = 3
    #: that network's weights (None: the shipped ``tracker/data/start_net.pt``)
    learned_start_weights: str | None = None
    #: with ``mask_source="depth"``, a detection's region is split by ``tracker.hand_split`` (a CNN
    #: on its depth crop calls each pixel hand or not, e.g. a held object the surface runs onto)
    #: and the hand detected again without the rest, which is scored as occluders; False: the
    #: region as detected (docs/tracker.md, "The hand's pixels at a start")
    hand_split: bool = True
    #: that network's weights (None: the shipped ``tracker/data/hand_split.pt``)
    hand_split_weights: str | None = None
    #: a palm keypoint needs this confidence for the PnP start
    pnp_confidence: float = 0.3
    side_confidence: float = 0.3

    def __post_init__(self) -> None:
        if self.side not in SIDE_CHOICES:
            raise ValueError(f"TrackerConfig.side must be one of {SIDE_CHOICES}, got {self.side!r}")
        if self.mask_source not in MASK_SOURCES:
            raise ValueError(f"TrackerConfig.mask_source must be one of {MASK_SOURCES}, got {self.mask_source!r}")
        if self.tile_size < 8:
            raise ValueError(f"TrackerConfig.tile_size must be >= 8, got {self.tile_size}")
        if self.detector.hand_length_mm != self.hand_length_mm:  # one hand length: the resolved config says so
            object.__setattr__(self, "detector", replace(self.detector, hand_length_mm=self.hand_length_mm))
        restarts = 1 if self.init_restarts is None else self.init_restarts
        if self.given_outline_px < 0:
            raise ValueError(f"TrackerConfig.given_outline_px must be >= 0, got {self.given_outline_px}")
        if self.learned_start < 0:
            raise ValueError(f"TrackerConfig.learned_start must be >= 0 (0: the orientation grid), got {self.learned_start}")
        if self.lost_frames < 1 or self.init_generations < 1 or restarts < 1 or self.keypoint_modes < 1:
            raise ValueError("TrackerConfig.lost_frames, init_generations, init_restarts and keypoint_modes "
                             "must be >= 1")
        for name in ("min_iou", "min_coverage", "region_min_cover"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"TrackerConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if not (math.isfinite(self.pose_prior_weight) and self.pose_prior_weight >= 0):
            raise ValueError(f"TrackerConfig.pose_prior_weight must be finite and >= 0, got {self.pose_prior_weight}")
        for name in ("region_margin_mm", "region_front_mm", "region_thin_mm"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"TrackerConfig.{name} must be > 0 mm or None, got {value}")


class TrackResult(NamedTuple):
    """status: ``"tracked"``, ``"lost"`` (the solution does not explain the observation; after
    ``lost_frames`` frames with too high an objective the tracker re-initialises) or ``"no_hand"``; side: the model's
    side (``"right"`` or ``"left"``; chosen at initialisation with ``side="auto"``), None
    without a hand; iou, coverage: the solution's silhouette against the observed mask (its
    intersection over union, and the share of observed hand pixels it covers), NaN without a
    hand; objective: the solution's, without the keypoint term (comparable with or without
    keypoints; the loss rule reads it)."""

    status: str
    params: np.ndarray | None      # (27,)
    joints_mm: np.ndarray | None   # (21, 3) camera frame
    objective: float
    roi: RegionOfInterest | None
    seconds: float
    side: str | None = None
    mask: np.ndarray | None = None  # (H, W) bool, the observed hand mask the frame was fitted to
    iou: float = float("nan")
    coverage: float = float("nan")


#: ``TrackerConfig.side``: a hand side, or ``"auto"``: at every initialisation both models are
#: fitted and the better objective keeps its side until the next
SIDE_CHOICES = (*SIDES, "auto")


#: radius of the largest disc inside a 180 mm hand's silhouette (the palm), mm; measured on
#: synthetic renders (33-37 mm over orientations) and scaled with the hand length
PALM_INSCRIBED_RADIUS_MM = 34.0


def distance_from_mask(mask: np.ndarray, camera: CameraIntrinsics, hand_length_mm: float = 180.0) -> float:
    """Distance (mm) of a hand from its silhouette alone: the palm is the silhouette's widest
    part, so the largest inscribed disc (radius r px) gives ``z = f * R_palm / r``. Unlike the
    silhouette's area, this ignores a forearm or sleeve in the mask."""
    m = np.ascontiguousarray(mask, dtype=np.uint8)
    r = float(cv2.distanceTransform(m, cv2.DIST_L2, 5).max())
    if r <= 0:
        raise ValueError("distance_from_mask: the mask is empty")
    f = math.sqrt(camera.fx * camera.fy)
    return f * PALM_INSCRIBED_RADIUS_MM * hand_length_mm / 180.0 / r


def depth_foreground(depth_mm: np.ndarray, threshold_mm: float = 300.0) -> np.ndarray:
    """The paper's eq. (1): valid pixels nearer than the nearest valid depth + threshold."""
    valid = depth_mm > 0
    if not valid.any():
        return valid
    nearest = np.percentile(depth_mm[valid], 0.1)
    return valid & (depth_mm < nearest + threshold_mm)


def skin_mask(rgb: np.ndarray) -> np.ndarray:
    """A simple skin detector: Cr in [135, 180] and Cb in [85, 135] (YCrCb), opened."""
    ycrcb = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2YCrCb)
    m = ((ycrcb[..., 1] >= 135) & (ycrcb[..., 1] <= 180) & (ycrcb[..., 2] >= 85) & (ycrcb[..., 2] <= 135))
    return cv2.morphologyEx(m.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)).astype(bool)


#: hand lengths of arm in view (from the palm to the image's border, along the surface) for
#: the start to score the forearm (``Tracker.step``; hard bench: docs/results.md)
START_FOREARM_REACH = 1.0

#: the forearm as ``region_margin_mm`` sees it, in hand lengths: a segment this long from the wrist
#: (past what ``hand_region`` grows), its surface this far out (the model's cone is about as wide as the palm)
FOREARM_REACH, FOREARM_RADIUS = 0.8, 0.2

#: the canonical finger poses an initialisation starts from (at each orientation of the grid, or
#: at each palm pose solved from keypoints)
INITIAL_POSES = ("open", "relaxed", "fist", "point", "pinch")
#: the palm's keypoints, rigid in the model whatever the fingers do: wrist and the four knuckles
PALM_KEYPOINTS = (Joint.WRIST, Joint.INDEX_MCP, Joint.MIDDLE_MCP, Joint.RING_MCP, Joint.PINKY_MCP)


def pnp_palm_poses(model: HandModel, palm_uv: np.ndarray, camera: CameraIntrinsics) -> list[tuple[np.ndarray, np.ndarray]]:
    """Palm poses ``[(quaternion (4,), position_mm (3,)), ...]`` whose palm keypoints (wrist and
    the four knuckles, ``PALM_KEYPOINTS``) of ``model`` (its side and hand length) project onto
    ``palm_uv (5, 2)`` pixels of ``camera``: the perspective-n-point solutions (the two of
    OpenCV's IPPE, for points near a plane, and SQPnP's), those in front of the camera."""
    from tracker.pose import matrix_to_quaternion

    local = model.joints(HandPose.canonical("open", position_mm=(0.0, 0.0, 0.0), side=model.side).to_array())[0]
    obj = np.ascontiguousarray(local[list(PALM_KEYPOINTS)], np.float64)
    img = np.ascontiguousarray(palm_uv, np.float64).reshape(-1, 1, 2)
    K = camera.K.astype(np.float64)
    out = []
    for flags in (cv2.SOLVEPNP_IPPE, cv2.SOLVEPNP_SQPNP):
        try:
            n, rvecs, tvecs, _ = cv2.solvePnPGeneric(obj, img, K, None, flags=flags)
        except cv2.error:
            continue
        for rvec, tvec in zip(rvecs[:n], tvecs[:n]):
            t = np.asarray(tvec, np.float64).ravel()
            R = cv2.Rodrigues(np.asarray(rvec, np.float64))[0]
            if t[2] > 50.0 and ((R @ obj.T).T + t)[:, 2].min() > 50.0:
                out.append((matrix_to_quaternion(R), t))
    return out


@functools.lru_cache(maxsize=4)
def _start_predictor(weights: str | None):
    """The learned start's network, loaded once per weights file."""
    from tracker.start_net import StartPredictor

    return StartPredictor(weights)


@functools.lru_cache(maxsize=4)
def _hand_splitter(weights: str | None) -> HandSplitter:
    """The hand split's network, loaded once per weights file."""
    return HandSplitter(weights)


def _orientation_grid() -> np.ndarray:
    """24 hand orientations (quaternions): palm, back or side toward the camera, at 8 rolls each."""
    out = []
    for facing in (np.array([1.0, 0, 0, 0]), axis_angle_quaternion([0, 1, 0], math.pi),
                   axis_angle_quaternion([0, 1, 0], math.pi / 2)):
        for roll in np.linspace(-math.pi, math.pi, 8, endpoint=False):
            out.append(quaternion_multiply(axis_angle_quaternion([0, 0, 1], roll), facing))
    return np.array(out)


class Tracker:
    """Model-based PSO hand tracker on depth (see the module docstring)."""

    def __init__(self, camera: CameraIntrinsics, config: TrackerConfig | None = None):
        if not isinstance(camera, CameraIntrinsics):
            raise ValueError(f"camera must be CameraIntrinsics, got {type(camera).__name__}")
        self.camera = camera
        self.config = TrackerConfig() if config is None else config
        sides = SIDES if self.config.side == "auto" else (self.config.side,)
        # the forearm where the observation has the arm: masks from depth (or skin) take it in, a
        # given mask only when it says so (with metric depth: RGB alone did worse with it)
        c = self.config
        forearm = c.forearm and (c.mask_source != "given" or (c.mask_has_arm and not c.depth_offset_free))
        self._models = {side: HandModel(side, self.config.hand_length_mm, forearm=forearm) for side in sides}
        self.model = self._models[sides[0]]  # the side being tracked (the first, until a fit says otherwise)
        self.scorer = make_scorer(self.config.backend, self.model.primitive_set, self.config.tile_size,
                                  self.config.pso.particles)
        # (re-)initialisation fits the hand alone where a detection's region holds a stub of the
        # arm, which a 120 mm forearm would not explain (its scorer: _start_scoring), and the
        # tracked model where the arm is in view for its length (step)
        self._start_models, self._start_scorer = self._models, self.scorer
        if forearm:
            self._start_models = {side: HandModel(side, self.config.hand_length_mm) for side in sides}
            self._start_scorer = None
        # the surfaces outside the hand mask as occluders: asked for, or the depth's own region,
        # whose rule leaves out the other surfaces near the hand (region_margin_mm)
        self._occluders = self.config.occluders or (self.config.mask_source == "depth"
                                                    and self.config.region_margin_mm is not None)
        self.rng = np.random.default_rng(self.config.seed)
        self.previous: np.ndarray | None = None
        self._bad_frames = 0
        #: the solution a loss let go of, (side, params): the next start competes with it
        self._carry_on: tuple[str, np.ndarray] | None = None
        #: the depth the last detection saw (the support plane left out): the learned start's input
        self._detected_in: np.ndarray | None = None
        self._prior: PosePrior | None = (load_pose_prior(self.config.pose_prior_weight)
                                         if self.config.pose_prior_weight > 0 else None)
        c = self.config.restart_competes
        self._restart_competes = self.config.mask_source == "given" if c is None else c

    @property
    def backend(self) -> str:
        return self.scorer.name

    def close(self) -> None:
        self.scorer.close()
        if self._start_scorer is not None and self._start_scorer is not self.scorer:
            self._start_scorer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def has_track(self) -> bool:
        """True while a solution is kept to start the next frame from; False before the first
        frame, after ``reset()`` and after a loss (the next frame initialises)."""
        return self.previous is not None

    def _start_scoring(self):
        """The scorer of the start models (the tracked one when they are the same), made at the
        first start: a track from a given pose never needs it."""
        if self._start_scorer is None:
            hand_alone = next(iter(self._start_models.values())).primitive_set
            self._start_scorer = make_scorer(self.scorer.name, hand_alone, self.config.tile_size,
                                             self.config.pso.particles)
        return self._start_scorer

    @property
    def _init_restarts(self) -> int:
        """``config.init_restarts`` resolved: None -> ``INIT_RESTARTS`` with metric depth, 1 with
        ``depth_offset_free``."""
        cfg = self.config
        if cfg.init_restarts is not None:
            return cfg.init_restarts
        return 1 if cfg.depth_offset_free else INIT_RESTARTS

    @property
    def side(self) -> str:
        """The side of the model being tracked."""
        return self.model.side

    def reset(self, pose: HandPose | np.ndarray | None = None, side: str | None = None) -> None:
        """Forget the track; with ``pose``, start from it (e.g. ground truth of frame 0), a hand
        of ``side`` (default: a ``HandPose``'s own, else the configured side, else the current)."""
        if pose is None:
            self.previous = None
        else:
            if side is None:
                if not isinstance(pose, HandPose) and self.config.side == "auto":
                    raise ValueError("reset: with side='auto' a pose array needs its side (reset(pose, side=...))")
                side = pose.side if isinstance(pose, HandPose) else self.config.side
            if side not in self._models:
                raise ValueError(f"reset: side {side!r}, but this tracker has the {sorted(self._models)} model")
            self.model = self._models[side]
            p = pose.to_array() if isinstance(pose, HandPose) else np.asarray(pose, dtype=np.float64)
            self.previous = HandPose.from_array(p, side).clamped().to_array()
        self._bad_frames = 0
        self._carry_on = None

    # ---- observation ----------------------------------------------------------------------
    def _check(self, depth_mm: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
        d = np.asarray(depth_mm)
        if d.ndim != 2:
            raise ValueError(f"depth must be a 2-D (H, W) array in mm, got shape {d.shape}")
        if d.dtype.kind not in "f":
            raise ValueError(f"depth must be float millimetres, got {d.dtype} (convert raw sensor units with "
                             f"handrgbd.uint16_to_depth_mm)")
        if d.shape != (camera.height, camera.width):
            raise ValueError(f"depth is {d.shape[1]}x{d.shape[0]} but the camera is {camera.width}x{camera.height}")
        d = np.where(np.isfinite(d) & usable_depth(d), d, 0.0)  # NaN, negative, past 10 m = no reading
        return d.astype(np.float32)

    def _observation(self, depth, mask, rgb, camera) -> tuple[np.ndarray, HandDetection | None]:
        """The observed hand mask ``(H, W) bool``, and the detection when the hand was detected
        afresh (on initialisation, or with ``"depth"`` when the previous solution has no surface
        near its palm), else None. ``"given"`` and ``"skin"`` detect the hand inside their
        mask on initialisation (its region, e.g. without a forearm, is that frame's mask), and
        keep their mask while tracking; ``"eq1"`` never detects (the paper's rule as is)."""
        cfg = self.config
        frame_depth = depth
        if cfg.mask_source in ("depth", "skin"):  # sensor depth: a table under the hand is left out
            depth = without_support_plane(depth, camera, cfg.detector)
        if cfg.mask_source == "depth":
            if self.previous is not None:
                joints = self.model.joints(self.previous)[0]
                hand = self._previous_region(depth, camera, joints)
                if hand.sum() >= cfg.min_hand_pixels:
                    if cfg.region_margin_mm is not None:
                        near = self._near_previous(hand, depth, camera, joints)
                        # a solution that has drifted off the hand keeps the whole region to come back to
                        if near.sum() >= cfg.min_hand_pixels:
                            hand = near
                    return hand, None
            splitter = _hand_splitter(cfg.hand_split_weights) if cfg.hand_split else None
            found, depth = find_hand(depth, frame_depth, camera, cfg.detector, splitter, cfg.min_hand_pixels)
            if found is None:
                return np.zeros(depth.shape, bool), None
            self._detected_in = depth
            return found.mask, found
        fg = depth_foreground(depth, cfg.foreground_mm)
        if cfg.mask_source == "given":
            if mask is None:
                raise ValueError("mask_source='given' needs a mask for every frame")
            m = np.asarray(mask, bool)
            if m.shape != depth.shape:
                raise ValueError(f"mask shape {m.shape} != depth shape {depth.shape}")
            hand = m & (depth > 0)
        elif cfg.mask_source == "skin":
            if rgb is None:
                raise ValueError("mask_source='skin' needs the RGB image")
            hand = fg & skin_mask(rgb)
        else:
            return fg, None
        if self.previous is None and hand.sum() >= cfg.min_hand_pixels:
            found = detect_hand(depth, camera, cfg.detector, mask=hand)  # its region lies inside the mask
            if found is not None and found.mask.sum() >= cfg.min_hand_pixels:
                return found.mask, found
        elif self.previous is not None and cfg.mask_source == "given" and self.model.forearm:
            # a mask with the arm (eq. 1's) also takes in what lies within its 300 mm, e.g. a box
            # beside the hand: the silhouette check and the swarm see the surface grown from the
            # previous palm, the arm with it, and the mask's outline next to it (all of the mask
            # when that finds too little)
            region = self._previous_region(depth, camera, self.model.joints(self.previous)[0], hand)
            g = cfg.given_outline_px
            region = hand & (cv2.dilate(region.astype(np.uint8), np.ones((2 * g + 1, 2 * g + 1), np.uint8)) > 0)
            if region.sum() >= cfg.min_hand_pixels:
                hand = region
        return hand, None

    def _previous_region(self, depth: np.ndarray, camera: CameraIntrinsics, joints: np.ndarray,
                         mask: np.ndarray | None = None) -> np.ndarray:
        """``(H, W) bool``: the surface grown from the previous solution's palm, ``joints (21, 3)``
        mm (``tracker.detect.hand_region`` from the palm's centre, the knuckles and the wrist:
        an object held before the palm splits the hand's surface, the heel beyond it), inside
        ``mask`` when given; empty when no surface lies near them."""
        palm_joints = joints[list(PALM_JOINTS)]  # wrist, then the knuckles
        return hand_region(depth, camera, palm_joints.mean(0), self.config.detector, mask=mask,
                           knuckles_mm=palm_joints[1:], wrist_mm=palm_joints[0])

    def _near_previous(self, hand: np.ndarray, depth: np.ndarray, camera: CameraIntrinsics,
                       joints: np.ndarray) -> np.ndarray:
        """``hand (H, W) bool`` kept to the pixels within ``region_margin_mm`` of the previous
        solution's skeleton ``joints (21, 3)`` (and past it, the thin parts: ``region_thin_mm``),
        not observed more than ``region_front_mm`` in front of its depth; all of ``hand`` when
        the solution no longer lies on it (under ``region_min_cover`` of its hand's silhouette
        over the region: the hand has moved farther than the margin, e.g. frames far apart). The
        solution is rendered on a tile (its hand alone around its joints, for the cover; with
        its forearm, if any, over the kept pixels' box, for the depth, read back at each pixel
        with ``RegionOfInterest.tile_indices``)."""
        cfg = self.config
        roi = RegionOfInterest.from_points(camera.project(joints), margin=cfg.roi_margin)
        alone = self._start_models[self.model.side]
        silhouette = self._start_scoring().render(alone.primitives(self.previous[None]), camera, roi)[0] > 0
        cover = (silhouette & roi.sample(hand, silhouette.shape[0], fill=False)).sum() / max(int(silhouette.sum()), 1)
        log.debug("the previous solution's silhouette lies %.0f%% on the hand's region", 100 * cover)
        if cover < cfg.region_min_cover:
            return hand
        L = cfg.hand_length_mm
        near = near_skeleton(hand, depth, camera, joints, cfg.region_margin_mm,
                             FOREARM_REACH * L if self.model.forearm else 0.0, FOREARM_RADIUS * L, cfg.region_thin_mm)
        if cfg.region_front_mm is None or not near.any():
            return near
        roi = RegionOfInterest.from_mask(near, margin=0.02)
        rendered = self.scorer.render(self.model.primitives(self.previous[None]), camera, roi)[0]
        v, u = np.nonzero(near)
        r = rendered[roi.tile_indices(u, v, rendered.shape[0])]
        front = (r > 0) & (r - depth[v, u] > cfg.region_front_mm)
        near[v[front], u[front]] = False
        return near

    def _cut_forearm(self, hand: np.ndarray, depth: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
        """Drop observed pixels more than ``wrist_cut_mm`` past the previous solution's wrist,
        along the hand's axis (for a model without its forearm: masks from depth or skin include the arm)."""
        j = self.model.joints(self.previous)[0]
        wrist = j[0]
        axis = j[9] - wrist  # toward the middle finger's knuckle
        axis /= np.linalg.norm(axis)
        v, u = np.nonzero(hand)
        points = camera.unproject(np.stack([u, v], -1), depth[v, u])
        keep = ((points - wrist) * axis).sum(1) > -self.config.wrist_cut_mm  # no BLAS (see detect.support_plane)
        out = np.zeros_like(hand)
        out[v[keep], u[keep]] = True
        return out

    # ---- objective ------------------------------------------------------------------------
    def _objective(self, model, scorer, camera, roi, obs_tile, mask_tile, term: KeypointTerm | None = None,
                   prior: PosePrior | None = None):
        cfg = self.config
        tile_camera = roi.camera(camera, cfg.tile_size) if term is not None else None

        def f(X: np.ndarray) -> np.ndarray:
            sums = scorer.sums(model.primitives(X), camera, roi, obs_tile, mask_tile, cfg.objective.d_max_mm,
                               cfg.depth_offset_free)
            value = objective_from_sums(sums, finger_crossing_penalty(X), cfg.objective)
            if term is not None:
                value = value + keypoint_term(model.joints(X), tile_camera, term)
            if prior is not None:
                value = value + pose_prior_term(X, prior)
            return value

        return f

    def _keypoint_term(self, keypoints: Keypoints | None, camera: CameraIntrinsics,
                       roi: RegionOfInterest) -> KeypointTerm | None:
        """The frame's keypoint term in the tile camera's pixels, or None (no keypoints, none
        confident, or ``keypoint_weight`` 0)."""
        cfg = self.config
        if keypoints is None or cfg.keypoint_weight <= 0:
            return None
        conf = np.clip(np.nan_to_num(np.asarray(keypoints.confidence, np.float64)), 0.0, 1.0)
        uv = np.asarray(keypoints.uv_px, np.float64)
        use = (conf >= cfg.min_keypoint_confidence) & np.isfinite(uv).all(1)
        if use.sum() < 2:
            return None
        x0, y0, x1, y1 = roi.box
        s, origin = cfg.tile_size / np.array([x1 - x0, y1 - y0]), np.array([x0, y0])

        def to_tile(px: np.ndarray) -> np.ndarray:  # CameraIntrinsics.crop_resize's mapping
            return s * (px + 0.5 - origin) - 0.5

        tile_uv = to_tile(uv)
        extent = float((tile_uv[use].max(0) - tile_uv[use].min(0)).max())
        weights = np.where(use, conf, 0.0)
        term = KeypointTerm(np.where(use[:, None], tile_uv, 0.0), weights / weights.sum(), max(extent, 1.0),
                            cfg.keypoint_weight, cfg.keypoint_delta)
        if cfg.keypoint_modes > 1 and keypoints.modes_px is not None:
            m = min(cfg.keypoint_modes, np.shape(keypoints.modes_px)[1])
            modes = to_tile(np.asarray(keypoints.modes_px, np.float64)[:, :m])
            modes[:, 0] = term.uv  # mode 0 is uv_px
            ratio = np.clip(np.nan_to_num(np.asarray(keypoints.mode_ratio, np.float64)[:, :m]), 0.0, 1.0)
            ratio[:, 0] = 1.0
            term = term._replace(uv=np.where(use[:, None, None], modes, 0.0), ratio=ratio)
        return term

    def _seed_swarm(self, centre: np.ndarray, n: int) -> np.ndarray:
        cfg = self.config
        x = np.repeat(centre[None], n, axis=0)
        x[1:, :3] += self.rng.normal(0, cfg.seed_sigma_mm, (n - 1, 3))
        x[1:, 3:7] += self.rng.normal(0, cfg.seed_sigma_quaternion, (n - 1, 4))
        x[1:, 7:] += self.rng.normal(0, cfg.seed_sigma_rad, (n - 1, 20))
        return x

    def _initial_candidates(self, model, depth, hand, camera, found: HandDetection | None = None) -> np.ndarray:
        """Canonical poses x orientations at the mask's centroid and median depth (0.12 hand
        lengths further: the palm centre lies inside the hand). With a detection, only the
        orientations whose fingers point its way (wrist -> middle knuckle within 90 degrees of
        ``fingers_dir`` in the image): a hand's fingers never point up its arm. All of them when
        the direction is unknown (``fingers_dir`` zeros)."""
        v, u = np.nonzero(hand)
        centre = camera.unproject(np.array([u.mean(), v.mean()]), np.median(depth[v, u]) + 0.12 * self.config.hand_length_mm)
        out = np.array([HandPose.canonical(name, position_mm=centre, orientation=q, side=model.side).to_array()
                        for q in _orientation_grid() for name in INITIAL_POSES])
        if found is None:
            return out
        j = camera.project(model.joints(out))
        toward = (j[:, Joint.MIDDLE_MCP] - j[:, Joint.WRIST]) @ found.fingers_dir > 0
        return out[toward] if toward.any() else out  # unknown direction (zeros): no orientation ruled out

    def _learned_candidates(self, model, depth, camera, found: HandDetection | None) -> np.ndarray | None:
        """``(learned_start, 27)`` start poses from the learned start (``tracker.start_net``) for a
        hand detected in sensor depth, or None where it does not apply (another mask source, no
        detection, or ``learned_start`` 0). ``depth``: the frame's, the context of the crop."""
        cfg = self.config
        if cfg.learned_start == 0 or cfg.mask_source != "depth" or found is None or found.mask is None:
            return None
        predictor = _start_predictor(cfg.learned_start_weights)
        return predictor.poses(found.mask, self._detected_in, depth, camera, found.palm_uv, found.palm_mm,
                               model.side, cfg.learned_start)

    # ---- one frame ------------------------------------------------------------------------
    def step(self, depth_mm: np.ndarray, mask: np.ndarray | None = None, rgb: np.ndarray | None = None,
             camera: CameraIntrinsics | None = None, keypoints: Keypoints | None = None) -> TrackResult:
        """Track one frame. depth ``(H, W)`` float mm (0, NaN or past 10 m = no reading); mask ``(H, W)`` bool
        for ``mask_source="given"``; rgb ``(H, W, 3) uint8`` for ``"skin"``; camera overrides
        the tracker's (per-frame intrinsics); keypoints: 2D joints in this frame's pixels (the
        keypoint term and the PnP start, module docstring)."""
        t0 = time.perf_counter()
        cfg = self.config
        camera = self.camera if camera is None else camera
        depth = self._check(depth_mm, camera)
        hand, found = self._observation(depth, mask, rgb, camera)
        if hand.sum() < cfg.min_hand_pixels:
            self.previous, self._bad_frames, self._carry_on = None, 0, None
            return TrackResult("no_hand", None, None, float("nan"), None, time.perf_counter() - t0)
        if found is not None:  # the hand was detected afresh: the previous solution is no start
            self.previous = None
        initialising = self.previous is None
        if not initialising and cfg.wrist_cut_mm is not None and not self.model.forearm:
            cut = self._cut_forearm(hand, depth, camera)
            # a previous solution that has drifted off the observation would cut all of it away:
            # then keep the whole silhouette, the evidence the swarm needs to come back
            if cut.sum() >= cfg.min_hand_pixels:
                hand = cut

        if initialising:
            roi = RegionOfInterest.from_mask(hand, margin=0.15)
        else:
            uv = camera.project(self.model.joints(self.previous)[0])
            if cfg.depth_offset_free:
                # the silhouette is the only evidence of distance: the tile must see all of it, or a
                # hypothesis that drifts away shrinks the tile onto part of the hand and runs off
                ys, xs = np.nonzero(hand)
                uv = np.vstack([uv, [[xs.min(), ys.min()], [xs.max(), ys.max()]]])
            roi = RegionOfInterest.from_points(uv, margin=cfg.roi_margin)
        T = cfg.tile_size
        # outside the hand: no reading (0), or with occluders the surface there as negative depth
        outside = -depth if self._occluders and not cfg.depth_offset_free else 0.0
        obs_tile = roi.sample(np.where(hand, depth, outside), T).astype(np.float32)
        mask_tile = roi.sample(hand, T, fill=False)
        n = cfg.pso.particles
        term = self._keypoint_term(keypoints, camera, roi)
        prior = None
        if initialising:  # each side's model (one unless side="auto"); the better fit keeps its side
            candidates_pso = PSOConfig(n, cfg.init_generations, cfg.pso.c1, cfg.pso.c2, cfg.pso.redraw_every)
            result, rng_start = None, self.rng.bit_generator.state
            # the forearm is scored at the start when the arm is in view for its length (the palm
            # this far from the image's border along the surface); else the hand alone
            arm = found is not None and np.isfinite(found.border_mm) and \
                found.border_mm >= START_FOREARM_REACH * cfg.hand_length_mm
            models, scorer = (self._models, self.scorer) if arm else (self._start_models, self._start_scoring())
            for model in self._sides_to_try(models, keypoints):  # each side from the same random state: auto's pick
                self.rng.bit_generator.state = rng_start  # then runs exactly as that side alone would
                f = self._objective(model, scorer, camera, roi, obs_tile, mask_tile, term)
                pnp = self._pnp_candidates(model, keypoints, camera) if term is not None else None
                learned = self._learned_candidates(model, depth, camera, found) if pnp is None else None
                candidates = pnp if pnp is not None else learned if learned is not None else \
                    self._initial_candidates(model, depth, hand, camera, found)
                # restarts: on the orientation grid (measured there) or one per learned pose (at most
                # init_restarts); the PnP start's few poses share one swarm
                restarts = min(1 if pnp is not None else self._init_restarts, len(candidates))
                values = np.concatenate([f(candidates[i:i + n]) for i in range(0, len(candidates), n)])
                order = np.argsort(values)
                for k in range(restarts):  # each run from its own share of the best: the k-th, k+R-th, ...
                    best = candidates[order[k::restarts][:max(1, n // 8)]]
                    swarm = np.concatenate([self._seed_swarm(b, int(math.ceil(n / len(best)))) for b in best])[:n]
                    fit = self._optimize(model, scorer, f, swarm, candidates_pso, camera, roi, obs_tile, mask_tile, term)
                    if result is None or fit.best_value < result.best_value:
                        result, fitted, rng_end = fit, model, self.rng.bit_generator.state
            self.rng.bit_generator.state = rng_end
            if self._carry_on is not None:  # a restart competes with carrying on (given masks: restart_competes)
                side, previous = self._carry_on
                model = models[side]
                carry = self._follow(model, scorer, previous, camera, roi, obs_tile, mask_tile, term)
                log.debug("restart %.2f, carrying on %.2f", result.best_value, carry.best_value)
                if carry.best_value <= result.best_value:
                    result, fitted = carry, model
            self.model = self._models[fitted.side]  # tracked from the next frame on (with its forearm)
        else:  # the pose prior only here: at a start it would rank the candidates' fingers (docs/tracker.md)
            fitted, scorer, prior = self.model, self.scorer, self._prior
            result = self._follow(fitted, scorer, self.previous, camera, roi, obs_tile, mask_tile, term, prior)
        params = result.best
        # the loss rule and the result see the objective without the keypoint term and the prior
        objective = result.best_value
        if term is not None:
            objective -= float(keypoint_term(fitted.joints(params[None]), roi.camera(camera, cfg.tile_size), term)[0])
        if prior is not None:
            objective -= float(pose_prior_term(params[None], prior)[0])
        iou, coverage = self._explained(fitted, scorer, params, camera, roi, obs_tile, mask_tile, hand)
        # re-initialise on the objective (lost_frames too poor in a row); a silhouette that does
        # not explain the observation marks the frame lost at once but keeps the solution: a start
        # from detection did worse on the hard bench than carrying on (docs/tracker.md)
        self._bad_frames = 0 if objective <= cfg.lost_objective else self._bad_frames + 1
        explained = iou >= cfg.min_iou and coverage >= cfg.min_coverage
        status = "tracked" if explained and self._bad_frames < cfg.lost_frames else "lost"
        self._carry_on = None
        if self._bad_frames >= cfg.lost_frames:
            self._bad_frames = 0
            self.previous = None
            if self._restart_competes:
                self._carry_on = (self.model.side, params)
        else:
            self.previous = params
        joints = self.model.joints(params)[0]
        return TrackResult(status, params, joints, objective, roi, time.perf_counter() - t0, self.model.side,
                           hand, iou, coverage)

    def _follow(self, model, scorer, previous: np.ndarray, camera, roi, obs_tile, mask_tile, term=None, prior=None):
        """A frame's tracking swarm: ``config.pso`` seeded around ``previous (27,)``, the solution
        it carries on from (a tracked frame's, or one a loss let go of: ``restart_competes``),
        with the pose ``prior`` if given."""
        f = self._objective(model, scorer, camera, roi, obs_tile, mask_tile, term, prior)
        swarm = self._seed_swarm(previous, self.config.pso.particles)
        return self._optimize(model, scorer, f, swarm, self.config.pso, camera, roi, obs_tile, mask_tile, term, prior)

    def _explained(self, model, scorer, params, camera, roi, obs_tile, mask_tile, hand) -> tuple[float, float]:
        """(IoU, coverage) of the solution's silhouette (``model`` on ``scorer``) against the
        observed mask: on the tile, with the observed hand pixels that fall outside the tile
        counted as not covered."""
        sums = scorer.sums(model.primitives(params[None]), camera, roi, obs_tile, mask_tile,
                           self.config.objective.d_max_mm, self.config.depth_offset_free)
        inter, union = float(sums.intersection[0]), float(sums.union[0])
        observed = float(mask_tile.sum())
        x0, y0, x1, y1 = (int(round(v)) for v in roi.box)
        total = int(hand.sum())
        inside = int(hand[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)].sum())
        seen = inside / total if total else 0.0  # share of the hand the tile shows
        if observed <= 0 or union <= 0:
            return 0.0, 0.0
        missed = observed * (1.0 - seen) / max(seen, 1e-9)  # tile-sized pixels of hand outside the tile
        return inter / (union + missed), inter / (observed + missed)

    def _optimize(self, model, scorer, f, swarm, pso: PSOConfig, camera, roi, obs_tile, mask_tile, term=None,
                  prior=None):
        if isinstance(scorer, CpuScorer):  # the same run, without Python between generations
            return scorer.optimize(model, swarm, pso, self.rng, camera, roi, obs_tile, mask_tile,
                                   self.config.objective, self.config.depth_offset_free, term, prior)
        return optimize(f, swarm, pso, self.rng)

    def _sides_to_try(self, models: dict, keypoints: Keypoints | None) -> list:
        """Of ``models`` (side -> model), the ones to initialise: every side's, or with
        ``side="auto"`` and a confident side from the keypoints' ``right_prob``, that side's only."""
        p = None if keypoints is None else keypoints.right_prob
        if len(models) > 1 and p is not None and abs(p - 0.5) >= self.config.side_confidence:
            return [models["right" if p > 0.5 else "left"]]
        return list(models.values())

    def _pnp_candidates(self, model: HandModel, keypoints: Keypoints, camera: CameraIntrinsics) -> np.ndarray | None:
        """Canonical finger poses at each palm pose solved from the palm keypoints
        (``pnp_palm_poses``), or None when a palm keypoint is not confident."""
        conf = np.asarray(keypoints.confidence, np.float64)[list(PALM_KEYPOINTS)]
        if not (conf >= self.config.pnp_confidence).all():
            return None
        poses = pnp_palm_poses(model, np.asarray(keypoints.uv_px, np.float64)[list(PALM_KEYPOINTS)], camera)
        if not poses:
            return None
        out = []
        for q, t in poses:
            for name in INITIAL_POSES:
                out.append(HandPose.canonical(name, position_mm=t, orientation=q, side=model.side).to_array())
        return np.array(out)
