"""Tracker accuracy against ground truth as a function of the PSO budget.

Runs the tracker (initialised from ground truth in frame 0) on synthetic sequences with the
Kinect-like sensor noise, for several particles x generations budgets, and reports MPJPE,
PA-MPJPE, 3D PCK AUC and fps per budget: a table, ``OUT/accuracy.json`` and ``OUT/accuracy.png``
(MPJPE vs budget). Goal: MPJPE <= 10 mm at 64 x 25.

    python -m experiments.tracker_accuracy [--data DIR ...] [--budgets 16x10 32x15 64x25 64x40]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np

from tracker.pso import PSOConfig
from tracker.run import track_recording
from tracker.tracking import TrackerConfig

DEFAULT = ["data/embedded/test_sequence"]


def run(data: list[str], budgets: list[tuple[int, int]], out: Path, backend: str = "cpu", seeds=(0, 1)) -> list[dict]:
    rows = []
    for particles, generations in budgets:
        res = [track_recording(d, None, TrackerConfig(pso=PSOConfig(particles, generations), backend=backend, seed=s),
                               init="gt", progress=False) for d in data for s in seeds]
        rows.append({"budget": f"{particles}x{generations}", "evaluations": particles * generations,
                     **{k: float(np.mean([r[k] for r in res])) for k in ("mpjpe_mm", "pa_mpjpe_mm", "pck_auc_0_50", "fps")}})
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(rows, indent=1) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["evaluations"] for r in rows], [r["mpjpe_mm"] for r in rows], "o-", label="MPJPE")
    ax.plot([r["evaluations"] for r in rows], [r["pa_mpjpe_mm"] for r in rows], "s--", label="PA-MPJPE")
    ax.set(xscale="log", xlabel="hypotheses per frame (particles x generations)", ylabel="mm")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "accuracy.png", dpi=100)
    plt.close(fig)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", default=DEFAULT, help="recording folders with ground truth")
    p.add_argument("--budgets", nargs="+", default=["16x10", "32x15", "64x25", "64x40"], help="PARTICLESxGENERATIONS")
    p.add_argument("--backend", choices=("auto", "gl", "cpu"), default="cpu", help="scoring backend")
    p.add_argument("--out", default="out/tracker_accuracy", help="output folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    budgets = [tuple(int(x) for x in b.lower().split("x")) for b in args.budgets]
    rows = run(args.data, budgets, Path(args.out), args.backend)
    print(f"{'budget':<8}{'MPJPE':>8}{'PA-MPJPE':>10}{'AUC':>7}{'fps':>7}")
    for r in rows:
        print(f"{r['budget']:<8}{r['mpjpe_mm']:>8.1f}{r['pa_mpjpe_mm']:>10.1f}{r['pck_auc_0_50']:>7.3f}{r['fps']:>7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
