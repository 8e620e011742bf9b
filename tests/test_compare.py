"""Comparing depth sources: files with finite numbers, clean depth beats heavily degraded depth."""

from __future__ import annotations

import json

import numpy as np
import pytest

from experiments.compare_depth_sources import DEFAULT_DATA, Observation, PROVIDERS, compare, format_table, make_provider


def test_two_sources_one_tracker(tmp_path):
    table = compare([DEFAULT_DATA], ["clean", "degraded:30:0.6"], ["pso:24x8:cpu", "mediapipe"], tmp_path,
                    progress=False)
    rows = json.loads((tmp_path / "comparison.json").read_text())
    assert (tmp_path / "comparison.csv").exists() and (tmp_path / "pck.png").exists()
    pso = {r["source"]: r for r in rows if r["tracker"] == "pso:24x8:cpu"}
    for r in pso.values():
        for k in ("mpjpe_mm", "rr_mpjpe_mm", "pa_mpjpe_mm", "pck_auc_0_50", "lost_fraction", "fps"):
            assert r[k] is not None and np.isfinite(r[k]), k
    assert pso["clean"]["mpjpe_mm"] < pso["degraded:30:0.6"]["mpjpe_mm"]
    mp_row = next(r for r in rows if r["tracker"] == "mediapipe")
    try:
        import mediapipe  # noqa: F401
        assert mp_row["pa_mpjpe_mm"] is not None
    except ImportError:
        assert "pip install" in mp_row["error"]
    assert "mediapipe" in format_table(table)
    # a second run reuses every finished row
    again = compare([DEFAULT_DATA], ["clean", "degraded:30:0.6"], ["pso:24x8:cpu", "mediapipe"], tmp_path, progress=False)
    assert [r.get("mpjpe_mm") for r in again] == [r.get("mpjpe_mm") for r in table]


def test_custom_provider_in_a_few_lines(tmp_path, monkeypatch):
    def blurred(frame, state):
        import cv2

        return Observation(cv2.medianBlur(frame.depth_mm, 5))

    monkeypatch.setitem(PROVIDERS, "median5", lambda: blurred)
    (row,) = compare([DEFAULT_DATA], ["median5"], ["pso:16x5:cpu"], tmp_path, progress=False)
    assert row["source"] == "median5" and np.isfinite(row["mpjpe_mm"])
    with pytest.raises(ValueError, match="unknown depth source"):
        make_provider("lidar")


def test_changed_weights_are_not_reused(tmp_path, monkeypatch):
    """A depthnet row cached with one weights file is re-run when that file changes."""
    import shutil

    import experiments.compare_depth_sources as cds
    from depthnet.model import pretrained_path

    ran = []

    def fake_run_row(row):
        ran.append(row)
        return {"data": row.data, "source": row.source, "tracker": row.tracker, "frames": 1, "mpjpe_mm": 1.0}

    monkeypatch.setattr(cds, "run_row", fake_run_row)
    weights = tmp_path / "w.pt"
    shutil.copy(pretrained_path(), weights)
    sources, out = [f"depthnet:{weights}", "clean"], tmp_path / "cmp"
    compare([DEFAULT_DATA], sources, ["pso:8x2:cpu"], out, progress=False)
    compare([DEFAULT_DATA], sources, ["pso:8x2:cpu"], out, progress=False)
    assert [r.source for r in ran] == sources  # the second run reused both rows
    weights.write_bytes(weights.read_bytes() + b"\0")  # same path, other bytes
    compare([DEFAULT_DATA], sources, ["pso:8x2:cpu"], out, progress=False)
    assert [r.source for r in ran] == [*sources, sources[0]]  # only the depthnet row ran again
    with pytest.raises(ValueError, match="not found"):
        compare([DEFAULT_DATA], [f"depthnet:{tmp_path / 'missing.pt'}"], ["pso:8x2:cpu"], out, progress=False)


def test_pooled_rows_equal_the_metrics_over_all_frames_together():
    """Pooling per-row values (weighted by scored frames) = computing the metrics on every frame at once."""
    from experiments.compare_depth_sources import _metrics, pooled
    from tracker.metrics import auc, mpjpe, pa_mpjpe, pck_curve, root_relative_mpjpe

    rng = np.random.default_rng(3)
    gts = [rng.normal(0, 50, (n, 21, 3)) for n in (5, 12)]
    preds = [g + rng.normal(0, s, g.shape) for g, s in zip(gts, (4.0, 15.0))]
    preds[1][3] = np.nan  # one frame without joints
    gts[1][7] = np.nan  # one frame without ground truth
    table = []
    for i, (p, g, seconds) in enumerate(zip(preds, gts, (0.5, 3.0))):
        m = _metrics(p, g, ["tracked"] * (len(g) - 2) + ["lost"] * 2, seconds)
        table.append({"data": f"seq{i}", "source": "s", "tracker": "t", "seed": 0, "frames": len(g), **m})
    table.append({"data": "seq9", "source": "s", "tracker": "t", "seed": 0, "frames": 7, "error": "boom"})
    table.append({"data": "seq0", "source": "other", "tracker": "t", "seed": 0, "frames": 5, **_metrics(
        preds[0], gts[0], ["tracked"] * 5, 1.0)})
    (p,) = [r for r in pooled(table) if r["source"] == "s"]
    P, G = np.concatenate(preds), np.concatenate(gts)
    assert p["rows"] == 2 and p["frames"] == 17 and p["scored_frames"] == 15
    assert p["mpjpe_mm"] == pytest.approx(mpjpe(P, G))
    assert p["rr_mpjpe_mm"] == pytest.approx(root_relative_mpjpe(P, G))
    assert p["pa_mpjpe_mm"] == pytest.approx(pa_mpjpe(P, G))
    assert p["pck_auc_0_50"] == pytest.approx(auc(pck_curve(P, G)))
    assert p["lost_fraction"] == pytest.approx(4 / 17)
    assert p["fps"] == pytest.approx(17 / 3.5)
    assert p["mpjpe_worst_mm"] == pytest.approx(mpjpe(preds[1], gts[1]))
    text = format_table(table)
    assert "pooled: 2 rows" in text and "seq9" in text and "boom" in text


def test_seeds_are_rows_and_reach_the_tracker(tmp_path, monkeypatch):
    import hashlib

    import experiments.compare_depth_sources as cds

    row0 = cds.Row(DEFAULT_DATA, "clean", "pso:8x2:cpu")
    old_key = hashlib.sha1(f"{DEFAULT_DATA}|clean|pso:8x2:cpu|".encode()).hexdigest()[:16]
    assert row0.key == old_key  # rows cached before seeds existed are still found
    assert cds.Row(DEFAULT_DATA, "clean", "pso:8x2:cpu", seed=1).key != old_key
    # the seed reaches the tracker: two seeds track the same frames differently
    a, b = (cds.run_row(cds.Row(DEFAULT_DATA, "clean", "pso:8x2:cpu", seed=s)) for s in (0, 1))
    assert a["seed"] == 0 and b["seed"] == 1 and a["mpjpe_mm"] != b["mpjpe_mm"]

    ran = []

    def fake_run_row(row):
        ran.append((row.tracker, row.seed))
        return {"data": row.data, "source": row.source, "tracker": row.tracker, "seed": row.seed, "frames": 1,
                "mpjpe_mm": 1.0 + row.seed}

    monkeypatch.setattr(cds, "run_row", fake_run_row)
    table = compare([DEFAULT_DATA], ["clean"], ["pso:8x2:cpu", "mediapipe"], tmp_path, progress=False, seeds=(0, 1))
    assert ran == [("pso:8x2:cpu", 0), ("pso:8x2:cpu", 1), ("mediapipe", 0)]
    pooled_rows = json.loads((tmp_path / "pooled.json").read_text())
    assert {(r["tracker"], r["rows"], r["mpjpe_mm"]) for r in pooled_rows} == {("pso:8x2:cpu", 2, 1.5),
                                                                              ("mediapipe", 1, 1.0)}
    assert "pooled: 2 rows" in format_table(table)
    # a row cached before rows had seeds is read back with its seed, so seeds still count as several
    cached = tmp_path / "rows" / f"{cds.Row(DEFAULT_DATA, 'clean', 'pso:8x2:cpu').key}.json"
    cached.write_text(json.dumps({"data": DEFAULT_DATA, "source": "clean", "tracker": "pso:8x2:cpu", "frames": 1,
                                  "mpjpe_mm": 1.0}))
    (tmp_path / "pooled.json").unlink()
    table = compare([DEFAULT_DATA], ["clean"], ["pso:8x2:cpu"], tmp_path, progress=False, seeds=(0, 1, 1))
    assert [r["seed"] for r in table] == [0, 1] and (tmp_path / "pooled.json").exists()
    compare([DEFAULT_DATA], ["clean"], ["pso:8x2:cpu"], tmp_path, progress=False)  # one folder, one seed
    assert not (tmp_path / "pooled.json").exists()


def test_wrongly_tracked_frames_are_tracked_ones_over_50_mm_and_pool_per_frame():
    from experiments.compare_depth_sources import Row, _metrics, pooled

    gt = np.zeros((6, 21, 3))
    pred = gt.copy()
    pred[1] += 60.0 / np.sqrt(3)  # 60 mm off, tracked: wrong
    pred[2] += 60.0 / np.sqrt(3)  # 60 mm off, lost: honest
    pred[3] += 40.0 / np.sqrt(3)  # 40 mm off, tracked: not over the line
    pred[4] = np.nan  # no joints
    statuses = ["tracked", "tracked", "lost", "tracked", "no_hand", "tracked"]
    m = _metrics(pred, gt, statuses, 1.0)
    assert m["wrong_tracked_fraction"] == pytest.approx(1 / 6)
    assert _metrics(pred, gt, statuses, 1.0, absolute=False)["wrong_tracked_fraction"] is None  # MediaPipe rows
    other = _metrics(gt[:2], gt[:2], ["tracked"] * 2, 1.0)
    table = [{"data": "a", "source": "s", "tracker": "t", "seed": 0, "frames": 6, **m},
             {"data": "b", "source": "s", "tracker": "t", "seed": 0, "frames": 2, **other}]
    assert pooled(table)[0]["wrong_tracked_fraction"] == pytest.approx(1 / 8)
    # an automatic start is its own row; the truth's start keeps the keys rows were cached under
    assert Row("d", "sensor", "pso:64x25").key == Row("d", "sensor", "pso:64x25", init="gt").key
    assert Row("d", "sensor", "pso:64x25").key != Row("d", "sensor", "pso:64x25", init="auto").key


def test_tracker_options_parse_and_reach_the_tracker_config(monkeypatch):
    import handrgbd.sources
    import experiments.compare_depth_sources as cds

    assert cds.parse_tracker("pso:32x5:cpu+forearm") == (32, 5, "cpu", {"forearm": True})
    assert cds.parse_tracker("pso:32x5+forearm+no-forearm").overrides == {"forearm": False}  # the last one wins
    assert cds.parse_tracker("pso:8x2") == (8, 2, "auto", {}) and cds.parse_tracker("mediapipe") is None
    assert cds.parse_tracker("pso:8x2+whole-region+occluders").overrides == {"region_margin_mm": None,
                                                                             "occluders": True}
    assert cds.parse_tracker("pso:8x2+kp-modes").overrides == {"keypoint_modes": 3}
    assert cds.parse_tracker("pso:8x2+prior").overrides == {"pose_prior_weight": 1.0}
    with pytest.raises(ValueError, match=r"unknown tracker option \+arm; choose from \+forearm, \+no-forearm"):
        cds.parse_tracker("pso:8x2+arm")
    seen = []

    def fake_track_frames(rec, provider, config, start, start_side):
        seen.append(config)
        return iter(())

    monkeypatch.setattr(handrgbd.sources, "track_frames", fake_track_frames)
    for spec, forearm in (("pso:8x2:cpu+no-forearm", False), ("pso:8x2:cpu", True), ("pso:8x2+forearm", True)):
        with pytest.raises(ValueError, match="no frame usable depth"):  # nothing tracked by the fake
            cds.run_row(cds.Row(DEFAULT_DATA, "sensor", spec))
        assert seen[-1].forearm is forearm and seen[-1].pso.particles == 8
