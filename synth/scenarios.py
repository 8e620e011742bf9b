"""Hard cases real cameras show: ``handrgbd synth --scenario NAME`` (docs/synthetic_data.md).

The plain generator shows one hand in a tight crop, its forearm mostly cut off or in a sleeve,
nothing in the hand, the clutter kept 300 mm behind it. Real recordings break each of those:

* ``forearm``: a bare forearm and the upper arm (a rigid cylinder from the elbow) in view (the arm is
  labelled not-hand in mask/; it lies within eq. 1's 300 mm, so the paper's foreground keeps it);
* ``wrist``: ``forearm`` with the wrist bent (20-50 degrees of flexion or extension, up to 17
  of deviation, one bend per sequence): real arms are seldom in line with the palm, and neither
  the 27 parameters nor the tracker's forearm cone have a wrist;
* ``object``: a held object (cylinder, box or sphere, plain colour) in the palm, the fingers
  closed round it: it hides fingers and touches the palm, so eq. 1 keeps it too;
* ``egocentric``: the camera above and behind the hand (head-mounted), looking 40-70 degrees
  down; the hand 250-500 mm away over a table with objects on it near the hand; the forearm
  comes from the bottom of the image; a short-range sensor (readings from 150 mm);
* ``left``: left hands only;
* ``crops``: tight crops that follow the hand, with per-frame intrinsics (photo data sets);
* ``all``: each frame (or each sequence) one of the above, drawn from the seed.

Everything here is planning: pure functions of a ``numpy.random.Generator`` that give the pose
changes, the extra props (as :class:`Prop`, rendered with the scene's label, so not hand in
mask/) and the points a crop must show. Scenario draws come from their own random stream, so
``plain`` plans are what they were before scenarios existed.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from synth.libhand import wrist_bend
from tracker.hand_geometry import default_geometry
from tracker.kinematics import DEFAULT_HAND_LENGTH_MM
from tracker.pose import LIMITS, axis_angle_quaternion, matrix_to_quaternion, quaternion_multiply, \
    quaternion_to_matrix

__all__ = ["SCENARIOS", "SCENARIO_CHOICES", "Prop", "ScenarioPlan", "check_scenario", "pick_scenario",
           "scenario_config", "plan_scenario", "sequence_key", "frame_props", "crop_points", "EGOCENTRIC_SENSOR_NEAR_MM"]

#: the hard cases, each on its own
SCENARIOS = ("forearm", "object", "egocentric", "left", "crops", "wrist")
#: what ``--scenario`` accepts: the plain generator, one hard case, or a mix of them
SCENARIO_CHOICES = ("plain", *SCENARIOS, "all")
#: egocentric rigs carry short-range depth sensors (an SR300 reads from 200 mm)
EGOCENTRIC_SENSOR_NEAR_MM = 150.0

#: hand frame (180 mm hand): the end of LibHand's extended forearm, where the elbow is
_ELBOW_MM = np.array([0.0, 320.0, 20.0])
#: half the palm's thickness (hand frame z), where a held object touches the palm
_PALM_HALF_THICKNESS_MM = 14.0
UPPER_ARM_MM = 280.0


class Prop(NamedTuple):
    kind: str                       # "box" | "cylinder" | "sphere" | "table"
    pose: np.ndarray                # (4, 4) unit shape -> camera (mm)
    color: np.ndarray


class ScenarioPlan(NamedTuple):
    """One frame's or one sequence's scenario draws (hand-independent parts)."""

    name: str
    held: tuple | None = None          # (kind, (4, 4) unit shape -> hand frame at 180 mm, colour)
    upper_arm: np.ndarray | None = None  # (3,) camera frame unit vector: elbow -> shoulder
    arm_radius_mm: float = 0.0
    arm_color: np.ndarray | None = None  # None: bare (the skin's colour)
    static_props: tuple = ()           # egocentric table and what stands on it
    wrist_rad: np.ndarray | None = None  # (flexion, deviation) of the forearm about the wrist (synth.libhand.wrist_bend)
    left: bool = False                 # a left hand's: the mesh, bend included, is the right one mirrored (hand x)


def check_scenario(name: str, full_frame: bool) -> None:
    """Raise ValueError for an unknown name or an impossible combination."""
    if name not in SCENARIO_CHOICES:
        raise ValueError(f"unknown scenario {name!r}; valid: {', '.join(SCENARIO_CHOICES)}")
    if name == "crops" and full_frame:
        raise ValueError("scenario 'crops' makes hand crops and --full-frame renders the whole view: choose one "
                         f"(valid with --full-frame: {', '.join(s for s in SCENARIO_CHOICES if s != 'crops')})")


def pick_scenario(name: str, full_frame: bool, rng: np.random.Generator) -> str:
    """The scenario of one frame or sequence: ``name`` itself, or for ``all`` one drawn from
    ``SCENARIOS`` (without ``crops`` on full frames)."""
    if name != "all":
        return name
    choices = [s for s in SCENARIOS if not (full_frame and s == "crops")]
    return choices[int(rng.integers(len(choices)))]


def scenario_config(config, name: str):
    """``config`` (a ``SynthConfig``) with the settings the scenario overrides."""
    arm = dict(sleeve_prob=0.0, second_hand_prob=0.0, wide_crop_prob=0.0, crop_scale=(1.05, 1.3))
    overrides = {
        "forearm": arm,
        "wrist": arm,  # the forearm's, bent
        "object": dict(second_hand_prob=0.0),
        "egocentric": dict(distance_mm=(250.0, 500.0), second_hand_prob=0.0, table_prob=0.0, max_clutter=2,
                           wide_crop_prob=0.0, crop_scale=(1.3, 2.0)),
        "crops": dict(wide_crop_prob=0.0),
    }.get(name)
    return replace(config, **overrides) if overrides else config


# ---- poses ------------------------------------------------------------------------------------
def _frame(y_axis: np.ndarray, z_hint: np.ndarray, roll_rad: float) -> np.ndarray:
    """Hand -> camera quaternion with hand +y along ``y_axis`` (toward the elbow) and hand +z
    (the back of the hand) nearest ``z_hint``, then turned ``roll_rad`` about the forearm."""
    y = y_axis / np.linalg.norm(y_axis)
    z = z_hint - (z_hint @ y) * y
    z /= np.linalg.norm(z)
    x = np.cross(y, z)
    q = matrix_to_quaternion(np.stack([x, y, z], 1))
    return quaternion_multiply(axis_angle_quaternion(y, roll_rad), q)


def _ego_up(pitch_rad: float) -> np.ndarray:
    """World up in the camera frame of a camera pitched ``pitch_rad`` down (x right, y down)."""
    return np.array([0.0, -math.cos(pitch_rad), -math.sin(pitch_rad)])


def _grasp_angles(rng: np.random.Generator, kind: str, size_mm: float) -> np.ndarray:
    """(5, 4) finger angles closed round an object of ``size_mm`` (radius or half thickness)."""
    close = float(np.clip(1.25 - size_mm / 60.0, 0.5, 1.0))  # bigger objects: fingers less closed
    a = np.zeros((5, 4))
    a[0] = rng.uniform([0.3, 0.4, 0.2, 0.1], [0.7, 0.7, 0.5, 0.5])
    for f in range(1, 5):
        a[f] = [close * rng.uniform(0.7, 1.1), rng.uniform(-0.1, 0.1), close * rng.uniform(0.8, 1.3),
                close * rng.uniform(0.4, 0.8)]
    return np.clip(a, LIMITS[..., 0], LIMITS[..., 1])


def _held_object(rng: np.random.Generator) -> tuple:
    """(kind, unit shape -> hand frame (4, 4) at 180 mm, colour): in the palm, on its palm side
    (hand -z), long axis across the palm so the fingers wrap it."""
    kind = ("cylinder", "box", "sphere")[int(rng.integers(3))]
    m = np.eye(4)
    across = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])  # unit z -> hand x
    if kind == "cylinder":
        r, length = rng.uniform(18, 32), rng.uniform(90, 150)
        m[:3, :3] = across @ np.diag([r, r, length / 2])
        reach = r
    elif kind == "box":
        size = np.array([rng.uniform(70, 130), rng.uniform(40, 70), rng.uniform(35, 60)])
        m[:3, :3] = np.diag(size / 2)
        reach = size[2] / 2
    else:
        r = rng.uniform(28, 45)
        m[:3, :3] = np.diag([r, r, r])
        reach = r
    tilt = quaternion_to_matrix(axis_angle_quaternion([0, 1, 0], rng.uniform(-0.25, 0.25)))
    m[:3, :3] = tilt @ m[:3, :3]
    m[:3, 3] = (0.0, -rng.uniform(15, 35), -(_PALM_HALF_THICKNESS_MM + reach))
    return kind, m, rng.uniform(0.05, 0.95, 3), reach


def _hand_matrix(params: np.ndarray, length_mm: float) -> np.ndarray:
    """(4, 4) hand frame (mm at a 180 mm hand) -> camera, for a hand of ``length_mm``."""
    m = np.eye(4)
    m[:3, :3] = quaternion_to_matrix(params[3:7]) * (length_mm / DEFAULT_HAND_LENGTH_MM)
    m[:3, 3] = params[:3]
    return m


def _arm_point(params: np.ndarray, length_mm: float, point_mm, wrist_rad=None, left: bool = False) -> np.ndarray:
    """(3,) camera frame: ``point_mm (3,)``, a point of the forearm in the hand frame (180 mm
    hand, a right hand's), with the forearm bent about the wrist by ``wrist_rad`` (None:
    straight) as ``synth.libhand`` bends the mesh, mirrored (hand x) for a ``left`` hand."""
    p = np.asarray(point_mm, np.float64)
    if wrist_rad is not None:
        p = wrist_bend(wrist_rad, default_geometry().wrist_mm) @ np.append(p, 1.0)
    if left:
        p = p * [-1.0, 1.0, 1.0]
    return (_hand_matrix(params, length_mm) @ np.append(p, 1.0))[:3]


def _elbow(params: np.ndarray, length_mm: float, wrist_rad=None, left: bool = False) -> np.ndarray:
    return _arm_point(params, length_mm, _ELBOW_MM, wrist_rad, left)


def plan_scenario(name: str, rng: np.random.Generator, params: np.ndarray, side: str,
                  length_mm: float) -> tuple[ScenarioPlan, np.ndarray]:
    """Draw ``name``'s extras for a hand starting at ``params`` (27,); returns the plan and the
    start's parameters as the scenario changes them (egocentric orientation, grasp). The same
    ``ScenarioPlan`` serves every frame of a sequence (see ``sequence_key``)."""
    params = np.array(params, dtype=np.float64)
    if name == "object":
        kind, m, colour, reach = _held_object(rng)
        params[7:] = _grasp_angles(rng, kind, reach).ravel()
        return ScenarioPlan(name, held=(kind, m, colour, reach)), params
    if name in ("forearm", "wrist"):
        noise = rng.normal(0, 0.3, 3)
        colour = None if rng.random() < 0.5 else rng.uniform(0.05, 0.9, 3)  # bare (skin), or a T-shirt sleeve
        radius = rng.uniform(38, 48)
        bend = None
        if name == "wrist":  # flexion or extension, and some deviation (radial or ulnar)
            bend = np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.35, 0.87), rng.uniform(-0.3, 0.3)])
        along = _elbow(params, length_mm, bend, side == "left") - params[:3]
        d = 0.5 * along / np.linalg.norm(along) + np.array([0.0, 0.0, 1.0]) + noise
        return ScenarioPlan(name, upper_arm=d / np.linalg.norm(d), arm_radius_mm=radius, arm_color=colour,
                            wrist_rad=bend, left=side == "left"), params
    if name == "egocentric":
        pitch = rng.uniform(math.radians(40), math.radians(70))
        up = _ego_up(pitch)
        centre = params[:3]
        body = -rng.uniform(200, 300) * up + [rng.uniform(120, 220) * (1 if side == "right" else -1), 0, 0]
        arm = body - centre
        arm = quaternion_to_matrix(axis_angle_quaternion(rng.normal(size=3), rng.uniform(0, 0.35))) @ arm
        roll = rng.uniform(-1.6, 0.6)  # from palm down toward thumb up (a right hand's thumb is on hand +x)
        params[3:7] = _frame(arm, up, roll if side == "right" else -roll)  # a left hand's is on -x
        return ScenarioPlan(name, static_props=_table_scene(rng, centre, up)), params
    return ScenarioPlan(name), params


def sequence_key(plan: ScenarioPlan, rng: np.random.Generator, key_params: np.ndarray, start: np.ndarray) -> np.ndarray:
    """A sequence keyframe's parameters kept inside the scenario: the grasp stays closed (small
    jitter), the egocentric hand stays palm-down-ish near its start orientation."""
    p = np.array(key_params, dtype=np.float64)
    if plan.name == "object":
        p[7:] = np.clip(start[7:].reshape(5, 4) + rng.normal(0, 0.05, (5, 4)), LIMITS[..., 0], LIMITS[..., 1]).ravel()
    elif plan.name == "egocentric":
        turn = axis_angle_quaternion(rng.normal(size=3), rng.uniform(0, 0.3))
        p[3:7] = quaternion_multiply(turn, start[3:7])
    return p


def _table_scene(rng: np.random.Generator, centre: np.ndarray, up: np.ndarray) -> tuple:
    """A table under the hand (40-120 mm below the palm) and 1-3 objects standing on it
    120-300 mm from the hand."""
    x = np.array([1.0, 0.0, 0.0])
    z = np.cross(x, up)
    base = centre - rng.uniform(40, 120) * up
    m = np.eye(4)
    m[:3, :3] = np.stack([x, up, z], 1) @ np.diag([3000.0, 1.0, 3000.0])
    m[:3, 3] = base
    props = [Prop("table", m, rng.uniform(0.2, 0.8, 3))]
    for _ in range(int(rng.integers(1, 4))):
        kind = "box" if rng.random() < 0.5 else "cylinder"
        size = np.array([rng.uniform(40, 120), rng.uniform(40, 120), rng.uniform(40, 200)])
        if kind == "cylinder":
            size[1] = size[0]
        a = rng.uniform(0, 2 * math.pi)
        where = base + (rng.uniform(120, 300) + size[:2].max() / 2) * (math.cos(a) * x + math.sin(a) * z)
        yaw = axis_angle_quaternion(up, rng.uniform(0, math.pi))
        frame = quaternion_to_matrix(yaw) @ np.stack([x, z, up], 1)  # unit z (height) -> up
        o = np.eye(4)
        o[:3, :3] = frame @ np.diag(size / 2)
        o[:3, 3] = where + size[2] / 2 * up
        props.append(Prop(kind, o, rng.uniform(0.05, 0.95, 3)))
    return tuple(props)


def frame_props(plan: ScenarioPlan, params: np.ndarray, length_mm: float, skin_rgb: np.ndarray) -> tuple:
    """The scenario's props in one frame with the hand at ``params`` (27,); ``skin_rgb`` (3,)
    colours a bare upper arm."""
    props = list(plan.static_props)
    if plan.held is not None:
        kind, m, colour, _ = plan.held
        props.append(Prop(kind, _hand_matrix(params, length_mm) @ m, colour))
    if plan.upper_arm is not None:  # rigid: from the elbow, one direction in the camera frame
        elbow = _elbow(params, length_mm, plan.wrist_rad, plan.left)
        n = UPPER_ARM_MM * length_mm / DEFAULT_HAND_LENGTH_MM
        z = plan.upper_arm
        axis = n * z
        x = np.cross(z, [0.0, 1.0, 0.0] if abs(z[1]) < 0.9 else [1.0, 0.0, 0.0])
        x /= np.linalg.norm(x)
        r = plan.arm_radius_mm * length_mm / DEFAULT_HAND_LENGTH_MM
        m = np.eye(4)
        m[:3, :3] = np.stack([x, np.cross(z, x), z], 1) @ np.diag([r, r, n / 2])
        m[:3, 3] = elbow + axis / 2
        props.append(Prop("cylinder", m, np.asarray(skin_rgb if plan.arm_color is None else plan.arm_color, float)))
    return tuple(props)


def crop_points(plan: ScenarioPlan, params: np.ndarray, length_mm: float) -> np.ndarray:
    """(K, 3) camera-frame points besides the joints that a crop must show: most of the
    forearm (the point 220 mm from the palm centre toward the elbow) with a forearm in view, 160
    mm of it in egocentric views."""
    reach = {"forearm": 220.0, "wrist": 220.0, "egocentric": 160.0}.get(plan.name)
    if reach is None:
        return np.zeros((0, 3))
    return _arm_point(params, length_mm, [0.0, reach, 0.0], plan.wrist_rad, plan.left)[None]
