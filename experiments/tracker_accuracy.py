"""Tracker accuracy against ground truth as a function of the PSO budget.

Runs the tracker (initialised from ground truth in frame 0) on synthetic sequences with the
Kinect-like sensor noise, for several particles x generations budgets, and reports MPJPE,
PA-MPJPE, 3D PCK AUC and fps per budget: a table, ``OUT/accuracy.json`` and ``OUT/accuracy.png``
(MPJPE vs budget). Goal: MPJPE <= 10 mm at 64 x 25.

    python -m experiments.tracker_accuracy [--data DIR ...] [--budgets 16x10 32x15 64x25 64x40]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

from handrgbd.args import CommandParser, out_path
from handrgbd.outputs import check_outputs, make_folder, save_figure, write_json
from tracker.pso import MAX_GENERATIONS, MAX_PARTICLES, PSOConfig
from tracker.run import track_recording
from tracker.tracking import TrackerConfig

DEFAULT = ["data/embedded/test_sequence"]


OUTPUTS = ("accuracy.json", "accuracy.png")


def run(data: list[str], budgets: list[tuple[int, int]], out: Path, backend: str = "cpu", seeds=(0, 1),
        overwrite: bool = False) -> list[dict]:
    out = check_outputs(out, OUTPUTS, overwrite)
    rows = []
    for particles, generations in budgets:
        res = [track_recording(d, None, TrackerConfig(pso=PSOConfig(particles, generations), backend=backend, seed=s),
                               init="gt", progress=False) for d in data for s in seeds]
        rows.append({"budget": f"{particles}x{generations}", "evaluations": particles * generations,
                     **{k: _mean([r[k] for r in res]) for k in ("mpjpe_mm", "pa_mpjpe_mm", "pck_auc_0_50", "fps")}})
    make_folder(out)
    write_json(out / "accuracy.json", rows)
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
    save_figure(fig, out / "accuracy.png")
    plt.close(fig)
    return rows


def _mean(values: list) -> float | None:
    """Mean over the runs that have the value (None: undefined in every run)."""
    ok = [v for v in values if v is not None]
    return float(np.mean(ok)) if ok else None


def _budget(text: str) -> tuple[int, int]:
    """argparse type: ``PARTICLESxGENERATIONS`` within the PSO's limits."""
    try:
        particles, generations = (int(x, 10) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be PARTICLESxGENERATIONS, e.g. 64x25 (got {text!r})") from None
    if not (2 <= particles <= MAX_PARTICLES and 1 <= generations <= MAX_GENERATIONS):
        raise argparse.ArgumentTypeError(f"needs 2-{MAX_PARTICLES} particles and 1-{MAX_GENERATIONS} generations "
                                         f"(got {text!r})")
    return particles, generations


def build_parser() -> CommandParser:
    p = CommandParser(prog="python -m experiments.tracker_accuracy", description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", default=DEFAULT, help="recording folders with ground truth")
    p.add_argument("--budgets", nargs="+", type=_budget, default=[(16, 10), (32, 15), (64, 25), (64, 40)],
                   help="PARTICLESxGENERATIONS")
    p.add_argument("--backend", choices=("auto", "gl", "cpu"), default="cpu", help="scoring backend")
    p.add_argument("--out", type=out_path, default="out/tracker_accuracy", help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace the files of an earlier run in --out")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        rows = run(args.data, args.budgets, Path(args.out), args.backend, overwrite=args.overwrite)
    except (ValueError, OSError) as e:  # OSError: a write the checks could not foresee
        return p.fail(e)

    def f(v, width: int, spec: str = ".1f") -> str:
        return f"{'-' if v is None else format(v, spec):>{width}}"

    print(f"{'budget':<8}{'MPJPE':>8}{'PA-MPJPE':>10}{'AUC':>7}{'fps':>7}")
    for r in rows:
        print(f"{r['budget']:<8}{f(r['mpjpe_mm'], 8)}{f(r['pa_mpjpe_mm'], 10)}{f(r['pck_auc_0_50'], 7, '.3f')}"
              f"{f(r['fps'], 7)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
