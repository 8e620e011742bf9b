"""What the tracker's small networks (``tracker.start_net``, ``tracker.hand_split``) share: float16
weights loaded with errors that name the file, training checkpoints written atomically after
every epoch and resumed, and the training command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable

from handrgbd.outputs import save_torch

log = logging.getLogger(__name__)

__all__ = ["load_network", "held_out", "one_cycle", "Checkpoint", "fit", "training_main"]


def load_network(path: Path, build: Callable[[dict], object], what: str, recipe: str):
    """``(net in eval mode, the saved dict)`` from the weights file ``path``: ``build(saved)``
    makes the network, whose float16 state is loaded as float32. A missing file raises
    ``FileNotFoundError``, a truncated or foreign one ``ValueError``, both naming ``path`` and
    ``what`` it should hold (``recipe``: where the command that makes it is)."""
    import torch

    if not path.is_file():
        raise FileNotFoundError(f"{path}: {what}'s weights are missing ({recipe} has the command that makes them)")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
        net = build(saved)
        net.load_state_dict({k: v.float() for k, v in saved["model"].items()})
    except Exception as e:  # a truncated or foreign file: torch raises several kinds
        raise ValueError(f"{path}: not {what}'s weights ({e})") from e
    net.eval()
    return net, saved


def held_out(n: int, val: int, rng):
    """``(held-out ids, training ids)`` of ``n`` samples shuffled by ``rng``: the first ``val`` of
    the shuffle, at most a fifth of them, are held out."""
    order = rng.permutation(n)
    k = min(val, n // 5)
    return order[:k], order[k:]


def one_cycle(net, lr: float, epochs: int, batches: int):
    """``(optimizer, scheduler)``: AdamW (weight decay 1e-4) under a one-cycle schedule peaking
    at ``lr`` over ``epochs`` x ``batches`` steps."""
    import torch

    opt = torch.optim.AdamW(net.parameters(), lr / 2, weight_decay=1e-4)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * batches)


class Checkpoint:
    """Training state next to the weights ``out`` (``OUT.ckpt``), written atomically after every
    epoch; a run that finds it resumes there."""

    def __init__(self, out: Path, name: str):
        self.out, self.path, self.name = Path(out), Path(out).with_name(Path(out).name + ".ckpt"), name

    def resume(self, net, opt, sched, rng):
        """``(the epoch to start at, the numpy generator)``: the checkpoint's, or 0 and ``rng``."""
        import torch

        if not self.path.exists():
            return 0, rng
        saved = torch.load(self.path, map_location="cpu", weights_only=False)
        net.load_state_dict(saved["model"]), opt.load_state_dict(saved["optimizer"]), sched.load_state_dict(saved["scheduler"])
        torch.set_rng_state(saved["torch_rng"])
        log.info("%s: resumed %s at epoch %d", self.name, self.path, saved["epoch"])
        return saved["epoch"], saved["rng"]

    def save(self, net, opt, sched, epoch: int, rng) -> None:
        """The state after ``epoch`` epochs (counted from 1)."""
        import torch

        save_torch({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "epoch": epoch, "rng": rng, "torch_rng": torch.get_rng_state()}, self.path)

    def finish(self, net, **extra) -> None:
        """The float16 weights (with ``extra`` entries, e.g. the held-out metrics) to ``out``; the
        checkpoint goes."""
        save_torch({"model": {k: v.half() for k, v in net.state_dict().items()}, **extra}, self.out)
        self.path.unlink(missing_ok=True)


def fit(net, opt, sched, ckpt: Checkpoint, rng, train_ids, batch: int, epochs: int, start: int,
        loss_of: Callable, evaluate: Callable[[], dict], describe: Callable[[dict], str]) -> dict:
    """Epochs ``start`` .. ``epochs - 1``: each a pass over ``train_ids`` shuffled by ``rng`` in
    batches of ``batch`` (``loss_of(ids)`` -> the batch's mean loss, a torch scalar), then
    ``evaluate()`` (held-out metrics, logged through ``describe``) and a checkpoint. Returns the
    last epoch's metrics (``evaluate()``'s alone when there was no epoch left)."""
    metrics = {}
    for epoch in range(start, epochs):
        t0, total = time.perf_counter(), 0.0
        perm = rng.permutation(train_ids)
        for b0 in range(0, len(perm), batch):
            b = perm[b0:b0 + batch]
            loss = loss_of(b)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(b)
        metrics = {"epoch": epoch + 1, "loss": total / len(train_ids), **evaluate()}
        log.info("%s: epoch %d/%d loss %.4f, held out: %s (%.0f s)", ckpt.name, epoch + 1, epochs, metrics["loss"],
                 describe(metrics), time.perf_counter() - t0)
        ckpt.save(net, opt, sched, epoch + 1, rng)
    return metrics or {"epoch": epochs, **evaluate()}


def training_main(argv: list[str] | None, description: str, data_help: str, default_out: Path, epochs: int,
                  prepare: Callable, train: Callable) -> int:
    """``python -m tracker.NAME --data DIR [DIR ...] [--out PATH] [--epochs N] [--seed S]``:
    ``train(prepare(data), out, epochs=, seed=)`` on 2 threads; prints the held-out metrics."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", nargs="+", required=True, help=data_help)
    p.add_argument("--out", default=str(default_out), help="weights file (default: the shipped one)")
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    metrics = train(prepare(args.data), args.out, epochs=args.epochs, seed=args.seed)
    print(json.dumps(metrics, indent=1))
    return 0
