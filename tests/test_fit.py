"""The hand model fitted to joints (tracker.fit, handrgbd fit-poses, --init gt from joints.npy alone)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from handrgbd import Recording
from tracker import HandModel, HandPose
from tracker.fit import fit_pose

DATA = "data/embedded/test_sequence"


@pytest.mark.parametrize("side, length, name", [("right", 165.0, "pinch"), ("left", 195.0, "point")])
def test_recovers_side_length_and_joints_of_a_known_pose(side, length, name):
    q = np.array([0.8, 0.3, -0.4, 0.33])
    truth = HandPose.canonical(name, position_mm=(30.0, -20.0, 480.0), orientation=q / np.linalg.norm(q),
                               side=side).to_array()
    joints = HandModel(side, length).joints(truth)[0]
    fit = fit_pose(joints)
    assert fit.side == side and fit.hand_length_mm == pytest.approx(length, abs=0.5)
    assert fit.residual_mm < 0.5 and fit.max_mm < 1.5
    np.testing.assert_allclose(HandModel(side, fit.hand_length_mm).joints(fit.params)[0], joints, atol=1.5)
    # 3 mm of noise on every coordinate: still the side, the length within a few mm
    noisy = joints + np.random.default_rng(0).normal(0, 3.0, joints.shape)
    rough = fit_pose(noisy)
    assert rough.side == side and abs(rough.hand_length_mm - length) < 8 and 2.0 < rough.residual_mm < 6.0
    # missing joints (NaN rows, as real data sets have them): fitted to the rest
    gaps = joints.copy()
    gaps[[4, 8, 13, 20]] = np.nan
    partial = fit_pose(gaps)
    assert partial.side == side and partial.residual_mm < 0.5
    np.testing.assert_allclose(partial.joints_mm[[3, 7, 19]], joints[[3, 7, 19]], atol=2.0)


def test_bad_joints():
    with pytest.raises(ValueError, match=r"\(21, 3\)"):
        fit_pose(np.zeros((20, 3)))
    j = np.ones((21, 3))
    j[5:] = np.nan
    with pytest.raises(ValueError, match="only 5 of 21 joints given"):
        fit_pose(j)
    with pytest.raises(ValueError, match="not a hand in millimetres"):
        fit_pose(np.random.default_rng(0).random((21, 3)) * 0.2)  # metres, not mm


def test_fit_poses_command_and_init_gt_from_joints_alone(tmp_path, capsys):
    """A copy of the embedded sequence without poses.npy: fit-poses writes one that reproduces the
    joints; track --init gt and the study start from the fit."""
    from handrgbd.cli import main
    from tracker.run import truth_start

    rec_dir = tmp_path / "seq"
    shutil.copytree(DATA, rec_dir)
    (rec_dir / "poses.npy").unlink()
    rec = Recording(rec_dir)
    start, side, length = truth_start(rec)
    assert side == "left" and np.linalg.norm(HandModel(side, length).joints(start)[0] - rec.joints_mm[0], axis=1).mean() < 0.5
    assert main(["track", str(rec_dir), "--out", str(tmp_path / "t"), "--init", "gt", "--frames", "3",
                 "--particles", "16", "--generations", "8", "--backend", "cpu", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["frames"] == 3 and res["mpjpe_mm"] < 25 and res["sides"] == {"right": 0, "left": 3}

    assert main(["fit-poses", str(rec_dir), "--json", "--no-progress"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == 32 and out["side"] == "left" and out["residual_mm_max"] < 0.5
    poses = np.load(rec_dir / "poses.npy")
    assert poses.shape == (32, 27) and poses.dtype == np.float32
    model = HandModel("left", out["hand_length_mm"])
    assert np.linalg.norm(model.joints(poses.astype(np.float64)) - rec.joints_mm, axis=2).mean() < 0.5
    assert main(["fit-poses", str(rec_dir)]) == 2  # poses.npy exists now
    err = capsys.readouterr().err
    assert "handrgbd fit-poses: error: poses.npy" in err and "--overwrite" in err
    (rec_dir / "poses.npy").unlink()
    (rec_dir / "joints.npy").unlink()
    assert main(["fit-poses", str(rec_dir)]) == 2  # a recording without joints.npy: a clear error
    assert "needs joints.npy" in capsys.readouterr().err


def test_a_noisy_sequence_keeps_one_side_and_length():
    """Noise pushes some frames past the restart threshold; side and length stay frame 0's."""
    from tracker.fit import fit_recording

    rec = Recording(DATA)

    class Noisy:  # the recording's joints with 4 mm of noise per coordinate
        path, names, has_joints = rec.path, rec.names[:8], True
        joints_mm = rec.joints_mm[:8] + np.random.default_rng(1).normal(0, 4.0, rec.joints_mm[:8].shape)

        def __len__(self):
            return 8

    fits = fit_recording(Noisy())
    assert {f.side for f in fits} == {"left"} and len({f.hand_length_mm for f in fits}) == 1
    assert all(f.residual_mm < 8 for f in fits)
