"""The hard bench's pooling over tracker seeds and its count of failed runs, on made-up compare
rows (rendering and tracking the bench itself takes minutes: benchmarks/hard_bench.py)."""

import benchmarks.hard_bench as hard_bench
import experiments.compare_depth_sources as compare_depth_sources


def _row(data, seed, mpjpe):
    return {"data": data, "source": "sensor", "tracker": "pso:64x25", "seed": seed, "frames": 10,
            "scored_frames": 10, "mpjpe_mm": mpjpe, "rr_mpjpe_mm": mpjpe, "pa_mpjpe_mm": mpjpe / 2,
            "pck_auc_0_50": 0.5, "lost_fraction": 0.0, "wrong_tracked_fraction": 0.0, "fps": 10.0}


def test_run_tracks_each_sequence_once_per_seed_and_counts_failed_runs(monkeypatch, tmp_path):
    monkeypatch.setattr(hard_bench, "build", lambda scenarios, n, frames, progress="log":
                        {s: [tmp_path / f"{s}_{k}" for k in range(n)] for s in scenarios})
    # sequence 0 fails with seed 1 only (a start outside the hand's basin); sequence 1 never
    mpjpe = {("plain_0", 0): 10.0, ("plain_0", 1): 55.0, ("plain_1", 0): 12.0, ("plain_1", 1): 29.0}
    calls = []

    def fake_compare(data, sources, trackers, out, progress=True, seeds=(0,), init="gt", **kw):
        calls.append((seeds, init))
        return [_row(d, s, mpjpe[(d.rsplit("/", 1)[-1], s)]) for d in data for s in seeds]

    monkeypatch.setattr(compare_depth_sources, "compare", fake_compare)
    result = hard_bench.run(["plain"], ["C1-auto"], sequences=2, frames=10, seeds=(0, 1))
    assert calls == [((0, 1), "auto")]
    (row,) = result["rows"]
    assert result["seeds"] == [0, 1]
    assert (row["runs"], row["failed_runs"]) == (4, 1)  # 29 mm is not over FAILED_RUN_MM = 30
    assert abs(row["mpjpe_mm"] - (10 + 55 + 12 + 29) / 4) < 1e-9  # equal frames: the plain mean
    assert row["mpjpe_worst_mm"] == 55.0
    table = hard_bench.format_table(result)
    assert "failed" in table.splitlines()[0] and "1/4" in table.splitlines()[2]


def test_seeds_argument_reaches_the_run(monkeypatch, capsys):
    seen = {}

    def fake_run(scenarios, conditions, sequences, frames, progress="log", tracker=hard_bench.TRACKER,
                 weights=None, seeds=(0,)):
        seen["seeds"] = seeds
        return {"rows": [], "tracker": tracker, "sequences": sequences, "frames": frames, "digest": "x",
                "weights": weights, "seeds": list(seeds)}

    monkeypatch.setattr(hard_bench, "run", fake_run)
    assert hard_bench.main(["--scenarios", "plain", "--conditions", "C1", "--seeds", "2", "0", "2"]) == 0
    assert seen["seeds"] == (2, 0)  # repeats dropped, order kept
    assert "tracker seeds 2 0" in capsys.readouterr().out
