"""The real-pose prior: Intel's 69 poses, the direction fit that transfers them, and the sampler."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synth.intel_poses import (ANGLES_FILE, BONES, bone_directions, fit_pose, intel_joints, load_intel_poses,
                               real_pose_angles)
from synth.poses import sample_angles
from tracker.kinematics import HandModel
from tracker.pose import LIMITS


@pytest.fixture(scope="module")
def source():
    positions, rotations = load_intel_poses()
    return positions, rotations, intel_joints(positions, rotations)


def test_source_file_loads(source):
    positions, rotations, joints = source
    assert positions.shape == (69, 17, 3) and rotations.shape == (69, 17, 3, 3)
    np.testing.assert_allclose(rotations @ np.swapaxes(rotations, -1, -2), np.broadcast_to(np.eye(3), rotations.shape),
                               atol=1e-5)
    # a hand about 45 cm from an SR300, and bodies point along their +z at their child's origin
    assert 300 < np.median(positions[..., 2]) < 600
    along = positions[:, 6] - positions[:, 5]
    along /= np.linalg.norm(along, axis=-1, keepdims=True)
    assert np.mean(np.sum(rotations[:, 5, :, 2] * along, -1)) > 0.95
    finger = np.linalg.norm(np.diff(joints[:, 9:13], axis=1), axis=-1).sum(1)  # middle: MCP -> tip
    assert np.all((60 < finger) & (finger < 110))  # the tracker lets joints stretch a little


def test_fit_recovers_a_known_pose_of_our_own_model():
    model = HandModel("right", 180.0)
    rng = np.random.default_rng(3)
    angles = rng.uniform(LIMITS[..., 0] + 0.1, LIMITS[..., 1] - 0.1)
    q = rng.normal(size=4)
    truth = np.concatenate([[10.0, -20.0, 450.0], q / np.linalg.norm(q), angles.ravel()])
    params, rms = fit_pose(model.joints(truth)[0], HandModel("right"))
    assert rms < 0.05
    np.testing.assert_allclose(params[7:], truth[7:], atol=2e-3)


def test_shipped_angles_are_what_the_fit_gives(source):
    stored = json.loads(ANGLES_FILE.read_text())
    assert len(stored["angles_rad"]) == 69
    model = HandModel("right")
    for i in (0, 30, 68):
        params, rms = fit_pose(source[2][i], model)
        np.testing.assert_allclose(params[7:].reshape(5, 4), stored["angles_rad"][i], atol=2e-3)
        assert rms == pytest.approx(stored["rms_residual_deg"][i], abs=0.05)
        # the finger bones point where the real hand's did (independent of our fit's internals)
        fitted = bone_directions(model.joints(params)[0])
        finger = [k for k, (a, _) in enumerate(BONES) if a != 0]
        cos = np.sum(fitted[finger] * bone_directions(source[2][i])[finger], -1)
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 30
        assert rms < 12
    assert max(stored["rms_residual_deg"]) < 12


def test_bad_pose_file_names_the_line(tmp_path):
    bad = tmp_path / "x.pose"
    bad.write_text("0 0 0 0 0 0 1\n")
    with pytest.raises(ValueError, match="x.pose:1: expected 119"):
        load_intel_poses(bad)
    bad.write_text("a b c\n")
    with pytest.raises(ValueError, match="x.pose:1: not a list of numbers"):
        load_intel_poses(bad)


def test_prior_draws_real_poses_only_when_asked():
    real = real_pose_angles()
    assert real.shape == (69, 5, 4)
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = sample_angles(rng, real_fraction=1.0)
        assert np.all((a >= LIMITS[..., 0]) & (a <= LIMITS[..., 1]))
        # jitter is 0.08 rad per angle: the nearest real pose is within a few sigma
        assert np.sqrt(((real - a) ** 2).mean(axis=(1, 2))).min() < 0.2
    # real_fraction 0 keeps the older prior's random stream (the v1 weights' data reproduces):
    # sums of six draws made by the prior before real poses were added (git d65aa27)
    rng = np.random.default_rng(5)
    sums = [sample_angles(rng, 0.0).sum() for _ in range(6)]
    np.testing.assert_allclose(sums, [8.7556731391, 12.5974166594, 0.1435775762, 8.2162001419, 3.8802427945,
                                      8.4513043596], atol=1e-8)
    with pytest.raises(ValueError, match="real_fraction"):
        sample_angles(rng, 1.5)


def test_the_trackers_pose_prior_is_what_the_command_writes(tmp_path):
    """tracker/data/pose_prior.json holds the shipped real poses' finger-angle means and spreads
    (at least 5 degrees), as `python -m synth.intel_poses --prior-only` writes them."""
    import json

    from synth.intel_poses import PRIOR_FILE, main, pose_prior_doc
    from tracker.objective import load_pose_prior

    real = real_pose_angles()
    out = tmp_path / "prior.json"
    assert main(["--prior-only", "--prior-out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads(PRIOR_FILE.read_text()) == pose_prior_doc(real)
    prior = load_pose_prior(2.0)
    np.testing.assert_allclose(prior.mean, real.reshape(len(real), 20).mean(0), atol=1e-5)
    np.testing.assert_allclose(1.0 / prior.inv_std, np.maximum(real.reshape(len(real), 20).std(0), np.radians(5)),
                               atol=1e-5)
    assert prior.lam == 2.0
