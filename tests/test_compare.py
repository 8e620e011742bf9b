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
