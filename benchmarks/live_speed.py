"""Live tracking speed: end-to-end frames/s on a 640 x 480 synthetic video, split by stage.

The tracker is told the hand's side and size (a live user passes ``--side`` / ``--hand-length``);
joints are scored against the video's ground truth. Stages per frame (medians): localisation (a coarse depthnet pass, only when no hand is being
followed), depthnet on the crop, tracker (metric depth from RGB + PSO), drawing (silhouette,
skeleton, depth inset). The baseline in the same run is depthnet alone on the full frame
(what a depth-only product would cost). Goal: >= 10 fps end to end on 2 CPU cores.

    python -m benchmarks.live_speed [--frames 40] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np


from benchmarks.render_speed import _commit
from benchmarks.machine import describe
from benchmarks.machine import line as machine_line


def run(frames: int = 40, particles: int | None = None, generations: int | None = None) -> dict:
    from depthnet.model import DepthNet
    from handrgbd.recording import Recording
    from live.app import _silhouette, annotate
    from live.pipeline import LiveConfig, LivePipeline
    from synth.generator import SynthConfig, generate
    from tracker.metrics import mpjpe, pa_mpjpe
    from tracker.pso import PSOConfig
    from tracker.run import infer_side_and_length

    with tempfile.TemporaryDirectory() as tmp:
        generate(f"{tmp}/seq", frames, seed=4, config=SynthConfig(size=640, sequence=True, full_frame=True,
                                                                    frame_aspect=4 / 3, split="test"), progress=False)
        rec = Recording(f"{tmp}/seq")
        rgbs = [f.rgb for f in rec]
        gt = rec.joints_mm
        camera = rec.camera  # the true intrinsics, so the joints can be scored against truth
    net = DepthNet.from_pretrained()
    side, length = infer_side_and_length(rec.poses[0].astype(float), rec.joints_mm[0].astype(float))
    config = LiveConfig()
    config = replace(config, tracker=replace(config.tracker, side=side, hand_length_mm=length))
    if particles or generations:
        pso = config.tracker.pso
        config = replace(config, tracker=replace(config.tracker, pso=PSOConfig(particles or pso.particles,
                                                                              generations or pso.generations)))
    pipe = LivePipeline(camera, net, config)
    stages = {"localisation": [], "depthnet": [], "tracker": [], "drawing": [], "total": []}
    statuses, joints = [], np.full((len(rgbs), 21, 3), np.nan)
    pipe.process(rgbs[0])  # warm-up (numba compilation)
    pipe.reset()
    for n, rgb in enumerate(rgbs):
        t0 = time.perf_counter()
        r = pipe.process(rgb)
        t1 = time.perf_counter()
        annotate(rgb, camera, r, 0.0, _silhouette(pipe, r, rgb.shape[:2]))
        t2 = time.perf_counter()
        for k in ("localisation", "depthnet", "tracker"):
            stages[k].append(r.timings.get(k, 0.0))
        stages["drawing"].append(t2 - t1)
        stages["total"].append(t2 - t0)
        statuses.append(r.status)
        if r.status == "tracked":
            joints[n] = r.joints_mm
    pipe.close()
    t0 = time.perf_counter()
    for rgb in rgbs[:10]:
        net.predict(rgb)
    baseline = 10 / (time.perf_counter() - t0)
    med = {k: 1e3 * statistics.median(v) for k, v in stages.items()}
    fps = len(rgbs) / sum(stages["total"])
    return {"fps": fps, "baseline_depthnet_full_frame_fps": baseline, "stage_ms": med,
            "mpjpe_mm": mpjpe(joints, gt), "pa_mpjpe_mm": pa_mpjpe(joints, gt),
            "budget": f"{pipe.tracker.config.pso.particles}x{pipe.tracker.config.pso.generations}",
            "tracked_fraction": statuses.count("tracked") / len(statuses), "frames": len(rgbs), "commit": _commit(),
            "cpu": platform.processor() or platform.machine(), "machine": describe()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=40, help="video length")
    p.add_argument("--particles", type=int, default=None, help="PSO particles (default: the live default)")
    p.add_argument("--generations", type=int, default=None, help="PSO generations (default: the live default)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    res = run(args.frames, args.particles, args.generations)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"live_speed  commit {res['commit']}  cpu {res['cpu']}  640x480, {res['frames']} frames")
    print(machine_line(res['machine']))
    for k, v in res["stage_ms"].items():
        print(f"{k:<14}{v:>8.1f} ms")
    print(f"end to end    {res['fps']:>8.1f} fps (tracked {res['tracked_fraction']:.0%} of frames, PSO {res['budget']})")
    print(f"accuracy      MPJPE {res['mpjpe_mm']:.1f} mm, PA-MPJPE {res['pa_mpjpe_mm']:.1f} mm over tracked frames (RGB only)")
    print(f"baseline      {res['baseline_depthnet_full_frame_fps']:>8.1f} fps (depthnet alone, full frame)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
