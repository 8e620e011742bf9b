"""Hard synthetic scenarios (``synth --scenario``): what each one promises, checked on plans and renders."""

from __future__ import annotations

import numpy as np
import pytest

from handrgbd.recording import Recording
from synth.generator import FrameRenderer, SynthConfig, generate, make_plans
from synth.scenarios import SCENARIO_CHOICES, SCENARIOS, UPPER_ARM_MM
from tracker.kinematics import HandModel
from tracker.pose import quaternion_to_matrix
from tracker.tracking import depth_foreground

MEAN = np.array([0.6, 0.45, 0.35])  # a texture mean: plans need one for the skin's colour


def _sequence(scenario: str, seed: int = 2, frames: int = 30, **kw):
    return make_plans(SynthConfig(size=96, sequence=True, split="test", scenario=scenario, **kw), seed, frames)


def test_bad_scenarios_list_the_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="valid: plain, forearm, object, egocentric, left, crops, wrist, all"):
        SynthConfig(scenario="kitchen")
    with pytest.raises(ValueError, match="crops.*full-frame"):
        SynthConfig(scenario="crops", full_frame=True)
    from synth.generator import synth_main

    with pytest.raises(SystemExit):
        synth_main(["--out", str(tmp_path / "x"), "--frames", "1", "--scenario", "kitchen"])


def test_plain_plans_do_not_change_with_scenarios():
    """plain draws nothing from the scenario stream: the embedded sequence, rendered before
    scenarios existed, is still what its recipe plans (``data/embedded/README.md``)."""
    from pathlib import Path

    embedded = Path(__file__).resolve().parents[1] / "data" / "embedded" / "test_sequence"
    plans = make_plans(SynthConfig(sequence=True, split="test"), 7, 32)
    np.testing.assert_allclose(np.stack([p.params for p in plans]), np.load(embedded / "poses.npy"), atol=1e-4)
    assert plans[0].camera == Recording(embedded).camera and {p.scenario for p in plans} == {"plain"}
    assert "scenario" not in SynthConfig().to_json() and SynthConfig(scenario="left").to_json()["scenario"] == "left"


def test_left_scenario_is_left_hands_only():
    assert {p.side for p in make_plans(SynthConfig(size=96, scenario="left"), 1, 20)} == {"left"}
    assert {p.side for p in _sequence("left")} == {"left"}


def test_held_object_sits_in_the_palm_and_the_fingers_close():
    for seed in range(4):
        plans = _sequence("object", seed=seed, frames=25)
        for p in plans[::8]:
            held = p.props[-1]
            assert held.kind in ("cylinder", "box", "sphere")
            R = quaternion_to_matrix(p.params[3:7])
            local = R.T @ (held.pose[:3, 3] - p.params[:3])  # the object's centre in the hand frame
            assert local[2] < -20 and np.linalg.norm(local) < 80  # on the palm side (hand -z), near the palm
            angles = p.params[7:].reshape(5, 4)
            assert angles[1:, 0].mean() > 0.3 and angles[1:, 2].mean() > 0.35  # MCP and PIP flexed round it
        # it moves with the hand: the same place in the hand frame in every frame
        first = [quaternion_to_matrix(q.params[3:7]).T @ (q.props[-1].pose[:3, 3] - q.params[:3]) for q in plans]
        np.testing.assert_allclose(first, np.repeat(first[:1], len(first), 0), atol=1e-6)


def test_egocentric_hand_is_near_over_a_table_with_the_arm_from_below():
    for seed in range(4):
        plans = _sequence("egocentric", seed=seed)
        tables = [q for q in plans[0].props if q.kind == "table"]
        assert len(tables) == 1  # the scenario's own (plain tables are off)
        table = tables[0]
        near = [q for q in plans[0].props if q.kind != "table" and np.linalg.norm(q.pose[:3, 3] - table.pose[:3, 3]) < 500]
        assert near  # something stands on it near the hand
        up = table.pose[:3, 1] / np.linalg.norm(table.pose[:3, 1])
        for p in plans:
            assert 250 <= p.params[2] <= 500
            assert (p.params[:3] - table.pose[:3, 3]) @ up > 0  # the hand is above the table
            arm = quaternion_to_matrix(p.params[3:7])[:, 1]  # hand +y: toward the elbow
            assert arm[2] < -0.2 and arm[1] > -0.3  # back toward the camera, not up the image


def test_forearm_and_egocentric_crops_show_the_arm():
    for scenario in ("forearm", "egocentric"):
        p = _sequence(scenario)[0]
        m = np.eye(4)
        m[:3, :3] = quaternion_to_matrix(p.params[3:7]) * p.hand_length_mm / 180.0
        m[:3, 3] = p.params[:3]
        uv = p.camera.project((m @ [0.0, 150.0, 0.0, 1.0])[:3][None])[0]  # 150 mm up the forearm
        assert 0 <= uv[0] < p.camera.width and 0 <= uv[1] < p.camera.height
    plans = _sequence("forearm")
    lengths = [2 * np.linalg.norm(p.props[-1].pose[:3, 2]) * 180.0 / p.hand_length_mm for p in plans]
    assert plans[0].props[-1].kind == "cylinder"
    np.testing.assert_allclose(lengths, UPPER_ARM_MM)  # a rigid upper arm, whatever the hand does


def test_wrist_bends_the_forearm_and_the_upper_arm_follows():
    """``wrist``: one bend per sequence within its ranges; the elbow, where the upper arm starts,
    turned about the wrist joint by it (the same distance from the wrist, off the palm's axis by
    the bend's angle); ``forearm`` keeps the wrist straight."""
    from synth.libhand import wrist_bend
    from tracker.hand_geometry import default_geometry

    assert all(p.wrist_rad is None for p in _sequence("forearm"))
    for seed in range(4):
        plans = _sequence("wrist", seed=seed)
        bend = plans[0].wrist_rad
        assert all(np.array_equal(p.wrist_rad, bend) for p in plans)
        assert np.radians(20) <= abs(bend[0]) <= np.radians(50) and abs(bend[1]) <= 0.3
        p = plans[5]
        R = quaternion_to_matrix(p.params[3:7])
        s = p.hand_length_mm / 180.0
        wrist = HandModel(p.side, p.hand_length_mm).joints(p.params)[0][0]
        arm = p.props[-1]
        assert arm.kind == "cylinder"
        elbow = arm.pose[:3, 3] - arm.pose[:3, 2]  # the upper arm's cylinder starts at the elbow
        straight = R @ (np.array([0.0, 320.0, 20.0]) * s) + p.params[:3]
        np.testing.assert_allclose(np.linalg.norm(elbow - wrist), np.linalg.norm(straight - wrist), rtol=1e-9)
        cos = (elbow - wrist) @ (straight - wrist) / np.linalg.norm(elbow - wrist) ** 2
        turned = wrist_bend(bend, default_geometry().wrist_mm)[:, :3]  # the bend's rotation
        straight_local = np.array([0.0, 320.0, 20.0]) - default_geometry().wrist_mm
        expected = turned @ straight_local
        np.testing.assert_allclose(cos, expected @ straight_local / np.linalg.norm(straight_local) ** 2, atol=1e-9)
        assert cos < np.cos(np.radians(15))  # off the straight line by at least the flexion's share


def test_crops_follow_the_hand_with_per_frame_intrinsics(tmp_path):
    plans = _sequence("crops", frames=40)
    assert len({p.camera for p in plans}) == len(plans)
    for p in plans:
        uv = p.camera.project(HandModel(p.side, p.hand_length_mm).joints(p.params)[0])
        assert (uv >= 0).all() and (uv[:, 0] < p.camera.width).all() and (uv[:, 1] < p.camera.height).all()
    out = tmp_path / "crops"
    generate(out, 3, seed=2, config=SynthConfig(size=64, sequence=True, split="test", scenario="crops"), progress=False)
    rec = Recording(out)
    assert rec[0].camera != rec[2].camera  # intrinsics.npy gives each frame its own
    np.testing.assert_allclose([rec[i].camera.fx for i in range(3)], [p.camera.fx for p in make_plans(
        SynthConfig(size=64, sequence=True, split="test", scenario="crops"), 2, 3)])


def test_all_mixes_the_scenarios():
    seen = {p.scenario for p in make_plans(SynthConfig(size=96, scenario="all"), 5, 40)}
    assert seen <= set(SCENARIOS) and len(seen) >= 4
    full = {p.scenario for p in make_plans(SynthConfig(size=96, scenario="all", full_frame=True), 5, 40)}
    assert "crops" not in full and len(full) >= 3
    assert {s for s in SCENARIO_CHOICES} == {"plain", "all", *SCENARIOS}


@pytest.mark.parametrize("scenario", ["forearm", "wrist", "object", "egocentric"])
def test_the_paper_foreground_keeps_what_the_mask_leaves_out(scenario, gl_context):
    """Arm, held object and table lie within eq. 1's 300 mm but are not hand in mask/: the cases
    where a foreground rule takes more than the hand."""
    plans = _sequence(scenario, frames=2)
    config = SynthConfig(size=96, sequence=True, split="test", scenario=scenario)
    with FrameRenderer(config, context=gl_context) as r:
        _, depth, depth_gt, mask = r.render(plans[0], np.random.default_rng(0))
    fg = depth_foreground(depth_gt)
    assert mask.sum() > 30 and (mask & ~fg).sum() < 0.05 * mask.sum()
    assert (fg & ~mask).sum() > 0.3 * mask.sum()
    if scenario == "egocentric":  # a short-range sensor: the near hand has readings
        assert (depth[mask] > 0).mean() > 0.8
