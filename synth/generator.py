"""Synthetic RGB-D hand data with exact ground truth: ``handrgbd synth``.

Each frame is *planned* (``plan_frame``: pose, camera crop, appearance, scene; cheap, pure, a
function of ``(split, seed, index)`` only) and then *rendered* (``FrameRenderer``: LibHand mesh
skinned by the pose, textured and lit, in front of photographic/procedural backgrounds and 3D
clutter, then a ToF sensor model for the depth). Splitting the two makes the output independent
of the number of workers, and lets an interrupted run resume: finished frames are skipped, and
the ground-truth arrays are rebuilt from the plans.

Camera: a Kinect v2 colour camera (1920 x 1080, f = 1081.37 px) with depth registered to colour,
as the paper's data. By default every frame is a square close-up crop around the hand (random
scale and offset, so some hands sit near the edges) resampled to ``size x size``; its
intrinsics are in ``intrinsics.npy``. ``full_frame`` renders the whole field of view at
``size`` pixels wide. ``sequence`` makes one smooth 30 fps trajectory seen through one fixed
crop (intrinsics in camera.json).

Outputs (docs/data_format.md): rgb/, depth/ (sensor model: "Kinect" condition C1), depth_gt/
(clean), mask/ (the hand; the forearm is excluded unless ``mask_includes_forearm``), joints.npy
(21 joints of the main hand, mm, camera frame), poses.npy (27 parameters), intrinsics.npy.
"""

from __future__ import annotations

import copy
import json
import logging
import multiprocessing as mp
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from handrgbd.args import MAX_WORKERS, SEED_MAX, CommandParser, integer, number, out_path
from handrgbd.camera import CameraIntrinsics
from handrgbd.outputs import check_outputs
from synth.backgrounds import SPLITS, collage_texture, photo_textures, procedural_texture
from synth.scenarios import EGOCENTRIC_SENSOR_NEAR_MM, SCENARIO_CHOICES, Prop, check_scenario, crop_points, \
    frame_props, pick_scenario, plan_scenario, scenario_config, sequence_key
from synth.poses import axis_angle_quaternion, quaternion_multiply, sample_angles, sample_orientation
from synth.sensor import SensorModel
from tracker.kinematics import HandModel
from tracker.pose import LIMITS, HandPose, quaternion_slerp

log = logging.getLogger(__name__)

__all__ = ["SynthConfig", "FramePlan", "plan_frame", "plan_sequence", "FrameRenderer", "generate",
           "KINECT_V2_COLOR", "synth_main", "build_parser", "SIZE_RANGE", "ASPECT_RANGE"]

#: output image side (crops) or width (full frames), pixels
SIZE_RANGE = (32, 4096)
#: full frames' width / height: from a square to the Kinect v2's whole 16:9 view
ASPECT_RANGE = (1.0, 16 / 9)
#: most frames one synth run renders (a million 256 px frames is about 150 GB)
MAX_FRAMES = 1_000_000

#: Kinect v2 colour camera (typical factory calibration), the paper's capture device.
KINECT_V2_COLOR = CameraIntrinsics(1081.37, 1081.37, 959.5, 539.5, 1920, 1080)

# skin albedo targets (linear RGB in [0, 1]) spanning light to dark skin (Fitzpatrick I-VI);
# each split draws tones from its own interleaved sub-intervals of this scale
_SKIN_TONES = np.array([[0.94, 0.80, 0.70], [0.90, 0.72, 0.60], [0.80, 0.60, 0.45],
                        [0.66, 0.46, 0.32], [0.48, 0.32, 0.22], [0.32, 0.21, 0.15]])
_SPLIT_ID = {s: i for i, s in enumerate(SPLITS)}
SCENE_LABEL = 3
#: renders averaged over a blurred frame's exposure (odd: the middle one is the frame's own instant)
MOTION_BLUR_SAMPLES = 5
#: motion blur of independent frames (no trajectory): the hand's speed (mm/s, a hand gesturing)
#: and turn rate (rad/s), each frame its own, drawn uniformly; the frame interval is 1/30 s
FRAME_RATE_HZ = 30.0
BLUR_SPEED_MM_S = (200.0, 1000.0)
BLUR_SPIN_RAD_S = (0.0, 3.0)
#: distance behind the palm centre that scene objects keep (> 300 mm behind the hand's nearest point)
CLEARANCE_MM = 300.0


@dataclass(frozen=True)
class SynthConfig:
    """Generator settings (defaults: the training set's)."""

    size: int = 256
    full_frame: bool = False
    frame_aspect: float = 16 / 9   # full frames: 16/9 is the whole Kinect view, 4/3 its central part
    sequence: bool = False
    split: str = "train"
    distance_mm: tuple[float, float] = (400.0, 1000.0)
    crop_scale: tuple[float, float] = (1.15, 1.6)
    crop_shift: float = 0.18
    #: share of crops drawn from ``wide_crop_scale`` instead: the hand small among background,
    #: as on a whole webcam frame (teaches localisation and rejection of background)
    wide_crop_prob: float = 0.25
    wide_crop_scale: tuple[float, float] = (1.6, 3.5)
    #: share of poses drawn from the 69 real poses (``synth.poses.sample_angles``)
    real_pose_fraction: float = 0.3
    hand_length_mm: tuple[float, float] = (165.0, 195.0)
    second_hand_prob: float = 0.15
    sleeve_prob: float = 0.4
    table_prob: float = 0.4
    #: share of backgrounds turned into a dead-leaves collage over the photo or procedural texture
    #: (``synth.backgrounds.collage_texture``): skin-like blobs and edges the network must reject
    collage_prob: float = 0.5
    max_clutter: int = 4
    mask_includes_forearm: bool = False
    #: sequences: frames between keyframe poses (fewer = faster motion; 24 = 0.8 s at 30 fps)
    keyframe_every: int = 24
    #: the colour camera's exposure as a share of the frame interval (0: sharp frames; 0.5: 1/60 s
    #: at 30 fps); RGB averages ``MOTION_BLUR_SAMPLES`` renders across it (docs/synthetic_data.md):
    #: along the trajectory in sequences, along a random motion of the hand in independent frames
    motion_blur: float = 0.0
    sensor: SensorModel = field(default_factory=SensorModel)
    #: ``synth.scenarios.SCENARIO_CHOICES``: the plain generator, a hard case, or ``all`` of them
    scenario: str = "plain"

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        if not SIZE_RANGE[0] <= self.size <= SIZE_RANGE[1]:
            raise ValueError(f"size must be in [{SIZE_RANGE[0]}, {SIZE_RANGE[1]}], got {self.size}")
        if not 100 <= self.distance_mm[0] < self.distance_mm[1]:
            raise ValueError(f"distance_mm must be (near, far) with 100 <= near < far, got {self.distance_mm}")
        for name in ("wide_crop_prob", "real_pose_fraction", "collage_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not ASPECT_RANGE[0] <= self.frame_aspect <= ASPECT_RANGE[1] + 1e-9:
            raise ValueError(f"frame_aspect must be in [1, 16/9], got {self.frame_aspect}")
        if not 1 <= self.keyframe_every <= 10_000:
            raise ValueError(f"keyframe_every must be in [1, 10000] frames, got {self.keyframe_every}")
        if not 0.0 <= self.motion_blur <= 1.0:
            raise ValueError(f"motion_blur must be in [0, 1] (a share of the frame interval), got {self.motion_blur}")
        check_scenario(self.scenario, self.full_frame)

    def to_json(self) -> dict:
        d = asdict(self)
        if d["scenario"] == "plain":  # folders made before scenarios existed still resume
            del d["scenario"]
        if d["motion_blur"] == 0.0:  # likewise folders made before motion blur
            del d["motion_blur"]
        return d


class Appearance(NamedTuple):
    skin_tint: np.ndarray           # (3,) multiplies the LibHand texture
    specular: float
    sleeve: np.ndarray | None       # (3,) cloth albedo, or None for a bare forearm
    ambient: np.ndarray
    lights: tuple                   # ((direction (3,), colour (3,)), ...)
    background: int                 # index into the split's photos, or -1 - k for procedural seed k
    background_tint: np.ndarray
    background_depth_mm: float
    collage: int = -1               # seed of a collage over that background, or -1 for none


class FramePlan(NamedTuple):
    """Everything about frame ``index`` except pixels."""

    index: int
    params: np.ndarray              # (27,) main hand
    side: str
    hand_length_mm: float
    camera: CameraIntrinsics        # of the output image
    appearance: Appearance
    props: tuple
    second_hand: tuple | None       # (params (27,), side) or None
    scenario: str = "plain"         # this frame's (``all`` draws one per frame or sequence)
    wrist_rad: np.ndarray | None = None  # (2,) the main hand's forearm bent about the wrist (scenario ``wrist``)
    #: motion blur: the plans of the other instants of the exposure (their RGB is averaged with this one's)
    exposure: tuple = ()


def _exposure_offsets(motion_blur: float) -> list[float]:
    """The exposure's other instants, in frame intervals from the frame's own: ``MOTION_BLUR_SAMPLES``
    spread evenly over ``motion_blur`` intervals centred on the frame, the frame's own left out."""
    offsets = motion_blur * (np.arange(MOTION_BLUR_SAMPLES) / (MOTION_BLUR_SAMPLES - 1) - 0.5)
    return [float(dt) for dt in offsets if dt != 0]


def _rng(config: SynthConfig, seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([_SPLIT_ID[config.split], seed, *key]))


def _skin_tint(rng: np.random.Generator, split: str, texture_mean: np.ndarray) -> np.ndarray:
    # interleave the tone scale: 12 bins, train 0,1,3,4,6,7,.. val 2,8, test 5,11 -> disjoint tones
    bins = {"train": [0, 1, 3, 4, 6, 7, 9, 10], "val": [2, 8], "test": [5, 11]}[split]
    t = (rng.choice(bins) + rng.random()) / 12.0 * (len(_SKIN_TONES) - 1)
    i = min(int(t), len(_SKIN_TONES) - 2)
    tone = (1 - (t - i)) * _SKIN_TONES[i] + (t - i) * _SKIN_TONES[i + 1]
    return tone / texture_mean * rng.uniform(0.9, 1.1, 3) ** 0.3


def _sample_appearance(rng: np.random.Generator, config: SynthConfig, texture_mean: np.ndarray,
                       hand_z: float) -> Appearance:
    lights = []
    for _ in range(rng.integers(1, 3)):
        d = rng.normal(size=3)
        d[2] = abs(d[2]) + 0.3  # light travels into the scene
        warmth = rng.uniform(-0.15, 0.15)
        colour = rng.uniform(0.35, 0.8) * np.array([1 + warmth, 1.0, 1 - warmth])
        lights.append((d / np.linalg.norm(d), colour))
    n_photos = len(photo_textures(config.split))
    background = int(rng.integers(n_photos)) if (n_photos and rng.random() < 0.6) else -1 - int(rng.integers(1 << 20))
    return Appearance(
        skin_tint=_skin_tint(rng, config.split, texture_mean),
        specular=float(rng.uniform(0.0, 0.35)),
        sleeve=rng.uniform(0.05, 0.9, 3) if rng.random() < config.sleeve_prob else None,
        ambient=rng.uniform(0.25, 0.5) * rng.uniform(0.9, 1.1, 3),
        lights=tuple(lights),
        background=background,
        background_tint=rng.uniform(0.6, 1.2, 3),
        background_depth_mm=float(rng.uniform(hand_z + CLEARANCE_MM + 100, max(hand_z + CLEARANCE_MM + 200, 3500.0))),
    )


def _with_collage(appearance: Appearance, rng: np.random.Generator, config: SynthConfig) -> Appearance:
    # its own random stream, so that the rest of a plan is what it was before collages existed
    if rng.random() < config.collage_prob:
        return appearance._replace(collage=int(rng.integers(1 << 31)))
    return appearance


def _sample_props(rng: np.random.Generator, config: SynthConfig, hand_centre: np.ndarray,
                  background_z: float) -> tuple:
    # Everything stays more than 300 mm behind the hand's nearest point, so that the paper's
    # foreground rule (eq. 1: nearest surface + 300 mm) picks the hand, the nearby forearm and a
    # second hand, never clutter: as in the paper's recordings, where the body is further back.
    props = []
    for _ in range(rng.integers(0, config.max_clutter + 1)):
        size = rng.uniform(60, 400, 3)
        near = hand_centre[2] + CLEARANCE_MM + 0.5 * np.linalg.norm(size)
        z = rng.uniform(near, max(near, background_z + 200))  # a big box near a near wall: at the wall
        xy = hand_centre[:2] * z / hand_centre[2] + rng.normal(0, 0.35 * z, 2) * [1.0, 0.6]
        q = sample_orientation(rng, uniform_fraction=1.0)
        R = HandPose([0, 0, 1], q, np.zeros((5, 4))).rotation
        m = np.eye(4)
        m[:3, :3] = R * size[None, :] / 2
        m[:3, 3] = (xy[0], xy[1], z)
        props.append(Prop("box" if rng.random() < 0.6 else "cylinder", m, rng.uniform(0.05, 0.95, 3)))
    if rng.random() < config.table_prob:
        m = np.eye(4)
        y = hand_centre[1] + rng.uniform(80, 300)  # below the hand (y is down)
        m[:3, :3] = np.diag([3000.0, 1.0, 3000.0])
        m[:3, 3] = (hand_centre[0], y, hand_centre[2] + CLEARANCE_MM + 3000.0)  # starts behind the hand
        props.append(Prop("table", m, rng.uniform(0.2, 0.8, 3)))
    return tuple(props)


def _place_hand(rng: np.random.Generator, config: SynthConfig) -> tuple[np.ndarray, float]:
    """Palm centre (camera frame) of a hand seen somewhere in the Kinect image, and its distance."""
    z = rng.uniform(*config.distance_mm)
    cam = KINECT_V2_COLOR
    u = rng.uniform(0.25, 0.75) * cam.width
    v = rng.uniform(0.25, 0.75) * cam.height
    return cam.unproject(np.array([u, v]), z), z


def _crop_camera(joints: np.ndarray, rng: np.random.Generator | None, config: SynthConfig,
                 scale: float | None = None, hand_pad_mm: float = 15.0) -> CameraIntrinsics:
    """Square crop around projected joints (padded by a finger's radius), randomly scaled/shifted."""
    cam = KINECT_V2_COLOR
    lo, hi = cam.padded_box(joints, hand_pad_mm)
    if scale is None:
        wide = config.wide_crop_prob > 0 and rng.random() < config.wide_crop_prob
        scale = rng.uniform(*(config.wide_crop_scale if wide else config.crop_scale))
    side = (hi - lo).max() * scale
    centre = 0.5 * (lo + hi)
    if rng is not None:
        centre = centre + rng.uniform(-config.crop_shift, config.crop_shift, 2) * side
    box = (centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2)
    return cam.crop_resize(box, config.size, config.size)


def _full_camera(config: SynthConfig) -> CameraIntrinsics:
    """The Kinect view (its central ``frame_aspect`` part) at ``size`` pixels wide."""
    cam = KINECT_V2_COLOR
    width = cam.height * config.frame_aspect
    x0 = (cam.width - width) / 2
    return cam.crop_resize((x0, 0, x0 + width, cam.height), config.size, int(round(config.size / config.frame_aspect)))


def _plausible_orientation(rng: np.random.Generator, centre: np.ndarray) -> np.ndarray:
    """An orientation whose forearm does not come at the camera (the arm would hide the hand,
    and the person would be standing behind the camera)."""
    view = centre / np.linalg.norm(centre)
    while True:
        q = sample_orientation(rng)
        forearm = HandPose([0, 0, 1], q, np.zeros((5, 4))).rotation[:, 1]  # hand +y: toward the elbow
        if forearm @ view > -0.3:
            return q


def _sample_params(rng: np.random.Generator, config: SynthConfig) -> tuple[np.ndarray, float]:
    centre, z = _place_hand(rng, config)
    params = np.concatenate([centre, _plausible_orientation(rng, centre),
                             sample_angles(rng, config.real_pose_fraction).ravel()])
    return params, z


def plan_frame(config: SynthConfig, seed: int, index: int, texture_mean: np.ndarray) -> FramePlan:
    """The plan of an independent frame (not ``config.sequence``)."""
    srng = _rng(config, seed, index, 2)  # the scenario's own stream: plain plans are as they were
    scenario = pick_scenario(config.scenario, config.full_frame, srng)
    config = scenario_config(config, scenario)
    rng = _rng(config, seed, index)
    params, z = _sample_params(rng, config)
    side = "right" if rng.random() < 0.5 else "left"
    side = "left" if scenario == "left" else side
    length = float(rng.uniform(*config.hand_length_mm))
    scn, params = plan_scenario(scenario, srng, params, side, length)
    joints = HandModel(side, length).joints(params)[0]
    shown = np.vstack([joints, crop_points(scn, params, length)])
    camera = _full_camera(config) if config.full_frame else _crop_camera(shown, rng, config)
    appearance = _with_collage(_sample_appearance(rng, config, texture_mean, z), _rng(config, seed, index, 1), config)
    still = _sample_props(rng, config, params[:3], appearance.background_depth_mm)
    skin = appearance.skin_tint * texture_mean
    props = still + frame_props(scn, params, length, skin)
    second = None
    if rng.random() < config.second_hand_prob:
        other = params.copy()
        other[3:7] = _plausible_orientation(rng, other[:3])
        other[7:] = sample_angles(rng, config.real_pose_fraction).ravel()
        offset = rng.normal(0, 1, 2)
        offset = offset / np.linalg.norm(offset) * rng.uniform(0.5, 1.0) * length
        other[:2] += offset
        other[2] += rng.uniform(-60, 60)
        second = (other, "left" if side == "right" else "right")
    plan = FramePlan(index, params, side, length, camera, appearance, props, second, scenario, scn.wrist_rad)
    if config.motion_blur <= 0:
        return plan
    # motion blur: a random motion of the hand (and what it carries: arm, held object) across the
    # exposure, from its own stream, so the frame's own instant is the sharp frame's plan
    mrng = _rng(config, seed, index, 3)
    velocity = mrng.normal(size=3)
    velocity *= mrng.uniform(*BLUR_SPEED_MM_S) / np.linalg.norm(velocity)
    axis, spin = mrng.normal(size=3), mrng.uniform(*BLUR_SPIN_RAD_S)
    exposure = []
    for offset in _exposure_offsets(config.motion_blur):
        dt = offset / FRAME_RATE_HZ  # seconds
        moved = params.copy()
        moved[:3] += velocity * dt
        moved[3:7] = quaternion_multiply(axis_angle_quaternion(axis, spin * dt), params[3:7])
        exposure.append(plan._replace(params=moved, props=still + frame_props(scn, moved, length, skin)))
    return plan._replace(exposure=tuple(exposure))


def plan_sequence(config: SynthConfig, seed: int, num_frames: int, texture_mean: np.ndarray) -> list[FramePlan]:
    """Plans of one smooth trajectory (30 fps): keyframe poses every ``keyframe_every`` frames,
    eased between (smoothstep: zero velocity at keyframes), one appearance and one fixed crop
    (scenario ``crops``: a crop that follows the hand, per-frame intrinsics)."""
    srng = _rng(config, seed, 1 << 30, 2)
    scenario = pick_scenario(config.scenario, config.full_frame, srng)
    config = scenario_config(config, scenario)
    rng = _rng(config, seed, 1 << 30)
    side = "right" if rng.random() < 0.5 else "left"
    side = "left" if scenario == "left" else side
    length = float(rng.uniform(*config.hand_length_mm))
    model = HandModel(side, length)
    n_keys = num_frames // config.keyframe_every + 2
    start, z = _sample_params(rng, config)
    scn, start = plan_scenario(scenario, srng, start, side, length)
    keys = [HandPose.from_array(start, side)]
    for _ in range(n_keys - 1):
        prev = keys[-1]
        step = np.concatenate([rng.normal(0, 25, 3), [0, 0, 0, 0], np.zeros(20)])
        q = quaternion_multiply(axis_angle_quaternion(rng.normal(size=3), rng.uniform(0, 0.6)), prev.orientation)
        angles = np.clip(0.5 * prev.angles_rad + 0.5 * sample_angles(rng, config.real_pose_fraction),
                         LIMITS[..., 0], LIMITS[..., 1])
        pos = prev.position_mm + step[:3]
        pos[2] = np.clip(pos[2], *config.distance_mm)
        key = HandPose(pos, q, angles, side)
        if scenario != "plain":
            key = HandPose.from_array(sequence_key(scn, srng, key.to_array(), start), side)
        keys.append(key)

    def pose_at(time: float) -> np.ndarray:  # (27,) at ``time`` frames from the start (>= 0, fractional too)
        k, t = divmod(time, config.keyframe_every)
        k, t = int(k), t / config.keyframe_every
        t = t * t * (3 - 2 * t)
        a, b = keys[k], keys[k + 1]
        return np.concatenate([(1 - t) * a.position_mm + t * b.position_mm,
                               quaternion_slerp(a.orientation, b.orientation, t),
                               ((1 - t) * a.angles_rad + t * b.angles_rad).ravel()])

    poses = np.array([pose_at(i) for i in range(num_frames)])
    joints = model.joints(poses)
    shown = np.vstack([joints.reshape(-1, 3)] + [crop_points(scn, p, length) for p in poses])
    if config.full_frame:
        cameras = [_full_camera(config)] * num_frames
    elif scenario == "crops":  # one scale, the crop following the hand with a little jitter
        scale = srng.uniform(*config.crop_scale)
        follow = replace(config, crop_shift=0.03)
        cameras = [_crop_camera(j, srng, follow, scale=scale * srng.uniform(0.95, 1.05)) for j in joints]
    else:
        cameras = [_crop_camera(shown, None, config, scale=1.5 if scenario == "egocentric" else 1.1)] * num_frames
    appearance = _with_collage(_sample_appearance(rng, config, texture_mean, float(poses[:, 2].mean())),
                               _rng(config, seed, 1 << 30, 1), config)
    props = _sample_props(rng, config, poses[:, :3].mean(0), appearance.background_depth_mm)
    skin = appearance.skin_tint * texture_mean

    def plan(i: int, params: np.ndarray, exposure: tuple = ()) -> FramePlan:
        shown_props = props + frame_props(scn, params, length, skin)
        return FramePlan(i, params, side, length, cameras[i], appearance, shown_props, None, scenario, scn.wrist_rad,
                         exposure)

    def exposure(i: int) -> tuple:  # the exposure's other instants, centred on frame i (none before the start)
        if config.motion_blur <= 0:
            return ()
        return tuple(plan(i, pose_at(max(i + dt, 0.0))) for dt in _exposure_offsets(config.motion_blur))

    return [plan(i, poses[i], exposure(i)) for i in range(num_frames)]


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------
class FrameRenderer:
    """Renders plans into images. One per process (it owns a GL context and uploaded meshes)."""

    def __init__(self, config: SynthConfig, context=None):
        from renderer.mesh import Mesh, MeshRenderer
        from renderer.shapes import unit_cone, unit_sphere
        from synth.libhand import FOREARM_LABEL, HAND_LABEL, LibHandModel

        import trimesh

        self.config = config
        self.renderer = MeshRenderer(context=context, near_mm=50.0, far_mm=20000.0)
        r = self.renderer
        self.hands = {}
        for side in ("right", "left"):
            model = LibHandModel(side)
            texture = model.asset.texture()
            hand = r.upload(Mesh(model.rest_vertices, model.hand_faces, model.rest_normals, uv=model.uv,
                                 texture=texture, label=HAND_LABEL))
            forearm_label = HAND_LABEL if config.mask_includes_forearm else FOREARM_LABEL
            forearm = r.upload(Mesh(model.rest_vertices, model.forearm_faces, model.rest_normals, uv=model.uv,
                                    texture=texture, label=forearm_label))
            sleeve = r.upload(Mesh(model.rest_vertices, model.forearm_faces, model.rest_normals,
                                   color=(1.0, 1.0, 1.0), label=forearm_label))
            self.hands[side] = (model, hand, forearm, sleeve)
        self.texture_mean = texture.reshape(-1, 3).mean(0) / 255.0
        quad_v = np.array([[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]], float)
        quad_uv = np.array([[0, 1], [1, 1], [1, 0], [0, 0]], float)
        quad_f = np.array([[0, 1, 2], [0, 2, 3]])
        self.photos = [r.upload(Mesh(quad_v, quad_f, uv=quad_uv, texture=t, label=SCENE_LABEL))
                       for t in photo_textures(config.split)]
        self._quad = (quad_v, quad_f, quad_uv)
        box = trimesh.creation.box((2.0, 2.0, 2.0))
        cyl_v, cyl_f = unit_cone(1.0, 32)
        cyl_v = cyl_v - [0, 0, 0.5]
        self.props = {"box": r.upload(Mesh(box.vertices, box.faces, label=SCENE_LABEL)),
                      "cylinder": r.upload(Mesh(cyl_v * [1, 1, 2], cyl_f, label=SCENE_LABEL)),
                      "sphere": r.upload(Mesh(*unit_sphere(3), label=SCENE_LABEL)),
                      "table": r.upload(Mesh(np.array([[-1, 0, -1], [1, 0, -1], [1, 0, 1], [-1, 0, 1]], float),
                                             quad_f, label=SCENE_LABEL))}

    def close(self) -> None:
        self.renderer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _background(self, plan: FramePlan, rng_texture: np.random.Generator):
        from renderer.mesh import Mesh

        a = plan.appearance
        temporary = a.background < 0 or a.collage >= 0
        if not temporary:
            handle = self.photos[a.background]
        else:
            photos = photo_textures(self.config.split)
            tex = (photos[a.background] if a.background >= 0 else
                   procedural_texture(np.random.default_rng(-1 - a.background), 256))
            if a.collage >= 0:
                tex = collage_texture(np.random.default_rng(a.collage), tex, photos)
            v, f, uv = self._quad
            handle = self.renderer.upload(Mesh(v, f, uv=uv, texture=tex, label=SCENE_LABEL))
        handle.set_material(tint=a.background_tint)
        cam = plan.camera
        z = a.background_depth_mm
        # a wall facing the camera that covers the whole view at its depth (with margin)
        half_w = 0.75 * z * max(cam.width / cam.fx, cam.height / cam.fy)
        centre = cam.unproject(np.array([(cam.width - 1) / 2, (cam.height - 1) / 2]), z)
        pose = np.diag([half_w, half_w, 1.0, 1.0])
        pose[:3, 3] = centre
        return handle, pose, temporary

    def render(self, plan: FramePlan, noise_rng: np.random.Generator):
        """-> (rgb uint8, depth_mm float32 (sensor), depth_gt_mm float32, mask bool). With motion
        blur (``plan.exposure``) the RGB is the mean of the exposure's renders; depth, mask and
        joints are the frame's own instant's."""
        bg, bg_pose, temporary = self._background(plan, noise_rng)
        try:
            out = self._render_scene(plan, bg, bg_pose)
            rgb = out.rgb
            if plan.exposure:
                total = rgb.astype(np.float32)
                for instant in plan.exposure:
                    total += self._render_scene(instant, bg, bg_pose).rgb
                rgb = np.rint(total / (1 + len(plan.exposure))).astype(np.uint8)
        finally:
            if temporary:
                self.renderer.remove(bg)
        # the depth sensor's dropouts read the surface's colour at the frame's instant: with motion
        # blur, the sharp render under the same camera effects (the same draws)
        effects_rng = copy.deepcopy(noise_rng) if plan.exposure else None
        rgb = _camera_effects(rgb, noise_rng)
        reflectance = _camera_effects(out.rgb, effects_rng) if plan.exposure else rgb
        depth_gt = out.depth_mm
        sensor = self.config.sensor
        if plan.scenario == "egocentric":  # a head-mounted short-range sensor
            sensor = replace(sensor, range_mm=(EGOCENTRIC_SENSOR_NEAR_MM, sensor.range_mm[1]))
        depth = sensor.apply(depth_gt, plan.camera, noise_rng, reflectance)
        from synth.libhand import HAND_LABEL

        mask = out.labels == HAND_LABEL
        return rgb, depth, depth_gt, mask

    def _render_scene(self, plan: FramePlan, bg, bg_pose: np.ndarray):
        """The hands, arms and props of ``plan`` before the background ``bg`` -> the renderer's output."""
        from renderer.mesh import DirectionalLight, Lighting

        a = plan.appearance
        scene = []
        hands = [(plan.params, plan.side)] + ([plan.second_hand] if plan.second_hand else [])
        used = set()
        for params, side in hands:
            if side in used:  # one uploaded mesh per side
                continue
            bend = plan.wrist_rad if not used else None  # the main hand's
            used.add(side)
            model, hand, forearm, sleeve = self.hands[side]
            posed = model.pose(params, plan.hand_length_mm, bend)
            arm = forearm if a.sleeve is None else sleeve
            for h in (hand, arm):
                h.update(posed.vertices, posed.normals)
            hand.set_material(tint=a.skin_tint, specular=a.specular)
            arm.set_material(tint=a.skin_tint if a.sleeve is None else a.sleeve,
                             specular=a.specular if a.sleeve is None else 0.0)
            scene += [(hand, np.eye(4)), (arm, np.eye(4))]
        scene.append((bg, bg_pose))
        for prop in plan.props:
            scene.append((self.props[prop.kind], prop.pose, prop.color))
        lighting = Lighting(ambient=tuple(a.ambient), lights=tuple(
            DirectionalLight(tuple(d), tuple(c)) for d, c in a.lights))
        return self.renderer.render(scene, plan.camera, lighting)


def _camera_effects(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A colour camera's look: slight defocus blur, white balance and gain, sensor noise."""
    img = rgb.astype(np.float32)
    sigma = rng.uniform(0.3, 1.0)
    img = cv2.GaussianBlur(img, (0, 0), sigma)
    img *= rng.uniform(0.85, 1.15) * rng.uniform(0.93, 1.07, 3)
    img += rng.normal(0, rng.uniform(1.0, 4.0), img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Orchestration: plans, workers, resume
# ---------------------------------------------------------------------------------------------
_WORKER: dict = {}


def _texture_mean() -> np.ndarray:
    from synth.libhand import load_libhand

    tex = load_libhand().texture()
    return tex.reshape(-1, 3).mean(0) / 255.0


def make_plans(config: SynthConfig, seed: int, frames: int) -> list[FramePlan]:
    mean = _texture_mean()
    if config.sequence:
        return plan_sequence(config, seed, frames, mean)
    return [plan_frame(config, seed, i, mean) for i in range(frames)]


def _worker_init(config: SynthConfig, out: str, seed: int, camera: CameraIntrinsics, meta: dict) -> None:
    logging.getLogger("OpenGL").setLevel(logging.WARNING)
    from handrgbd.recording import RecordingWriter

    _WORKER["renderer"] = FrameRenderer(config)
    # the same arguments as the main process's writer: camera.json is rewritten with equal bytes
    _WORKER["writer"] = RecordingWriter(out, camera, depth_unit_mm=1.0, meta=meta)
    _WORKER["config"], _WORKER["seed"] = config, seed


def _render_and_write(plan: FramePlan) -> int:
    config, seed = _WORKER["config"], _WORKER["seed"]
    rgb, depth, depth_gt, mask = _WORKER["renderer"].render(plan, _rng(config, seed, plan.index, 1))
    _WORKER["writer"].write_frame(plan.index, rgb=rgb, depth_mm=depth, mask=mask, depth_gt_mm=depth_gt)
    return plan.index


def generate(out: str | Path, frames: int, seed: int, config: SynthConfig | None = None, workers: int = 1,
             progress: bool | str = True) -> dict:
    """Render ``frames`` frames into the recording folder ``out``; resumes where it stopped.

    Returns ``{"frames", "rendered", "skipped", "seconds", "frames_per_s"}``.
    """
    from handrgbd.progress import Progress

    from handrgbd.recording import RecordingWriter

    config = SynthConfig() if config is None else config
    if frames <= 0:
        raise ValueError(f"frames must be > 0, got {frames}")
    if workers <= 0:
        raise ValueError(f"workers must be > 0, got {workers}")
    out = Path(out)
    meta = {"source": "handrgbd synth", "seed": seed, "frames": frames, "config": config.to_json()}
    existing = out / "camera.json"
    if existing.exists():
        if not existing.is_file():
            raise ValueError(f"{existing}: not an ordinary file")
        try:
            old = json.loads(existing.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ValueError(f"{existing}: cannot read ({e}); resume needs the camera.json synth wrote, or use a "
                             f"new --out folder") from e
        if not isinstance(old, dict):
            raise ValueError(f"{existing}: not the camera.json synth writes; use a new --out folder")
        if {k: old.get(k) for k in meta} != json.loads(json.dumps(meta)):
            raise ValueError(f"{existing}: {out} holds data made with other settings "
                             f"(seed/frames/config differ); use a new --out folder")
    plans = make_plans(config, seed, frames)
    # camera.json: the output image size; for crops its intrinsics are frame 0's, and
    # intrinsics.npy gives every frame's own
    base_camera = plans[0].camera
    writer = RecordingWriter(out, base_camera, depth_unit_mm=1.0, meta=meta)
    todo = [p for p in plans if not writer.frame_done(p.index)]
    t0 = time.perf_counter()
    bar = Progress(frames, "synth", "frame", progress, initial=frames - len(todo))
    if todo:
        if workers == 1:
            _worker_init(config, str(out), seed, base_camera, meta)
            try:
                for plan in todo:
                    _render_and_write(plan)
                    bar.update()
            finally:
                _WORKER.pop("renderer").close()
        else:
            ctx = mp.get_context("spawn")  # fresh processes: GL state must not be forked
            with ctx.Pool(workers, initializer=_worker_init, initargs=(config, str(out), seed, base_camera, meta)) as pool:
                for _ in pool.imap_unordered(_render_and_write, todo, chunksize=4):
                    bar.update()
    bar.close()
    seconds = time.perf_counter() - t0
    joints = np.stack([HandModel(p.side, p.hand_length_mm).joints(p.params)[0] for p in plans])
    intrinsics = None
    if not config.full_frame and (not config.sequence or any(p.camera != base_camera for p in plans)):
        intrinsics = np.array([[p.camera.fx, p.camera.fy, p.camera.cx, p.camera.cy] for p in plans])
    writer.write_arrays(joints=joints, poses=np.stack([p.params for p in plans]), intrinsics=intrinsics)
    return {"frames": frames, "rendered": len(todo), "skipped": frames - len(todo), "seconds": seconds,
            "frames_per_s": len(todo) / seconds if todo and seconds > 0 else None}


def build_parser() -> CommandParser:
    parser = CommandParser(prog="handrgbd synth", description=synth_main.__doc__)
    parser.add_argument("--out", type=out_path, required=True, help="output recording folder (resumed if it exists)")
    parser.add_argument("--frames", type=integer(1, MAX_FRAMES), required=True, help="number of frames")
    parser.add_argument("--seed", type=integer(0, SEED_MAX), default=0,
                        help="random seed (same seed + arguments = same bytes)")
    parser.add_argument("--size", type=integer(*SIZE_RANGE), default=256,
                        help="output size: square crop side, or full-frame width")
    parser.add_argument("--split", choices=SPLITS, default="train",
                        help="disjoint backgrounds and skin tones per split (seeds are also split-specific)")
    parser.add_argument("--sequence", action="store_true", help="one smooth 30 fps trajectory, fixed crop")
    parser.add_argument("--full-frame", action="store_true", help="the whole Kinect v2 view instead of hand crops")
    parser.add_argument("--aspect", type=number(*ASPECT_RANGE), default=16 / 9,
                        help="full frames: width/height (16/9 = the whole view, 1.333 = its central 4:3 part)")
    parser.add_argument("--real-pose-fraction", type=number(0, 1), default=SynthConfig.real_pose_fraction,
                        help="share of poses from the 69 real Intel poses (0 = the prior of the v1 weights' data)")
    parser.add_argument("--wide-crop-prob", type=number(0, 1), default=SynthConfig.wide_crop_prob,
                        help="share of crops 1.6-3.5x the hand instead of 1.15-1.6x (0 = as the v1 weights' data)")
    parser.add_argument("--collage-prob", type=number(0, 1), default=SynthConfig.collage_prob,
                        help="share of dead-leaves collage backgrounds (0 = as the v1-v3 weights' data)")
    parser.add_argument("--workers", type=integer(1, MAX_WORKERS), default=1,
                        help="parallel processes (output does not depend on it)")
    parser.add_argument("--scenario", choices=SCENARIO_CHOICES, default="plain",
                        help="hard cases (docs/synthetic_data.md): forearm | object | egocentric | left | crops, a mix "
                             "of them (all), or the plain generator")
    parser.add_argument("--mask-includes-forearm", action="store_true", help="label the forearm as hand in mask/")
    parser.add_argument("--keyframe-every", type=integer(1, 10_000), default=SynthConfig.keyframe_every, metavar="N",
                        help="with --sequence: frames between keyframe poses (default 24, 0.8 s at 30 fps; 6: four "
                             "times faster, as a hand gesturing)")
    parser.add_argument("--motion-blur", type=number(0, 1), default=0.0, metavar="E",
                        help="the exposure as a share of the frame interval (0.5: 1/60 s at 30 fps); RGB blurred along "
                             "the motion (a sequence's trajectory; in independent frames a random motion of the hand, "
                             "200-1000 mm/s), depth and joints at the frame's instant")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar: a log line every few seconds instead")
    return parser


def synth_main(argv: list[str] | None = None) -> int:
    """Render synthetic RGB-D hand frames with ground truth into a recording folder."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if not args.sequence and args.keyframe_every != SynthConfig.keyframe_every:
            raise ValueError("--keyframe-every shapes a trajectory: use it with --sequence")
        config = SynthConfig(size=args.size, split=args.split, sequence=args.sequence, full_frame=args.full_frame,
                             frame_aspect=args.aspect, real_pose_fraction=args.real_pose_fraction,
                             wide_crop_prob=args.wide_crop_prob, collage_prob=args.collage_prob,
                             mask_includes_forearm=args.mask_includes_forearm, scenario=args.scenario,
                             keyframe_every=args.keyframe_every, motion_blur=args.motion_blur)
        check_outputs(args.out, (), overwrite=True)  # a folder we can write in; an existing one is resumed
        stats = generate(args.out, args.frames, args.seed, config, args.workers,
                         progress="log" if args.no_progress else True)
    except (ValueError, OSError) as e:  # OSError: a write the checks could not foresee
        return parser.fail(e)
    log.info("%s: %d frames (%d rendered, %d already there) in %.1f s", args.out, stats["frames"],
             stats["rendered"], stats["skipped"], stats["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(synth_main())
