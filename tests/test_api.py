"""The Python API (handrgbd.HandTracker): the docs' example as written, both routes, bad input."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from handrgbd import HandTracker, Recording

DOC = Path(__file__).resolve().parents[1] / "docs" / "api.md"
DATA = "data/embedded/test_sequence"


def test_the_docs_example_runs(capsys, monkeypatch):
    monkeypatch.chdir(DOC.parents[1])
    block = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)[0]
    assert len(block.strip().splitlines()) <= 10
    exec(compile(block, "docs/api.md", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all(line.startswith("left [") for line in lines)


def test_rgb_and_rgbd_routes_against_truth():
    """Frames 0-7 of the embedded sequence (a left hand) with its intrinsics, from an automatic
    start: mean joint error at frame 7 11-26 mm RGB only over tracker seeds 0-5 (19 at seed 0;
    the distance comes from the silhouette and the keypoints), under 10 mm RGB-D; the bounds leave
    room for the PSO's randomness, not for a wrong hand. (At frame 3 the RGB-only fit can still
    sit past the tracker's loss threshold, confidence 0, while it converges.)"""
    rec = Recording(DATA)
    for depth, bound in ((False, 45.0), (True, 25.0)):
        with HandTracker(camera=rec.camera, side="left") as t:
            for i in range(8):
                r = t.process(rec[i].rgb, rec[i].depth_mm if depth else None)
            assert r.status == "tracked" and r.side == "left" and 0.0 < r.confidence <= 1.0
            assert np.linalg.norm(r.joints_mm - rec.joints_mm[7], axis=1).mean() < bound
            np.testing.assert_allclose(r.joints_px, rec.camera.project(r.joints_mm))
            assert r.mask.shape == r.depth_mm.shape == (rec.camera.height, rec.camera.width) and r.mask.any()
            assert (r.depth_mm[~r.mask] == 0).all() and (r.depth_mm[r.mask] > 0).all() and r.params.shape == (27,)
            other = (rec[4].rgb,) if depth else (rec[4].rgb, rec[4].depth_mm)
            with pytest.raises(ValueError, match="another HandTracker"):
                t.process(*other)
            t.reset()
        with pytest.raises(ValueError, match="closed"):
            t.process(rec[0].rgb)


def test_no_hand_and_bad_frames():
    with HandTracker() as t:
        r = t.process(np.zeros((120, 160, 3), np.uint8))
        assert r.status == "no_hand" and r.joints_mm is None and r.confidence == 0.0 and r.side is None
        assert t.camera.size == (160, 120) and t.camera.fx == pytest.approx(80 / np.tan(np.radians(30)))
        with pytest.raises(ValueError, match="frame is 80x60 but the camera is 160x120"):
            t.process(np.zeros((60, 80, 3), np.uint8))
        with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8"):
            t.process(np.zeros((120, 160), np.uint8))
    for kwargs, message in (({"side": "up"}, "side"), ({"hfov_deg": 190.0}, "field of view"),
                            ({"particles": 0}, "PSO budget"), ({"camera": "webcam"}, "CameraIntrinsics")):
        with pytest.raises(ValueError, match=message):
            HandTracker(**kwargs)


def test_a_failing_first_frame_decides_no_route():
    rec = Recording(DATA)
    with HandTracker(camera=rec.camera) as t:
        with pytest.raises(ValueError, match="float millimetres"):  # raw sensor units refused, with the hint
            t.process(rec[0].rgb, np.zeros((rec.camera.height, rec.camera.width), np.uint16))
        assert t.process(rec[0].rgb).status in ("tracked", "lost", "no_hand")  # RGB only is still open
    with pytest.raises(ValueError, match="seed"):
        HandTracker(seed=-3)


def test_a_route_that_cannot_start_says_why(tmp_path):
    """Weights that cannot be read fail the first frame with their own error (naming the file),
    not with one about the route that was never made; the other route stays open."""
    rec = Recording(DATA)
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint")
    with HandTracker(camera=rec.camera, weights=str(bad)) as t:
        with pytest.raises(ValueError, match="weights.pt"):
            t.process(rec[0].rgb)
        assert t.process(rec[0].rgb, rec[0].depth_mm).status in ("tracked", "lost", "no_hand")
