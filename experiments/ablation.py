"""Reproduce the paper's Table 2: how many stages supervise the mask and how many the depth.

Eight variants (S_M mask stages + S_D depth stages): 0+1, 1+2, 1+3, 1+4, 1+5, 2+4, 3+3, 4+2, each
trained on the same data and evaluated on the same test folder (E in mm, mask IoU), printed
beside the paper's numbers.

Presets:

* ``quick``: fits a 2-core CPU in about 45 minutes: 2,000 training frames, 4 epochs, width 32,
  128 x 128 input (32 x 32 output), 300 test frames. Numbers show trends, not the paper's
  values (600 frames x 3 epochs, tried first, left every variant untrained: E 73-88 mm; that
  was before ``--max-frames`` was fixed on 2026-11-27, when each epoch drew its frames from the
  whole training folder).
* ``paper``: the paper's protocol: 4,500 training / 500 test frames, 100 epochs, width 128,
  256 x 256 input (a GPU job: about 2 days per variant on this CPU).

Finished variants are kept (``OUT/<variant>/model.pt`` + ``OUT/results.json``) and skipped when
the command is run again; an interrupted variant resumes from its checkpoint.

    python -m experiments.ablation --train data/train --test data/test --preset quick --out out/ablation
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path

from depthnet.evaluate import evaluate
from depthnet.model import PRESETS, DepthNet
from depthnet.train import TrainConfig, train
from handrgbd.args import CommandParser, out_path
from handrgbd.outputs import finite_or_none, write_json

log = logging.getLogger(__name__)

__all__ = ["VARIANTS", "PAPER_TABLE2", "run", "main", "build_parser"]

VARIANTS = ((0, 1), (1, 2), (1, 3), (1, 4), (1, 5), (2, 4), (3, 3), (4, 2))
#: (E mm, IoU) from the paper's Table 2
PAPER_TABLE2 = {(0, 1): (39.75, 0.62), (1, 2): (33.16, 0.65), (1, 3): (29.04, 0.70), (1, 4): (28.05, 0.73),
                (1, 5): (28.83, 0.72), (2, 4): (25.00, 0.73), (3, 3): (24.64, 0.81), (4, 2): (34.42, 0.68)}
SETTINGS = {
    "quick": dict(model=replace(PRESETS["cpu"], width=32, input_size=128), epochs=4, train_frames=2000, test_frames=300),
    "paper": dict(model=PRESETS["paper"], epochs=100, train_frames=4500, test_frames=500),
}


def run(train_dir: str, test_dir: str, out: str | Path, preset: str = "quick", variants=VARIANTS,
        progress: bool | str = True) -> dict:
    s = SETTINGS[preset]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    for sm, sd in variants:
        key = f"{sm}+{sd}"
        if key in results:
            continue
        run_dir = out / key
        model = replace(s["model"], mask_stages=sm, depth_stages=sd)
        config = TrainConfig((train_dir,), str(run_dir), model=model, epochs=s["epochs"], max_frames=s["train_frames"],
                             checkpoint_every=100)
        if not (run_dir / "model.pt").exists():
            train(config, resume=(run_dir / "checkpoint.pt").exists(), progress=progress)
        m = evaluate(DepthNet.load(run_dir / "model.pt"), test_dir, max_frames=s["test_frames"])
        results[key] = {"depth_error_mm": m["depth_error_mm"], "iou": m["iou"], "frames": m["frames"]}
        write_json(path, finite_or_none(results))
    return results


def table(results: dict) -> str:
    lines = [f"{'S_M+S_D':<9}{'E ours (mm)':>12}{'IoU ours':>10}{'E paper':>10}{'IoU paper':>11}", "-" * 52]
    for sm, sd in VARIANTS:
        r = results.get(f"{sm}+{sd}")
        pe, pi = PAPER_TABLE2[(sm, sd)]
        ours = f"{r['depth_error_mm']:>12.2f}{r['iou']:>10.2f}" if r else f"{'-':>12}{'-':>10}"
        lines.append(f"{sm}+{sd:<7}{ours}{pe:>10.2f}{pi:>11.2f}")
    return "\n".join(lines)


def _variant(text: str) -> tuple[int, int]:
    """argparse type: ``S_M+S_D``, one of Table 2's rows."""
    try:
        variant = tuple(int(x, 10) for x in text.split("+"))
    except ValueError:
        variant = ()
    if variant not in PAPER_TABLE2:
        raise argparse.ArgumentTypeError(f"must be one of Table 2's {', '.join(f'{a}+{b}' for a, b in VARIANTS)} "
                                         f"(got {text!r})")
    return variant


def build_parser() -> CommandParser:
    p = CommandParser(prog="python -m experiments.ablation", description="Table 2 ablation: mask vs depth supervised stages.")
    p.add_argument("--train", required=True, help="training recording folder")
    p.add_argument("--test", required=True, help="test recording folder")
    p.add_argument("--out", type=out_path, default="out/ablation", help="output folder (resumable: finished variants are kept)")
    p.add_argument("--preset", choices=sorted(SETTINGS), default="quick", help="quick (CPU) or paper (GPU)")
    p.add_argument("--variants", nargs="*", type=_variant, default=None, help="subset, e.g. 3+3 1+5")
    p.add_argument("--no-progress", action="store_true", help="no progress bars: a log line every few seconds instead")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        results = run(args.train, args.test, args.out, args.preset, tuple(args.variants or VARIANTS),
                      progress="log" if args.no_progress else True)
    except (ValueError, OSError) as e:  # OSError: a write the checks could not foresee
        return p.fail(e)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
