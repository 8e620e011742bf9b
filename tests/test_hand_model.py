"""Hand models: pose space, forward kinematics, primitives, LibHand skinning, one joint definition."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import naive_hand
from handrgbd import Joint
from renderer.tiled import PrimitiveKind
from tracker.hand_geometry import GEOMETRY_PATH, HandGeometry, default_geometry
from tracker.kinematics import PRIMITIVE_LAYOUT, HandModel, finger_crossing_penalty
from tracker.pose import CANONICAL_POSES, LIMITS, PARAM_NAMES, HandPose, quaternion_to_matrix

GOLDEN = Path(__file__).parent / "golden"


def random_poses(n: int, seed: int) -> np.ndarray:
    """n parameter vectors: angles uniform within limits, random orientations, 400-900 mm away."""
    rng = np.random.default_rng(seed)
    p = np.zeros((n, 27))
    p[:, :3] = rng.uniform([-150, -150, 400], [150, 150, 900], (n, 3))
    q = rng.normal(size=(n, 4))
    p[:, 3:7] = q / np.linalg.norm(q, axis=1, keepdims=True)
    p[:, 7:] = rng.uniform(LIMITS[..., 0].ravel(), LIMITS[..., 1].ravel(), (n, 20))
    return p


@pytest.fixture(scope="module")
def libhand():
    from synth.libhand import LibHandModel

    return LibHandModel()


# ---- pose space -------------------------------------------------------------------------------
def test_parameter_layout():
    assert len(PARAM_NAMES) == 27 and PARAM_NAMES[3] == "qw" and PARAM_NAMES[7] == "thumb_cmc_flexion"
    assert PARAM_NAMES[11:15] == ("index_mcp_flexion", "index_mcp_abduction", "index_pip_flexion",
                                  "index_dip_flexion")


def test_array_and_json_round_trip(tmp_path):
    p = random_poses(1, 0)[0]
    pose = HandPose.from_array(p, "left")
    np.testing.assert_allclose(pose.to_array()[7:], p[7:])
    np.testing.assert_allclose(quaternion_to_matrix(pose.to_array()[3:7]), quaternion_to_matrix(p[3:7]), atol=1e-12)
    path = tmp_path / "pose.json"
    pose.save(path)
    back = HandPose.load(path)
    assert back.side == "left"
    np.testing.assert_array_equal(back.to_array(), pose.to_array())
    # pose -> joints -> pose (through the file) gives the same joints
    model = HandModel("left")
    np.testing.assert_allclose(model.joints(back.to_array()), model.joints(p), atol=1e-9)


def test_clamping_to_limits():
    rng = np.random.default_rng(1)
    angles = rng.uniform(-3, 3, (5, 4))
    pose = HandPose([0, 0, 500], [1, 0, 0, 0], angles).clamped()
    assert pose.within_limits()
    inside = (angles >= LIMITS[..., 0]) & (angles <= LIMITS[..., 1])
    np.testing.assert_array_equal(pose.angles_rad[inside], angles[inside])
    np.testing.assert_array_equal(pose.angles_rad[angles < LIMITS[..., 0]], LIMITS[..., 0][angles < LIMITS[..., 0]])
    assert not HandPose([0, 0, 500], [1, 0, 0, 0], angles).within_limits()


def test_canonical_poses_are_valid_and_named():
    for name in list(CANONICAL_POSES) + ["relaxed"]:
        assert HandPose.canonical(name).within_limits(), name
    with pytest.raises(ValueError, match="unknown pose"):
        HandPose.canonical("jazz_hands")
    joints = HandModel().joints(HandPose.canonical("pinch").to_array())[0]
    assert np.linalg.norm(joints[Joint.THUMB_TIP] - joints[Joint.INDEX_TIP]) < 5.0


def test_mirror_twice_is_identity_and_mirrors_joints():
    pose = HandPose.from_array(random_poses(1, 2)[0], "right")
    twice = pose.mirrored().mirrored()
    assert twice.side == "right"
    np.testing.assert_allclose(twice.to_array(), pose.to_array(), atol=1e-12)
    right = HandModel("right").joints(pose.to_array())[0]
    left = HandModel("left").joints(pose.mirrored().to_array())[0]
    np.testing.assert_allclose(left, right * [-1, 1, 1], atol=1e-9)


def test_interpolation():
    a, b = (HandPose.from_array(p) for p in random_poses(2, 3))
    np.testing.assert_allclose(a.interpolate(b, 0.0).to_array(), a.to_array(), atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(a.interpolate(b, 1.0).orientation), b.rotation, atol=1e-9)
    mid = a.interpolate(b, 0.5)
    np.testing.assert_allclose(mid.angles_rad, (a.angles_rad + b.angles_rad) / 2)
    # slerp midpoint: equal rotation angle to both ends
    ra = np.arccos(np.clip((np.trace(a.rotation.T @ mid.rotation) - 1) / 2, -1, 1))
    rb = np.arccos(np.clip((np.trace(b.rotation.T @ mid.rotation) - 1) / 2, -1, 1))
    assert ra == pytest.approx(rb, abs=1e-9)


@pytest.mark.parametrize("kwargs, field", [
    (dict(position_mm=[0, 0]), "position_mm"),
    (dict(angles_rad=np.full((5, 4), np.nan)), "angles_rad"),
    (dict(orientation=[0, 0, 0, 0]), "orientation"),
    (dict(side="middle"), "side"),
])
def test_bad_poses_name_the_field(kwargs, field):
    base = dict(position_mm=[0, 0, 500], orientation=[1, 0, 0, 0], angles_rad=np.zeros((5, 4)))
    base.update(kwargs)
    with pytest.raises(ValueError, match=field):
        HandPose(**base)


def test_strict_requires_unit_quaternion():
    assert HandPose([0, 0, 500], [2, 0, 0, 0], np.zeros((5, 4))).orientation.tolist() == [1, 0, 0, 0]
    with pytest.raises(ValueError, match="unit quaternion"):
        HandPose([0, 0, 500], [2, 0, 0, 0], np.zeros((5, 4)), strict=True)
    with pytest.raises(ValueError, match="shape"):
        HandPose.from_array(np.zeros(26))


def test_bad_parameters_to_the_model():
    model = HandModel()
    with pytest.raises(ValueError, match=r"shape \(N, 27\)"):
        model.joints(np.zeros((3, 26)))
    with pytest.raises(ValueError, match="non-finite"):
        model.joints(np.full(27, np.nan))
    with pytest.raises(ValueError, match="zero quaternion"):
        model.joints(np.zeros(27))
    with pytest.raises(ValueError, match="side"):
        HandModel("both")
    with pytest.raises(ValueError, match="hand_length_mm"):
        HandModel(hand_length_mm=-3)


# ---- kinematics -----------------------------------------------------------------------------
def test_open_pose_golden_joints(update_golden):
    joints = HandModel().joints(HandPose.canonical("open").to_array())[0]
    path = GOLDEN / "open_pose_joints.json"
    if update_golden:
        path.write_text(json.dumps(np.round(joints, 4).tolist(), indent=1) + "\n")
    np.testing.assert_allclose(joints, np.array(json.loads(path.read_text())), atol=1e-3)


def test_open_pose_anatomy():
    """Independent facts about the open right hand facing the camera (identity orientation)."""
    j = HandModel().joints(HandPose.canonical("open", position_mm=(0, 0, 500)).to_array())[0]
    # straight fingers: wrist to middle fingertip is the hand length
    assert np.linalg.norm(j[Joint.MIDDLE_TIP] - j[Joint.WRIST]) == pytest.approx(180.0, rel=0.01)
    # fingers point up in the image (-y), the thumb is on the image's right (+x) for a right hand
    assert j[Joint.MIDDLE_TIP, 1] < j[Joint.WRIST, 1] - 150
    assert j[Joint.INDEX_MCP, 0] > j[Joint.PINKY_MCP, 0] and j[Joint.THUMB_TIP, 0] > j[Joint.INDEX_MCP, 0]
    # every finger is a chain of its bone lengths
    g = default_geometry()
    for f in range(5):
        chain = j[[1 + 4 * f, 2 + 4 * f, 3 + 4 * f, 4 + 4 * f]]
        np.testing.assert_allclose(np.linalg.norm(np.diff(chain, axis=0), axis=1), g.lengths_mm[f], rtol=1e-9)


def test_flexion_curls_toward_the_palm():
    """Positive flexion moves fingertips toward the palm side (-z in the hand frame = toward a
    camera the palm faces), positive abduction moves a finger toward the thumb."""
    base = HandPose.canonical("open").to_array()
    model = HandModel()
    j0 = model.joints(base)[0]
    for f in range(1, 5):
        p = base.copy()
        p[7 + 4 * f] = 0.5
        assert model.joints(p)[0][4 + 4 * f, 2] < j0[4 + 4 * f, 2] - 10
        p = base.copy()
        p[8 + 4 * f] = 0.2
        assert model.joints(p)[0][4 + 4 * f, 0] > j0[4 + 4 * f, 0] + 5


def test_hand_length_scales_about_the_palm_centre():
    p = random_poses(3, 4)
    small, big = HandModel(hand_length_mm=160.0), HandModel(hand_length_mm=200.0)
    t = p[:, None, :3]
    np.testing.assert_allclose((big.joints(p) - t) * 160 / 200, small.joints(p) - t, atol=1e-9)


def test_fk_kernel_matches_numpy_twin():
    g = default_geometry()
    for side, mirror in (("right", 1.0), ("left", -1.0)):
        model = HandModel(side, 190.0)
        params = random_poses(20, 5)
        kin = model.kinematics(params)
        prims = model.primitives_from_frames(kin.frames)
        for i in range(len(params)):
            joints, frames = naive_hand.forward_kinematics(params[i], g, model.scale, mirror)
            np.testing.assert_allclose(kin.joints[i], joints, atol=1e-9)
            np.testing.assert_allclose(kin.frames[i], frames, atol=1e-9)
            np.testing.assert_allclose(prims[i], naive_hand.primitive_transforms(frames, g), atol=1e-9)


def test_primitive_layout_and_set():
    model = HandModel()
    assert len(PRIMITIVE_LAYOUT) == 37 == len(model.primitive_set)
    kinds = np.asarray(model.primitive_set.kinds)
    assert (kinds == 0).sum() == 22 and (kinds == 1).sum() == 15
    prims = model.primitives(HandPose.canonical("open").to_array())[0]
    j = model.joints(HandPose.canonical("open").to_array())[0]
    # the index DIP sphere sits on the DIP joint; the fingertip sphere touches the tip joint
    np.testing.assert_allclose(prims[PRIMITIVE_LAYOUT.index("index_dip_sphere"), :3, 3], j[Joint.INDEX_DIP])
    tip = prims[PRIMITIVE_LAYOUT.index("middle_tip_sphere")]
    radius = np.linalg.norm(tip[:3, 0])
    assert np.linalg.norm(tip[:3, 3] - j[Joint.MIDDLE_TIP]) == pytest.approx(radius)


def test_finger_crossing_penalty():
    p = np.tile(HandPose.canonical("spread").to_array(), (2, 1))
    assert finger_crossing_penalty(p)[0] == 0.0
    p[1, 12], p[1, 16] = -0.1, 0.15  # index turned toward the pinky past the middle finger
    assert finger_crossing_penalty(p)[1] == pytest.approx(0.25)  # only index/middle cross, by 0.25 rad


def test_geometry_file_reproduces_from_libhand():
    from synth.libhand import calibrate_geometry

    stored = HandGeometry.load(GEOMETRY_PATH).to_dict()
    fresh = calibrate_geometry(size_factors=stored["size_factors"]).to_dict()
    for key, value in stored.items():
        np.testing.assert_allclose(np.asarray(fresh[key]), np.asarray(value), atol=1e-6, err_msg=key)


def test_geometry_file_errors(tmp_path):
    bad = tmp_path / "g.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="g.json"):
        HandGeometry.load(bad)
    d = default_geometry().to_dict()
    d["lengths_mm"] = d["lengths_mm"][:4]
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="lengths_mm"):
        HandGeometry.load(bad)


# ---- LibHand mesh ------------------------------------------------------------------------------
def test_lbs_at_rest_is_the_rest_mesh(libhand):
    g = libhand.hand.geometry
    p = np.zeros(27)
    p[3] = 1.0
    p[7:] = g.rest_angles_rad.ravel()
    posed = libhand.pose(p)
    np.testing.assert_allclose(posed.vertices, libhand.rest_vertices, atol=1e-6)
    np.testing.assert_allclose(posed.normals, libhand.rest_normals, atol=1e-6)


def test_lbs_kernel_matches_numpy_twin(libhand):
    p = random_poses(1, 6)[0]
    posed = libhand.pose(p)
    M = libhand.skinning_matrices(p)
    dense = np.zeros_like(libhand.weights)
    np.put_along_axis(dense, libhand._bone_index, libhand._bone_weight, axis=1)
    np.testing.assert_allclose(posed.vertices, naive_hand.linear_blend_skinning(dense, M, libhand.rest_vertices),
                               atol=1e-6)


def test_a_bent_wrist_turns_the_forearm_alone(libhand):
    """``wrist_rad``: the forearm's skin past the blend turns about the wrist joint, about the
    hand's x axis for flexion alone; the hand's skin away from the wrist and the joints stay."""
    from scipy.spatial.transform import Rotation

    from synth.libhand import FOREARM_LABEL

    p = random_poses(1, 11)[0]
    straight, bent = libhand.pose(p), libhand.pose(p, wrist_rad=(0.6, 0.0))
    np.testing.assert_allclose(bent.joints, straight.joints, atol=1e-9)
    np.testing.assert_array_equal(libhand.pose(p, wrist_rad=(0.0, 0.0)).vertices, straight.vertices)
    wrist_y = libhand.hand.geometry.wrist_mm[1]
    y = libhand.rest_vertices[:, 1]
    hand_far = (y < wrist_y - 15) & (libhand.labels != FOREARM_LABEL)
    np.testing.assert_allclose(bent.vertices[hand_far], straight.vertices[hand_far], atol=1e-6)
    arm = (y > wrist_y + 30) & (libhand.labels == FOREARM_LABEL)
    assert arm.sum() > 100
    x_axis = quaternion_to_matrix(p[3:7])[:, 0]
    w = straight.joints[0]
    turned = Rotation.from_rotvec(0.6 * x_axis).apply(straight.vertices[arm] - w) + w
    np.testing.assert_allclose(bent.vertices[arm], turned, atol=1e-6)
    moved = np.linalg.norm(bent.vertices[arm] - straight.vertices[arm], axis=1)
    assert moved.max() > 100  # the far end of the forearm swings a long way
    with pytest.raises(ValueError, match="wrist_rad"):
        libhand.pose(p, wrist_rad=(0.1, 0.2, 0.3))


def test_libhand_and_primitive_joints_agree(libhand):
    """Same parameters, same 21 joints: LibHand's are measured on the skinned mesh (bone heads
    moved by their skinning transforms, fingertips = mean of skinned tip vertices)."""
    params = random_poses(100, 7)
    prim = HandModel().joints(params)
    dist = np.array([np.linalg.norm(libhand.pose(p).joints - j, axis=1).mean() for p, j in zip(params, prim)])
    assert dist.mean() <= 3.0


def test_mesh_follows_the_skeleton(libhand):
    """Independent of how joints are defined: the skinned mesh surrounds each posed finger
    segment (vertices of each phalanx stay within its radius band around the bone axis)."""
    params = random_poses(10, 8)
    model = HandModel()
    for p in params:
        posed = libhand.pose(p)
        j = model.joints(p)[0]
        a, b = j[Joint.INDEX_PIP], j[Joint.INDEX_DIP]
        mid = 0.5 * (a + b)
        d = (b - a) / np.linalg.norm(b - a)
        rel = posed.vertices - mid
        along = rel @ d
        radial = np.linalg.norm(rel - np.outer(along, d), axis=1)
        ring = (np.abs(along) < 2.0) & (radial < 20.0)
        assert ring.sum() > 20
        assert 5.0 < np.median(radial[ring]) < 13.0


def test_left_libhand_is_the_mirror_image():
    from synth.libhand import LibHandModel

    pose = HandPose.from_array(random_poses(1, 9)[0])
    right = LibHandModel("right").pose(pose.to_array())
    left = LibHandModel("left").pose(pose.mirrored().to_array())
    np.testing.assert_allclose(left.vertices, right.vertices * [-1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(left.joints, right.joints * [-1, 1, 1], atol=1e-6)
    np.testing.assert_allclose(left.normals, right.normals * [-1, 1, 1], atol=1e-6)  # still outward


def test_both_models_occupy_the_same_volume(gl_context, libhand):
    """Rendered from the same camera, the LibHand hand (forearm excluded) and the 37 primitives
    have nearly the same silhouette and surface depth."""
    from handrgbd import CameraIntrinsics
    from renderer import HypothesisRenderer, Mesh, MeshRenderer, RegionOfInterest

    camera = CameraIntrinsics(500.0, 500.0, 159.5, 119.5, 320, 240)
    roi = RegionOfInterest(0, -40, 320, 280)  # square, 1 tile pixel = 1 image pixel
    poses = [HandPose.canonical(n, orientation=(0.968, 0.126, 0.213, -0.028)).to_array()
             for n in ("open", "fist", "point")]
    random = random_poses(3, 11)
    random[:, :3] = (0.0, 0.0, 600.0)
    model = HandModel()
    ious, depth_diffs = [], []
    with MeshRenderer(context=gl_context) as mesh_r, \
            HypothesisRenderer(model.primitive_set, 320, 1, context=gl_context) as prim_r:
        for p in poses + list(random):
            posed = libhand.pose(p)
            hand = mesh_r.upload(Mesh(posed.vertices, libhand.hand_faces, label=1))
            arm = mesh_r.upload(Mesh(posed.vertices, libhand.forearm_faces, label=2))
            out = mesh_r.render([(hand, np.eye(4)), (arm, np.eye(4))], camera)
            mesh_r.remove(hand)
            mesh_r.remove(arm)
            labels, depth = roi.sample(out.labels, 320), roi.sample(out.depth_mm, 320)
            prim = prim_r.render(model.primitives(p), camera, roi)[0]
            m_hand, m_prim = labels == 1, (prim > 0) & (labels != 2)
            iou = (m_hand & m_prim).sum() / (m_hand | m_prim).sum()
            both = m_hand & m_prim
            ious.append(iou)
            depth_diffs.append(np.median(np.abs(depth[both] - prim[both])))
            assert abs(m_prim.sum() / m_hand.sum() - 1) < 0.15
    # measured on 35 poses: IoU 0.82-0.91, median |depth difference| 2-4.5 mm (one pose 7.7 mm)
    assert min(ious) >= 0.78
    assert np.median(depth_diffs) < 4.0 and max(depth_diffs) < 10.0


def test_size_refinement_lowers_the_objective_at_the_true_pose(gl_context):
    """The stored size factors fit the mesh better than the raw measurement, on poses other than
    the ones they were fitted on."""
    from synth.libhand import apply_size_factors, calibrate_geometry, size_fit_loss

    stored = HandGeometry.load(GEOMETRY_PATH)
    measured = calibrate_geometry()
    assert np.all((stored.size_factors >= 0.6) & (stored.size_factors <= 1.6))
    np.testing.assert_allclose(apply_size_factors(measured, stored.size_factors).radii_mm, stored.radii_mm)
    loss = size_fit_loss(measured, num_poses=8, seed=123, context=gl_context)
    assert loss(stored.size_factors) < 0.97 * loss(np.ones(26))


def test_the_forearm_is_a_cone_from_the_palm_heel_away_from_the_fingers():
    """``HandModel(forearm=True)``: the hand's 37 primitives unchanged, then one cone whose axis
    starts at the palm's heel and runs FOREARM_LENGTH_MM (scaled) away from the fingers, as
    wide as FOREARM_WIDTH of the palm; joints unchanged (the forearm is no joint)."""
    from tracker._kernels import FOREARM_LENGTH_MM, FOREARM_WIDTH

    rng = np.random.default_rng(2)
    pose = HandPose.canonical("open", position_mm=(10.0, -20.0, 500.0)).to_array()
    pose[3:7] = rng.normal(size=4)
    pose[3:7] /= np.linalg.norm(pose[3:7])
    for side in ("right", "left"):
        plain, with_arm = HandModel(side, 200.0), HandModel(side, 200.0, forearm=True)
        assert len(with_arm.primitive_set) == 38 and with_arm.primitive_set.kinds[37] == PrimitiveKind.CONE
        P, Q = plain.primitives(pose)[0], with_arm.primitives(pose)[0]
        assert np.array_equal(P, Q[:37]) and np.array_equal(plain.joints(pose), with_arm.joints(pose))
        j = with_arm.joints(pose)[0]
        fingers = (j[9] - j[0]) / np.linalg.norm(j[9] - j[0])  # wrist -> middle knuckle
        axis = Q[37, :3, 2]
        s = 200.0 / 180.0
        assert np.linalg.norm(axis) == pytest.approx(FOREARM_LENGTH_MM * s)
        assert axis @ fingers / np.linalg.norm(axis) < -0.9  # away from the fingers
        g = with_arm.geometry
        assert np.linalg.norm(Q[37, :3, 0]) == pytest.approx(FOREARM_WIDTH * g.palm_half_width_mm * s)
