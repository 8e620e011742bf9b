"""Depth network speed on the CPU: inference and training images/s for each preset.

The ``paper`` preset is the baseline in the same run; ratios are against it. Medians over
repeats after warm-up, ``--threads`` torch threads (default 2). Run:
``python -m benchmarks.depthnet_speed [--json]``. Goals for ``cpu``: >= 25 img/s inference,
>= 15 img/s training on 2 cores.

The presets are measured with fresh weights. The shipped weights are measured too, as loaded
(``DepthNet.from_pretrained``, dead weights set to zero) against the same file's tensors as
stored, the baseline: trained weights can be slower than fresh ones (``depthnet.model.DEAD_WEIGHT``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

from benchmarks.render_speed import _commit
from benchmarks.machine import describe
from benchmarks.machine import line as machine_line
from depthnet.model import PRESETS, DepthNet, pretrained_path
from depthnet.train import stage_losses


def _infer_img_per_s(net: DepthNet, batch: int, repeats: int = 5) -> float:
    s = net.config.input_size
    x = torch.rand(batch, 3, s, s, generator=torch.Generator().manual_seed(0))
    net.eval()
    with torch.no_grad():
        net(x)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def measure(name: str, batch: int = 8, repeats: int = 5) -> dict:
    cfg = PRESETS[name]
    net = DepthNet(cfg)
    x = torch.rand(batch, 3, cfg.input_size, cfg.input_size)
    h = cfg.output_size
    mask, rel = torch.rand(batch, 1, h, h).round(), torch.randn(batch, 1, h, h) * 0.2
    infer = _infer_img_per_s(net, batch, repeats)
    net.train()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        out = net(x)
        loss = stage_losses(out.stages, cfg.mask_stages, mask, rel).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t_train = []
    for _ in range(max(2, repeats // 2)):
        t0 = time.perf_counter()
        step()
        t_train.append(time.perf_counter() - t0)
    return {"infer_img_per_s": infer, "train_img_per_s": batch / statistics.median(t_train),
            "params_m": sum(p.numel() for p in net.parameters()) / 1e6, "input": cfg.input_size}


def measure_shipped(batch: int = 8) -> dict:
    """Inference img/s of the shipped weights as loaded and as stored (the baseline)."""
    path = pretrained_path("cpu")
    loaded = DepthNet.from_pretrained()
    stored = DepthNet(loaded.config)
    stored.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
    return {"weights": path.name, "stored_infer_img_per_s": _infer_img_per_s(stored, batch),
            "loaded_infer_img_per_s": _infer_img_per_s(loaded, batch)}


def matmul_gflops(n: int = 512, seconds: float = 0.3) -> float:
    """torch's float32 matrix product, GFLOP/s with the set threads: this run's reference."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - t0) / 1e9


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--batch", type=int, default=8, help="batch size")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = {name: measure(name, args.batch) for name in ("paper", "cpu")}
    shipped = measure_shipped(args.batch)
    out = {"cpu_infer_img_per_s": res["cpu"]["infer_img_per_s"], "cpu_train_img_per_s": res["cpu"]["train_img_per_s"],
           "paper_infer_img_per_s": res["paper"]["infer_img_per_s"],
           "paper_train_img_per_s": res["paper"]["train_img_per_s"], "presets": res, "shipped": shipped, "threads": args.threads,
           "batch": args.batch, "commit": _commit(), "cpu": platform.processor() or platform.machine(), "machine": describe(),
           "torch": torch.__version__, "matmul_gflops": matmul_gflops()}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"depthnet_speed  commit {out['commit']}  torch {out['torch']}  {args.threads} threads, batch {args.batch}")
    print(machine_line(out["machine"]) + f"; torch matmul {out['matmul_gflops']:.1f} GFLOP/s")
    print(f"{'preset':<8}{'params':>8}{'input':>7}{'infer img/s':>13}{'train img/s':>13}{'vs paper':>16}")
    base = res["paper"]
    for name, r in res.items():
        ratio = f"{r['infer_img_per_s'] / base['infer_img_per_s']:.1f}x / {r['train_img_per_s'] / base['train_img_per_s']:.1f}x"
        print(f"{name:<8}{r['params_m']:>7.2f}M{r['input']:>7}{r['infer_img_per_s']:>13.1f}{r['train_img_per_s']:>13.1f}{ratio:>16}")
    ratio = shipped["loaded_infer_img_per_s"] / shipped["stored_infer_img_per_s"]
    print(f"shipped {shipped['weights']}: inference {shipped['loaded_infer_img_per_s']:.1f} img/s as loaded, "
          f"{shipped['stored_infer_img_per_s']:.1f} as stored ({ratio:.1f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
