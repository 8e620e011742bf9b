"""Depth network speed on the CPU: inference and training images/s for each preset.

The ``paper`` preset is the baseline in the same run; ratios are against it. Medians over
repeats after warm-up, ``--threads`` torch threads (default 2). Run:
``python -m benchmarks.depthnet_speed [--json]``. Goals for ``cpu``: >= 25 img/s inference,
>= 15 img/s training on 2 cores.

The presets are measured with fresh weights. The shipped weights are measured too, as loaded
(``DepthNet.from_pretrained``, dead weights set to zero) against the same file's tensors as
stored, the baseline: trained weights can be slower than fresh ones (``depthnet.model.DEAD_WEIGHT``).

One frame at a time (what live, the study and compare do), the shipped weights on each
inference route: torch eager (the baseline), channels_last, batch norm folded into the
convolutions (``torch.fx`` fuse), a frozen TorchScript trace, ``torch.compile`` (with
``--compile``: it compiles for minutes), ONNX Runtime (``depthnet.runtime``'s default) and
OpenVINO (when installed): median ms per frame, speed-up, and the largest difference from
eager over all outputs (the stage maps, and the heatmaps and side where the network has them).
``batch1_ms`` in ``--json`` is the default backend's.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time

import torch

from benchmarks.render_speed import _commit, _median_seconds
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


def batch1_routes(threads: int, compile_too: bool = False) -> dict:
    """Per route: ``{"ms", "max_abs_diff"}`` on one frame of the shipped weights, or
    ``{"skipped": why}``."""
    import copy
    import warnings

    import numpy as np

    from depthnet.runtime import Inference, _Stages

    net = DepthNet.from_pretrained().eval()
    s = net.config.input_size
    x = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(0))
    stages = _Stages(net).eval()  # every output: the stages, and the heatmaps and side where the network has them

    def flat(out) -> np.ndarray:
        """A route's outputs (one array or several) as one flat float32 array, for the difference."""
        parts = out if isinstance(out, (tuple, list)) else (out,)
        return np.concatenate([np.asarray(p, np.float32).ravel() for p in parts if p is not None])

    with torch.no_grad():
        ref = flat(stages(x))
    routes: dict = {}

    def add(name, run):
        with torch.no_grad():
            out = flat(run())
            routes[name] = {"ms": 1e3 * _median_seconds(run, 30), "max_abs_diff": float(np.abs(out - ref).max())}

    add("torch eager", lambda: stages(x))
    cl = copy.deepcopy(stages).to(memory_format=torch.channels_last)
    xc = x.contiguous(memory_format=torch.channels_last)
    add("torch channels_last", lambda: cl(xc))
    from torch.fx.experimental.optimization import fuse

    folded = fuse(copy.deepcopy(stages))
    add("torch batch norm folded", lambda: folded(x))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frozen = torch.jit.freeze(torch.jit.trace(stages, x))
    add("torch frozen TorchScript", lambda: frozen(x))
    if compile_too:
        compiled = torch.compile(stages)
        with torch.no_grad():
            compiled(x)
        add("torch.compile", lambda: compiled(x))
    else:
        routes["torch.compile"] = {"skipped": "--compile (compiling takes minutes)"}
    try:
        ort = Inference(net, "onnxruntime", threads=threads)
        xn = x.numpy()
        add("onnxruntime", lambda: ort.outputs(xn))
    except RuntimeError as e:
        routes["onnxruntime"] = {"skipped": str(e)}
    try:
        import openvino as ov

        from depthnet.runtime import onnx_model

        core = ov.Core()
        model = core.read_model(onnx_model(net)[0], b"")
        compiled_ov = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY",
                                                        "INFERENCE_PRECISION_HINT": "f32"})
        request = compiled_ov.create_infer_request()
        xn = x.numpy()
        add("openvino", lambda: [request.infer({0: xn})[i] for i in range(len(compiled_ov.outputs))])
    except ImportError:
        routes["openvino"] = {"skipped": "not installed (pip install openvino)"}
    return routes


def matmul_gflops(n: int = 512, seconds: float = 0.3) -> float:
    """torch's float32 matrix product, GFLOP/s with the set threads: this run's reference."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2 * n ** 3 * count / (time.perf_counter() - t0) / 1e9


def threads_word(n: int) -> str:
    return f"{n} thread{'s' if n != 1 else ''}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--batch", type=int, default=8, help="batch size")
    p.add_argument("--compile", action="store_true", help="also time torch.compile (compiles for minutes)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = {name: measure(name, args.batch) for name in ("paper", "cpu")}
    shipped = measure_shipped(args.batch)
    from depthnet.runtime import Inference

    routes = batch1_routes(args.threads, args.compile)
    default = Inference(DepthNet.from_pretrained(), threads=args.threads).backend
    out = {"cpu_infer_img_per_s": res["cpu"]["infer_img_per_s"], "cpu_train_img_per_s": res["cpu"]["train_img_per_s"],
           "paper_infer_img_per_s": res["paper"]["infer_img_per_s"],
           "paper_train_img_per_s": res["paper"]["train_img_per_s"], "presets": res, "shipped": shipped, "threads": args.threads,
           "batch": args.batch, "commit": _commit(), "cpu": platform.processor() or platform.machine(), "machine": describe(),
           "torch": torch.__version__, "matmul_gflops": matmul_gflops(), "batch1": routes, "default_backend": default,
           "batch1_ms": routes["onnxruntime" if default == "onnxruntime" else "torch eager"]["ms"]}
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
    print(f"one frame at a time, shipped weights ({threads_word(args.threads)}); default backend {default}: "
          f"{out['batch1_ms']:.1f} ms")
    eager = routes["torch eager"]["ms"]
    print(f"{'route':<26}{'ms/frame':>10}{'vs eager':>10}{'max |diff|':>12}")
    for name, r in routes.items():
        if "skipped" in r:
            print(f"{name:<26}{'skipped: ' + r['skipped']:>32}")
        else:
            print(f"{name:<26}{r['ms']:>10.1f}{eager / r['ms']:>9.1f}x{r['max_abs_diff']:>12.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
