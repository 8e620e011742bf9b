"""Synthetic data throughput: frames per second at 256 x 256, stage by stage, 1 vs 2 workers.

Rows: the time per frame of each stage in one process (plan, skinning + render + read-back,
sensor model + camera effects, PNG writing), then end-to-end frames/s of ``generate`` with 1
worker (the baseline) and with 2 workers, and their ratio. Run:
``python -m benchmarks.synth_speed [--frames 60] [--json]``. Goal: >= 10 frames/s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

from benchmarks.render_speed import _commit
from benchmarks.machine import describe
from benchmarks.machine import line as machine_line
from synth.generator import FrameRenderer, SynthConfig, _rng, _texture_mean, generate, plan_frame


def stage_times(config: SynthConfig, frames: int) -> dict:
    import cv2

    mean = _texture_mean()
    t = {"plan": [], "render": [], "png": []}
    with FrameRenderer(config) as renderer:
        renderer.render(plan_frame(config, 0, 0, mean), _rng(config, 0, 0, 1))  # warm-up (numba, GL)
        for i in range(frames):
            t0 = time.perf_counter()
            plan = plan_frame(config, 0, i, mean)
            t1 = time.perf_counter()
            rgb, depth, depth_gt, mask = renderer.render(plan, _rng(config, 0, i, 1))
            t2 = time.perf_counter()
            for img in (rgb, depth.astype(np.uint16), depth_gt.astype(np.uint16), mask.astype(np.uint8) * 255):
                cv2.imencode(".png", img)
            t3 = time.perf_counter()
            t["plan"].append(t1 - t0)
            t["render"].append(t2 - t1)
            t["png"].append(t3 - t2)
    return {k: 1e3 * statistics.median(v) for k, v in t.items()}


def run(frames: int = 60, size: int = 256) -> dict:
    config = SynthConfig(size=size)
    stages = stage_times(config, min(frames, 30))
    fps = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            stats = generate(f"{tmp}/out", frames, seed=0, config=config, workers=workers, progress=False)
        fps[workers] = stats["frames_per_s"]
    return {"frames_per_s": fps[2], "baseline_frames_per_s_1_worker": fps[1], "speedup_2_workers": fps[2] / fps[1],
            "stage_ms": stages, "size": size, "frames": frames, "commit": _commit(),
            "cpu": platform.processor() or platform.machine(), "machine": describe()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=60, help="frames per end-to-end run")
    parser.add_argument("--size", type=int, default=256, help="output size")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    res = run(args.frames, args.size)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"synth_speed  commit {res['commit']}  cpu {res['cpu']}  {args.size}x{args.size}, {args.frames} frames")
    print(machine_line(res['machine']))
    print(f"{'stage (1 process)':<26}{'ms/frame':>10}")
    for k, v in res["stage_ms"].items():
        print(f"{k:<26}{v:>10.1f}")
    print(f"{'generate, 1 worker':<26}{res['baseline_frames_per_s_1_worker']:>10.1f} frames/s  1.0x")
    print(f"{'generate, 2 workers':<26}{res['frames_per_s']:>10.1f} frames/s  {res['speedup_2_workers']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
