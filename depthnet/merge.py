"""Weight-space ensembles: a network whose weights are a base file's plus shares of what
fine-tunes of it changed (``handrgbd merge``).

``theta = theta_base + sum_i a_i (theta_i - theta_base)``, parameter by parameter, BatchNorm's
running statistics included (integer buffers, BatchNorm's step counters, are the base's). With
one fine-tune this is WiSE-FT (Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR
2022): a fine-tune from a network stays in the same basin of the loss, so points on the line
between them are networks too, and a short step along it keeps most of what the base did well
while taking part of what the fine-tune learnt. With several it is "task arithmetic" (Ilharco et
al., ICLR 2023). On this CPU every fine-tune of the shipped stages cost the plain test split 1-2
mm of E; a quarter of a JPEG-augmented fine-tune keeps the plain split and most of the JPEG
robustness (docs/depthnet.md, "Weight-space ensembles").

Every file must be of the same model (``DepthNetConfig``): the fine-tunes must start from the
base (``handrgbd train --init BASE``), which this cannot check; their recorded ``init`` is not
stored in a weights file.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch

from depthnet.model import DepthNet, file_digest
from handrgbd.args import CommandParser, existing_file, number, out_path
from handrgbd.outputs import check_output_file, make_folder, save_torch

__all__ = ["merge_state_dicts", "merge_weights", "merge_main"]


def merge_state_dicts(base: dict[str, torch.Tensor],
                      others: list[tuple[dict[str, torch.Tensor], float]]) -> dict[str, torch.Tensor]:
    """``base + sum_i share_i (other_i - base)`` for every floating-point tensor (in float64,
    stored in the base's dtype); other tensors are the base's. All dicts need the same keys and
    shapes (``ValueError`` naming the first that differs)."""
    for k, (other, share) in enumerate(others):
        if not math.isfinite(share):
            raise ValueError(f"share {k + 1} is {share}: give a finite number")
        if set(other) != set(base):
            diff = sorted(set(other) ^ set(base))
            raise ValueError(f"network {k + 1} has other tensors than the base (e.g. {diff[0]!r})")
        for name, t in base.items():
            if other[name].shape != t.shape:
                raise ValueError(f"network {k + 1}: {name} is {tuple(other[name].shape)}, the base's "
                                 f"{tuple(t.shape)}")
    out = {}
    for name, t in base.items():
        if not t.is_floating_point():
            out[name] = t.clone()
            continue
        acc = t.double()
        for other, share in others:
            if share:
                acc = acc + share * (other[name].double() - t.double())
        out[name] = acc.to(t.dtype)
    return out


def _read(path: str | Path) -> dict:
    DepthNet.load(path)  # the checks and clear errors of a weights file (readable, fits its config)
    return torch.load(path, map_location="cpu", weights_only=True)


def merge_weights(base: str | Path, others: list[tuple[str | Path, float]], out: str | Path,
                  overwrite: bool = False) -> Path:
    """Write ``base`` plus shares of ``others`` (weights files of the same model) to ``out``, a
    weights file ``DepthNet.load`` reads, written atomically; an existing ``out`` is replaced
    only if ``overwrite``. Its folder is created once the inputs are accepted."""
    out = Path(out)
    if out.parent.is_dir():  # probe the output before reading any input
        check_output_file(out, overwrite, "--out")
    if not others:
        raise ValueError("merge needs at least one network to add to the base")
    blob = _read(base)
    parts = []
    for path, share in others:
        other = _read(path)
        if other["config"] != blob["config"]:
            raise ValueError(f"{path}: a network of {other['config']}, the base {base} of {blob['config']}: "
                             f"merge networks of one model (fine-tunes of the base)")
        parts.append((other["model"], float(share)))
    try:
        model = merge_state_dicts(blob["model"], parts)
    except ValueError as e:
        raise ValueError(f"{base} and {[str(p) for p, _ in others]}: {e}") from e
    make_folder(out.parent)
    check_output_file(out, overwrite, "--out")
    save_torch({"model": model, "config": blob["config"], "epoch": blob.get("epoch", 0),
                "global_step": blob.get("global_step", 0),
                "merged": {"base_sha256_10": file_digest(base),
                           "added": [[file_digest(p), float(a)] for p, a in others]}}, out)
    return out


def build_parser() -> CommandParser:
    p = CommandParser(prog="handrgbd merge", description=merge_main.__doc__)
    p.add_argument("--base", required=True, type=existing_file, help="the weights file the fine-tunes started from")
    p.add_argument("--add", nargs=2, action="append", metavar=("WEIGHTS", "SHARE"), required=True,
                   help="a fine-tune of the base and the share of its change to add (0: none, 1: all of "
                        "it); repeat for several")
    p.add_argument("--out", required=True, type=out_path, help="the weights file to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


def merge_main(argv: list[str] | None = None) -> int:
    """A weights file of the base plus shares of fine-tunes of it (weight-space ensemble)."""
    p = build_parser()
    args = p.parse_args(argv)
    others = []
    for path, share in args.add:
        try:
            others.append((path, number()(share)))
        except argparse.ArgumentTypeError as e:
            return p.fail(f"--add {path} {share}: the share {e}")
    try:
        out = merge_weights(args.base, others, args.out, args.overwrite)
    except (ValueError, OSError) as e:
        return p.fail(e)
    print(f"{out} (sha256 {file_digest(out)}...)")
    return 0
