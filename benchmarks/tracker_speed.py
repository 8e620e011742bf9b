"""Tracker speed: frames/s and hypotheses/s, both scoring backends, two PSO budgets.

On the embedded synthetic sequence (sensor-like depth), initialised from ground truth; rows for
the ``gl`` (OpenGL, the baseline) and ``cpu`` (numba ray casting) backends at 64 x 25 and
64 x 40 particles x generations, ``cpu-hand``: the cpu backend with the hand model alone
(``forearm=False``; the default tracks a 38th primitive, the forearm), and at 64 x 25
``cpu-whole``: the cpu backend with the depth's hand region as grown (``region_margin_mm=None``:
what the rule that keeps it near the previous solution costs a frame); ratios against ``gl`` at
the same budget. Medians over frames after a warm-up frame.
Run: ``python -m benchmarks.tracker_speed [--frames 20] [--json]``.
Goal: >= 15 fps at 64 x 25 on 2 CPU cores with the cpu backend.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys

from benchmarks.machine import describe
from benchmarks.machine import line as machine_line
from benchmarks.render_speed import _commit
from handrgbd.recording import Recording
from tracker.pso import PSOConfig
from tracker.run import infer_side_and_length
from tracker.tracking import Tracker, TrackerConfig

DATA = "data/embedded/test_sequence"


def measure(backend: str, particles: int, generations: int, frames: int, forearm: bool = True,
            whole_region: bool = False) -> dict:
    rec = Recording(DATA)
    side, length = infer_side_and_length(rec.poses[0].astype(float), rec.joints_mm[0].astype(float))
    config = TrackerConfig(side=side, hand_length_mm=length, backend=backend, pso=PSOConfig(particles, generations),
                           forearm=forearm, region_margin_mm=None if whole_region else TrackerConfig.region_margin_mm)
    times = []
    with Tracker(rec.camera, config) as tr:
        tr.reset(rec.poses[0])
        for i in range(min(frames, len(rec)) + 1):
            r = tr.step(rec[i % len(rec)].depth_mm)
            if i > 0:
                times.append(r.seconds)
    t = statistics.median(times)
    return {"fps": 1.0 / t, "hypotheses_per_s": particles * generations / t, "ms_per_frame": 1e3 * t}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=20, help="timed frames per row")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    rows = {}
    for particles, generations in ((64, 25), (64, 40)):
        for backend in ("gl", "cpu"):
            rows[f"{backend}_{particles}x{generations}"] = measure(backend, particles, generations, args.frames)
        rows[f"cpu-hand_{particles}x{generations}"] = measure("cpu", particles, generations, args.frames, forearm=False)
        if (particles, generations) == (64, 25):
            rows["cpu-whole_64x25"] = measure("cpu", particles, generations, args.frames, whole_region=True)
    out = {f"fps_{k}": v["fps"] for k, v in rows.items()}
    out.update(rows=rows, commit=_commit(), cpu=platform.processor() or platform.machine(), machine=describe())
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"tracker_speed  commit {out['commit']}  {args.frames} frames, median")
    print(machine_line(out["machine"]))
    print(f"{'backend':<8}{'budget':>8}{'ms/frame':>10}{'fps':>8}{'hyp/s':>9}{'vs gl':>8}")
    for k, v in rows.items():
        backend, budget = k.split("_")
        base = rows[f"gl_{budget}"]["fps"]
        print(f"{backend:<8}{budget:>8}{v['ms_per_frame']:>10.1f}{v['fps']:>8.1f}{v['hypotheses_per_s']:>9.0f}"
              f"{v['fps'] / base:>7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
