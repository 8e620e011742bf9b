"""Depth sources, and the one loop that tracks a recording on any of them.

What the tracker sees in a frame of a recording comes from a *depth source*: a provider
``provider(frame, state) -> Observation | None`` (None: the source finds no hand in this frame).
``state`` is one dict per tracked sequence: it holds ``hand_length_mm`` (the tracker's hand
length) and, set by :func:`track_frames`, ``previous_joints`` (the tracker's last solution,
``(21, 3)`` mm, while it keeps a track; else None); a provider may keep a loaded model in it. Built in (``make_provider(name)``):

* ``clean``: ``depth_gt/``, the noise-free rendered depth;
* ``sensor``: ``depth/``, the sensor's depth (condition C1); the tracker finds the hand in it;
* ``degraded:NOISE_MM:HOLES``: the sensor depth with extra Gaussian noise and a fraction of
  pixels dropped (e.g. ``degraded:8:0.3``);
* ``depthnet`` / ``depthnet:WEIGHTS``: depth estimated from RGB, made metric with the sensor's
  mean hand depth (the paper's C2, :func:`c2_mean_depth`), with depthnet's mask;
* ``depthnet-rgb`` / ``depthnet-rgb:WEIGHTS``: the same from RGB alone: the relative depth is
  placed at the distance the mask's palm width gives a hand of ``hand_length_mm``, and the
  tracker fits the distance (C2-rgb; depthnet runs on the frame as it is, so frames should be
  crops around the hand, as the paper's and photo data sets' are);
* ``depthnet-rgb-crop`` / ``depthnet-rgb-crop:WEIGHTS``: RGB alone on wide frames, as ``handrgbd
  live`` and ``HandTracker`` do: depthnet first finds the hand in the whole frame, then runs on a
  square crop around it; while the tracker keeps a solution the crop follows its joints
  (``live.pipeline.HandFinder``, ``follow_crop``);
* ``sensor-handmask`` / ``sensor-handmask:WEIGHTS``: the sensor's depth (C1's) inside the mask
  of a network of the labelled hand (``handrgbd train --foreground hand``; default the shipped
  ``cpu-hand`` weights; eq. 1 taken inside it, so a mask spilling onto a far background keeps
  the hand): the arm and a held object, which eq. 1 and the depth alone join to the hand, are
  cut out by what the RGB shows, and kept as occluders that may hide it
  (``TrackerConfig.occluders``);
* ``depthnet+kp``, ``depthnet-rgb+kp``, ``depthnet-rgb-crop+kp``: the same with a keypoint
  network's 2D joints given to the tracker (its keypoint term and PnP start, issue 21);
* ``sensor+kp`` / ``sensor+kp:WEIGHTS``: the sensor's depth (C1's; the tracker finds the hand in
  it) and a keypoint network's 2D joints from the RGB, for RGB-D cameras whose colour is
  registered to the depth (default the shipped weights).

:func:`track_frames` is the per-frame loop that ``handrgbd track``, ``handrgbd compare`` and the
C1/C2 study (``experiments/pose_c1_c2.py``) share: the source's observation, the tracker's step,
the start from a known pose and independent frames. It is a facade over the depthnet and tracker
packages, like ``handrgbd.api``; the ``handrgbd`` core modules do not import it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import numpy as np

from handrgbd.camera import CameraIntrinsics
from handrgbd.depth import usable_depth
from handrgbd.joints import Keypoints
from handrgbd.recording import Frame, Recording

__all__ = ["Observation", "Provider", "PROVIDERS", "SOURCE_NEEDS", "DEPTHNET_SOURCES", "MASK_FROM_RGB", "make_provider",
           "source_arg", "c2_mean_depth", "depthnet_provider", "depthnet_crop_provider", "handmask_provider",
           "sensor_keypoints_provider", "weights_path", "check_source_weights", "missing_images", "Step", "track_frames"]


class Observation(NamedTuple):
    """What a depth source gives the tracker for one frame.

    depth_mm : ``(H, W) float32`` mm, 0 = no reading.
    mask : ``(H, W) bool`` hand mask, or None (the tracker finds the hand in the depth itself).
    offset_free : the depth is known only up to a constant (relative depth from RGB).
    keypoints : 2D joints in the frame's pixels for the tracker's keypoint term, or None.
    occluders : the depth outside ``mask`` is other surfaces (a held object, the arm) that can
        hide the hand: the tracker scores them as occluders (``TrackerConfig.occluders``).
    mask_has_arm : ``mask`` takes in the arm, as eq. 1's foreground does (a network trained on
        it, like the shipped ``cpu`` weights): the tracker's model gets its forearm
        (``TrackerConfig.mask_has_arm``).
    """

    depth_mm: np.ndarray
    mask: np.ndarray | None = None
    offset_free: bool = False
    keypoints: Keypoints | None = None
    occluders: bool = False
    mask_has_arm: bool = False


Provider = Callable[[Frame, dict], "Observation | None"]


def _clean(frame: Frame, state: dict) -> Observation:
    if frame.depth_gt_mm is None:
        raise ValueError("source 'clean' needs depth_gt/")
    return Observation(frame.depth_gt_mm)


def _sensor(frame: Frame, state: dict) -> Observation:
    if frame.depth_mm is None:
        raise ValueError("source 'sensor' needs depth/")
    return Observation(frame.depth_mm)


def _degraded(noise_mm: float, holes: float) -> Provider:
    def provider(frame: Frame, state: dict) -> Observation:
        d = _sensor(frame, state).depth_mm
        # seeded by the frame's name, so a frame gets the same noise in any --frames range
        rng = np.random.default_rng([int(noise_mm * 1000), int(holes * 1000), int(frame.name)])
        noisy = np.where(d > 0, d + rng.normal(0, noise_mm, d.shape), 0.0)
        noisy[rng.random(d.shape) < holes] = 0.0
        return Observation(noisy.astype(np.float32))
    return provider


def _degraded_args(noise: str, holes: str) -> tuple[float, float]:
    """``degraded:NOISE_MM:HOLES`` -> (noise in [0, 1000] mm, hole fraction in [0, 1])."""
    try:
        values = float(noise), float(holes)
    except ValueError:
        raise ValueError(f"degraded:NOISE_MM:HOLES needs two numbers, got {noise!r} and {holes!r}") from None
    if not (0.0 <= values[0] <= 1000.0 and 0.0 <= values[1] <= 1.0):
        raise ValueError(f"degraded:NOISE_MM:HOLES needs noise in [0, 1000] mm and holes in [0, 1], got "
                         f"{noise} and {holes}")
    return values


def _rgb_only(relative: np.ndarray, mask: np.ndarray, frame: Frame, state: dict,
              keypoints: Keypoints | None, mask_has_arm: bool) -> Observation:
    """depthnet's relative depth placed at the distance the mask's palm width gives a hand of
    ``state["hand_length_mm"]``, known only up to a constant (C2-rgb)."""
    from depthnet.targets import relative_to_metric
    from tracker.kinematics import DEFAULT_HAND_LENGTH_MM
    from tracker.tracking import distance_from_mask

    z = distance_from_mask(mask, frame.camera, state.get("hand_length_mm", DEFAULT_HAND_LENGTH_MM))
    return Observation(relative_to_metric(relative, mask, z), mask, offset_free=True, keypoints=keypoints,
                       mask_has_arm=mask_has_arm)


NO_KEYPOINT_HEAD = ("a +kp source needs depthnet weights with a keypoint head (handrgbd train --preset cpu+keypoints); "
                    "these have none")


def _keypoints(pred) -> Keypoints:
    """A depthnet prediction's 2D joints, confidences and side; ``ValueError`` when its network
    has no keypoint head."""
    if getattr(pred, "keypoints_px", None) is None:
        raise ValueError(NO_KEYPOINT_HEAD)
    return Keypoints(pred.keypoints_px, pred.keypoint_confidence, pred.right_prob,
                     getattr(pred, "keypoint_modes_px", None), getattr(pred, "keypoint_mode_ratio", None))


#: C2's zero of relative depth moves from eq. 1's mean to the mean over the hand found in the
#: sensor's depth when the two differ by more than this (:func:`c2_mean_depth`)
HAND_MEAN_TOLERANCE_MM = 25.0


def c2_mean_depth(depth_mm: np.ndarray, camera: CameraIntrinsics, mask: np.ndarray, foreground: str = "eq1",
                  hand_length_mm: float | None = None) -> float:
    """The sensor's mean hand depth (mm; nan without a hand) that makes a network's relative
    depth metric in C2, from the sensor's ``depth_mm (H, W)`` (0 = no reading), the frame's
    ``camera`` and the network's ``mask (H, W) bool``.

    A ``"hand"`` network (the labelled hand): eq. 1 inside its mask (``sensor_mean_depth``).
    An ``"eq1"`` network (the paper's, the shipped one): eq. 1's mean over the whole frame, the
    paper's C2, unless the hand ``tracker.detect`` finds in the sensor's depth inside the
    network's mask (a support plane left out, as the tracker does) lies more than
    ``HAND_MEAN_TOLERANCE_MM`` from it: then eq. 1's 300 mm hold more than the hand (an arm
    coming toward the camera, a table, a body), the network, which cannot see that surface's
    extent, puts the hand near zero anyway, and the found hand's mean is the zero (hard bench,
    docs/results.md "C2's zero"). On a hand alone in eq. 1 both agree and eq. 1's is kept."""
    from depthnet.targets import sensor_mean_depth
    from tracker.detect import DetectorConfig, detect_hand, without_support_plane
    from tracker.tracking import TrackerConfig

    few = TrackerConfig.min_hand_pixels  # the tracker's default: fewer pixels are no hand to take a mean over
    if foreground not in ("eq1", "hand"):
        raise ValueError(f"c2_mean_depth: foreground must be 'eq1' or 'hand', got {foreground!r}")
    if foreground == "hand":
        return sensor_mean_depth(depth_mm, mask)
    mean = sensor_mean_depth(depth_mm, None)
    m = np.asarray(mask, bool)
    if not np.isfinite(mean) or m.sum() < few:
        return mean
    cfg = DetectorConfig() if hand_length_mm is None else DetectorConfig(hand_length_mm=float(hand_length_mm))
    depth = np.asarray(depth_mm, np.float32)
    depth = np.where(usable_depth(depth), depth, 0.0).astype(np.float32)  # NaN, <= 0, past 10 m: no reading
    depth = without_support_plane(depth, camera, cfg)
    found = detect_hand(depth, camera, cfg, mask=m & (depth > 0))
    if found is None:
        return mean
    on = found.mask & (depth > 0)
    if on.sum() < few:
        return mean
    hand = float(depth[on].mean())
    return hand if abs(hand - mean) > HAND_MEAN_TOLERANCE_MM else mean


def depthnet_provider(weights: str | Path | None = None, rgb_only: bool = False,
                      predict: Callable[[Frame], object] | None = None, backend: str = "auto",
                      keypoints: bool = False) -> Provider:
    """The ``depthnet`` (C2) or, with ``rgb_only``, ``depthnet-rgb`` (C2-rgb) source.

    ``predict(frame) -> Prediction`` (``depthnet.runtime``: ``relative``, ``mask`` at the frame's
    size) replaces the network's own pass, e.g. with predictions already made; otherwise the
    weights file (default: the shipped weights) is loaded on the first frame, with ``backend``.
    ``keypoints``: pass a keypoint network's keypoints on to the tracker (the ``+kp`` sources).
    None for a frame whose mask is empty (C2: or whose sensor depth has no hand)."""
    def provider(frame: Frame, state: dict) -> Observation | None:
        from depthnet.model import mask_has_arm
        from depthnet.targets import relative_to_metric

        if frame.rgb is None:
            raise ValueError("depthnet sources need rgb/")
        if predict is not None:
            pred = predict(frame)
        else:
            pred = _network(state, weights, backend).predict(frame.rgb)
        kp = _keypoints(pred) if keypoints else None
        arm = mask_has_arm(getattr(pred, "foreground", "eq1"))
        if rgb_only:
            return _rgb_only(pred.relative, pred.mask, frame, state, kp, arm) if pred.mask.any() else None
        # the hand's mean depth from the sensor: over eq. 1's foreground (the paper's C2; the hand
        # found in it when eq. 1 holds more), or over the mask of a network of the labelled hand
        mean = c2_mean_depth(_sensor(frame, state).depth_mm, frame.camera, pred.mask, "eq1" if arm else "hand",
                             state.get("hand_length_mm"))
        if not np.isfinite(mean):
            return None
        return Observation(relative_to_metric(pred.relative, pred.mask, mean), pred.mask, keypoints=kp,
                           mask_has_arm=arm)
    return provider


NOT_A_HAND_NETWORK = ("sensor-handmask needs the weights of a network of the labelled hand (handrgbd train "
                      "--foreground hand); these give eq. 1's foreground, arm and held objects included")


def _network(state: dict, weights: str | Path | None, backend: str = "auto", preset: str = "cpu"):
    """The depthnet ``Inference`` kept in ``state`` (loaded on first use; without ``weights``
    the shipped weights of ``preset``)."""
    if "net" not in state:
        from depthnet.model import DepthNet
        from depthnet.runtime import Inference

        state["net"] = Inference(DepthNet.load(weights) if weights else DepthNet.from_pretrained(preset), backend)
    return state["net"]


#: the shipped network of the labelled hand (``depthnet/weights/depthnet_cpu-hand_*.pt``), the
#: default of ``sensor-handmask``
HAND_NETWORK = "cpu-hand"


def handmask_provider(weights: str | Path | None = None, backend: str = "auto") -> Provider:
    """The ``sensor-handmask`` source: the sensor's depth with a hand network's mask (see the
    module docstring; default the shipped ``HAND_NETWORK``); ``ValueError`` for a network whose
    mask is eq. 1's. None for a frame whose mask is empty."""
    def provider(frame: Frame, state: dict) -> Observation | None:
        from depthnet.targets import sensor_targets

        if frame.rgb is None:
            raise ValueError("source 'sensor-handmask' needs rgb/")
        depth = _sensor(frame, state).depth_mm
        net = _network(state, weights, backend, HAND_NETWORK)
        if net.config.foreground != "hand":
            raise ValueError(NOT_A_HAND_NETWORK)
        # eq. 1 inside the network's mask: where the mask spills over the hand's outline onto a
        # background far behind, that background is not the hand
        mask = sensor_targets(depth, net.predict(frame.rgb).mask).mask > 0
        return Observation(depth, mask, occluders=True) if mask.any() else None
    return provider


def sensor_keypoints_provider(weights: str | Path | None = None, backend: str = "auto") -> Provider:
    """The ``sensor+kp`` source: the sensor's depth as ``sensor`` gives it, with the 2D joints a
    keypoint network (default the shipped weights) reads from the frame's RGB, which must be
    registered to the depth (the same pixels)."""
    def provider(frame: Frame, state: dict) -> Observation:
        if frame.rgb is None:
            raise ValueError("source 'sensor+kp' needs rgb/ (the keypoints are read from it)")
        depth = _sensor(frame, state).depth_mm
        return Observation(depth, keypoints=_keypoints(_network(state, weights, backend).predict(frame.rgb)))
    return provider


def depthnet_crop_provider(weights: str | Path | None = None, backend: str = "auto",
                           margin: float | None = None, keypoints: bool = False) -> Provider:
    """The ``depthnet-rgb-crop`` source: depthnet finds the hand in the whole frame (or follows
    ``state["previous_joints"]``, grown by ``margin``: default live's ``crop_margin``) and runs
    on a square crop around it; then as ``depthnet-rgb``. None for a frame where it finds no
    hand."""
    def provider(frame: Frame, state: dict) -> Observation | None:
        from depthnet.model import mask_has_arm
        from live.pipeline import HandFinder, LiveConfig, follow_crop  # torch and numba: on the first frame

        if frame.rgb is None:
            raise ValueError("depthnet sources need rgb/")
        if "finder" not in state:
            net = _network(state, weights, backend)
            if keypoints and net.config.keypoints == 0:
                raise ValueError(NO_KEYPOINT_HEAD)
            state["live"] = LiveConfig()
            state["finder"] = HandFinder(net, state["live"].min_mask_pixels,
                                         state["live"].crop_margin if margin is None else margin)
        live, finder = state["live"], state["finder"]

        def found(obs) -> bool:
            return obs.mask is not None and obs.mask.sum() >= live.min_mask_pixels

        previous = state.get("previous_joints")
        crop = None if previous is None else follow_crop(previous, frame.camera,
                                                         live.crop_margin if margin is None else margin)
        obs = finder.observe(frame.rgb, crop)
        if crop is not None and not found(obs):
            obs = finder.observe(frame.rgb, None)  # the hand left the crop: look in the whole frame
        if not found(obs):
            return None
        return _rgb_only(obs.relative, obs.mask, frame, state, obs.keypoints if keypoints else None,
                         mask_has_arm(finder.depthnet.config.foreground))
    return provider


#: name -> provider factory (called with the text after the first ':' split on ':', or nothing)
PROVIDERS: dict[str, Callable[..., Provider]] = {
    "clean": lambda: _clean,
    "sensor": lambda: _sensor,
    "degraded": lambda noise="8", holes="0.3": _degraded(*_degraded_args(noise, holes)),
    "depthnet": lambda weights=None: depthnet_provider(weights, rgb_only=False),
    "depthnet-rgb": lambda weights=None: depthnet_provider(weights, rgb_only=True),
    "depthnet-rgb-crop": lambda weights=None: depthnet_crop_provider(weights),
    "sensor-handmask": lambda weights=None: handmask_provider(weights),
    "depthnet+kp": lambda weights=None: depthnet_provider(weights, rgb_only=False, keypoints=True),
    "depthnet-rgb+kp": lambda weights=None: depthnet_provider(weights, rgb_only=True, keypoints=True),
    "depthnet-rgb-crop+kp": lambda weights=None: depthnet_crop_provider(weights, keypoints=True),
    "sensor+kp": lambda weights=None: sensor_keypoints_provider(weights),
}

#: the built-in sources that run depthnet (their argument is a weights file)
DEPTHNET_SOURCES = ("depthnet", "depthnet-rgb", "depthnet-rgb-crop", "depthnet+kp", "depthnet-rgb+kp",
                    "depthnet-rgb-crop+kp", "sensor-handmask", "sensor+kp")
#: those whose observation brings the hand's mask from the RGB (with the others the tracker finds
#: the hand in the depth; ``sensor+kp`` adds keypoints only)
MASK_FROM_RGB = tuple(name for name in DEPTHNET_SOURCES if name != "sensor+kp")

#: the image folders each built-in source reads (``depthnet`` also the sensor depth, for the hand's distance)
SOURCE_NEEDS = {"clean": ("depth_gt",), "sensor": ("depth",), "degraded": ("depth",), "depthnet": ("rgb", "depth"),
                "depthnet-rgb": ("rgb",), "depthnet-rgb-crop": ("rgb",), "sensor-handmask": ("rgb", "depth"),
                "depthnet+kp": ("rgb", "depth"),
                "depthnet-rgb+kp": ("rgb",), "depthnet-rgb-crop+kp": ("rgb",), "sensor+kp": ("rgb", "depth")}


def make_provider(spec: str) -> Provider:
    """The provider named by ``spec`` (``name`` or ``name:arg:...``); ``ValueError`` for an
    unknown name or bad arguments."""
    name, *args = spec.split(":")
    if name not in PROVIDERS:
        raise ValueError(f"unknown depth source {spec!r}; known: {sorted(PROVIDERS)}")
    try:
        return PROVIDERS[name](*args)
    except TypeError:  # more ':' arguments than the factory takes
        raise ValueError(f"depth source {spec!r}: too many ':' arguments for {name!r}") from None


def weights_path(source: str) -> Path | None:
    """The weights file a depthnet source uses (its argument, else the shipped one); None for the
    other sources. ``ValueError`` when the file is not there."""
    name, *args = source.split(":")
    if name not in DEPTHNET_SOURCES:  # the built-in sources whose argument is a weights file
        return None
    from depthnet.model import pretrained_path

    path = Path(args[0]) if args else pretrained_path(HAND_NETWORK if name == "sensor-handmask" else "cpu")
    if not path.is_file():
        raise ValueError(f"depth source {source!r}: weights file {path} not found")
    return path


def source_arg(text: str) -> str:
    """An argparse ``type`` for depth sources (``compare --sources``, ``track --depth-source``):
    a known source whose arguments, and weights file, check out."""
    import argparse

    try:
        make_provider(text)
        weights_path(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e} (got {text!r})") from None
    return text


def check_source_weights(source: str) -> None:
    """A depthnet source's weights load, and a ``+kp`` source's have a keypoint head (before any
    output is written); ``ValueError`` naming the source otherwise."""
    path = weights_path(source)
    if path is None:
        return
    from depthnet.model import DepthNet

    net = DepthNet.load(path)
    if source.split(":")[0].endswith("+kp") and not net.config.keypoints:
        raise ValueError(f"depth source {source}: {NO_KEYPOINT_HEAD}")
    if source.split(":")[0] == "sensor-handmask" and net.config.foreground != "hand":
        raise ValueError(f"depth source {source}: {NOT_A_HAND_NETWORK}")


def missing_images(rec: Recording, source: str) -> str | None:
    """The first image folder a built-in ``source`` reads that ``rec`` lacks ('depth', ...), or
    None (all there, or a source registered at run time, whose needs are unknown)."""
    return next((kind for kind in SOURCE_NEEDS.get(source.split(":")[0], ()) if not rec.frames_with(kind)), None)


# ---- the loop -----------------------------------------------------------------------------------
class Step(NamedTuple):
    """One tracked frame. ``result`` is the tracker's ``TrackResult``, or None when the source
    saw no hand (the tracker did not run: its track is kept); ``usable``: the observation has
    depth readings; ``backend``: the tracker's scoring backend (None before it ran)."""

    frame: Frame
    observation: Observation | None
    result: object | None
    usable: bool
    backend: str | None

    @property
    def status(self) -> str:
        return "no_hand" if self.result is None else self.result.status


def track_frames(rec: Recording, provider: Provider, config, start: np.ndarray | None = None,
                 independent: bool = False, state: dict | None = None, start_side: str | None = None) -> Iterator[Step]:
    """Track every frame of ``rec`` (select a range first with ``Recording.select``) on the
    depth ``provider`` gives, one :class:`Step` per frame, in order.

    config : ``tracker.tracking.TrackerConfig``; a source that gives a mask makes its
        ``mask_source`` ``"given"``, an offset-free source sets ``depth_offset_free``, one whose
        depth outside the mask is occluders sets ``occluders``, one whose mask takes in the arm
        sets ``mask_has_arm``.
    start : ``(27,)`` the pose of the first frame (e.g. its ground truth), a ``start_side`` hand
        (default ``config.side``; with ``config.side="auto"`` say which); None: the tracker finds
        the hand.
    independent : initialise every frame afresh (frames as unrelated images; ``start`` still
        starts the first).

    A frame whose observation cannot be made raises ``ValueError`` naming the recording and the
    frame; steps already yielded stay with the caller. The tracker is closed when the loop ends.
    """
    from tracker.tracking import Tracker

    state = {"hand_length_mm": config.hand_length_mm} if state is None else state
    tracker = None
    try:
        for i in range(len(rec)):
            frame = rec[i]
            if independent and tracker is not None:
                tracker.reset()
                state["previous_joints"] = None
            try:
                obs = provider(frame, state)
            except ValueError as e:
                raise ValueError(f"{rec.path} frame {frame.name}: {e}") from e
            if obs is None:  # the tracker keeps its track; a source that follows it looks afresh next frame
                state["previous_joints"] = None
                yield Step(frame, None, None, False, None if tracker is None else tracker.backend)
                continue
            if tracker is None:  # configured by the source's first observation
                cfg = replace(config, mask_source="given" if obs.mask is not None else config.mask_source,
                              depth_offset_free=obs.offset_free, occluders=config.occluders or obs.occluders,
                              mask_has_arm=obs.mask_has_arm)
                tracker = Tracker(rec.camera, cfg)
                if start is not None:
                    tracker.reset(start, side=start_side or config.side)
            try:
                r = tracker.step(obs.depth_mm, mask=obs.mask, rgb=frame.rgb, camera=frame.camera, keypoints=obs.keypoints)
            except ValueError as e:
                raise ValueError(f"{rec.path} frame {frame.name}: {e}") from e
            state["previous_joints"] = r.joints_mm if tracker.has_track else None
            yield Step(frame, obs, r, bool(usable_depth(obs.depth_mm).any()), tracker.backend)
    finally:
        if tracker is not None:
            tracker.close()
