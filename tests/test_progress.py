"""Progress of long runs: log lines with --no-progress, a bar by default, silence for library calls."""

from __future__ import annotations

import logging

import pytest

import handrgbd.progress as hp
from handrgbd.progress import Progress


def test_log_mode_reports_done_rate_and_time_left(caplog):
    clock = iter([0.0, 0.0, 1.0, 2.0, 6.0, 7.0, 12.0, 13.0, 14.0])  # t0, then one reading per update
    with caplog.at_level(logging.INFO, logger="handrgbd.progress"):
        with Progress(10, "track", "frame", "log", initial=4, clock=lambda: next(clock)) as bar:
            for _ in range(6):
                bar.update(loss="0.5")
            bar.update()  # past the total (an estimated frame count): no line until the end
    lines = [r.getMessage() for r in caplog.records]
    # the 4th update, at 6 s (5 s since the last line): 4 done since the start (4 were done before),
    # 0.667 frame/s, 2 left -> 3 s; the total's line once; close() reports the overrun
    assert lines == ["track: 8/10 frames (80%), 0.667 frame/s, about 3 s left, loss 0.5",
                     "track: 10/10 frames (100%), 0.5 frame/s, loss 0.5",
                     "track: 11/10 frames (110%), 0.5 frame/s"]


def test_log_mode_reports_a_run_that_stops_short(caplog):
    clock = iter([0.0, 1.0, 2.0, 4.0])
    with caplog.at_level(logging.INFO, logger="handrgbd.progress"):
        with Progress(10, "eval", "frame", "log", clock=lambda: next(clock)) as bar:
            bar.update(2)
            bar.update(2)
    assert [r.getMessage() for r in caplog.records] == ["eval: 4/10 frames (40%), 1 frame/s, about 6 s left"]


def test_bar_and_off_modes(capsys, caplog):
    with caplog.at_level(logging.INFO, logger="handrgbd.progress"):
        with Progress(3, "synth", "frame", False) as bar:
            bar.update(3)
        with Progress(3, "synth", "frame", True) as bar:
            bar.update(3)
    assert not caplog.records
    assert "synth: 100%" in capsys.readouterr().err  # tqdm's bar on stderr
    assert hp._duration(75) == "1 min 15 s" and hp._duration(7300) == "2 h 01 min"
    with pytest.raises(ValueError, match="progress mode"):
        Progress(1, "x", mode="loud")


def test_track_no_progress_logs_lines(tmp_path, caplog):
    from tracker.run import track_main

    with caplog.at_level(logging.INFO, logger="handrgbd.progress"):
        code = track_main(["data/embedded/test_sequence", "--out", str(tmp_path / "t"), "--init", "gt",
                           "--frames", "3", "--particles", "8", "--generations", "3", "--backend", "cpu",
                           "--no-progress"])
    assert code == 0
    assert [r.getMessage().split(" (")[0] for r in caplog.records][-1] == "track: 3/3 frames"


def test_units_are_plural_in_english():
    bar = Progress(4, "epoch 1/2", "batch", False, clock=lambda: 0.0)
    assert bar.line(now=0.0).startswith("epoch 1/2: 0/4 batches")
    assert Progress(4, "track", "frame", False, clock=lambda: 0.0).line(now=0.0).startswith("track: 0/4 frames")
