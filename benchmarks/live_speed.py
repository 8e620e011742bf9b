"""Live tracking speed: end-to-end frames/s on a 640 x 480 synthetic video, split by stage.

The tracker is told the hand's side and size (a live user passes ``--side`` / ``--hand-length``);
joints are scored against the video's ground truth. Two passes over the same frames: the stages
in turn (``LivePipeline.process``), and overlapped (``process_overlapped``: depthnet on the next
frame on a worker thread while this one is tracked). Stages per frame (medians): localisation (a
coarse depthnet pass, only when no hand is being followed), depthnet on the crop, tracker (metric
depth from RGB + PSO), drawing (silhouette, skeleton, depth inset). ``fps`` in ``--json`` is the
mode ``handrgbd live --overlap auto`` runs on this machine. The baseline in the same run is
depthnet alone on the full frame with torch eager (the inference route before ONNX Runtime).
Goal: >= 15 fps end to end on 2 CPU cores. With a keypoint network (issue 21) the tracker uses
depthnet's 2D keypoints unless ``--no-keypoints``.

One video says little about accuracy (its hand is found at once and never lost): ``--videos N``
also tracks N videos (test-split seeds 4, 5, ...: the speed video and N - 1 more, each from a
fresh pipeline, ``process`` in turn) and pools MPJPE and PA-MPJPE over their tracked frames,
with the videos whose MPJPE exceeds 100 mm (the hand missed: clutter or a background taken for
it, or the distance far off).

``--jpeg Q [Q ...]`` tracks every video again JPEG-compressed at each quality (webcams stream
MJPEG, video files are lossy; the renders are not), each from a fresh pipeline; ``--low-light G
[G ...]`` again as taken in a room G times dimmer (the camera's gain raised as much: its noise).
``--keyframe-every N`` and ``--motion-blur E`` render faster and blurred videos (``handrgbd synth``'s
options of the same names: a hand gesturing, a camera exposing for a share of the frame interval).
``--tracker-seeds S [S ...]`` tracks every video once per PSO seed and pools them (each video's
MPJPE is then its mean over the seeds): on the 40 videos seed 1 instead of 0 moved the pooled MPJPE
64.8 -> 69.1 mm and the per-video median 42.2 -> 53.2, so networks are compared over two or more.

    python -m benchmarks.live_speed [--frames 40] [--weights W] [--no-keypoints] [--videos N] [--jpeg Q ...]
        [--low-light G ...] [--keyframe-every N] [--motion-blur E] [--tracker-seeds S ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace

import numpy as np

from benchmarks.machine import describe
from benchmarks.machine import line as machine_line
from benchmarks.render_speed import _commit
from handrgbd.args import integer, number
from synth.generator import SynthConfig


#: the speed video's generator seed; ``--videos N`` tracks seeds VIDEO_SEED .. VIDEO_SEED + N - 1
VIDEO_SEED = 4
#: the videos' keyframes this many frames apart unless asked otherwise: the generator's default
#: (``synth.generator.SynthConfig.keyframe_every``, about 50 mm/s at the middle knuckle)
KEYFRAME_EVERY = SynthConfig.__dataclass_fields__["keyframe_every"].default
#: a video tracked worse than this (MPJPE, mm) missed the hand
MISSED_MM = 100.0


def _video(frames: int, seed: int = VIDEO_SEED, keyframe_every: int = KEYFRAME_EVERY, motion_blur: float = 0.0):
    from handrgbd.recording import Recording
    from synth.generator import SynthConfig, generate

    config = SynthConfig(size=640, sequence=True, full_frame=True, frame_aspect=4 / 3, split="test",
                         keyframe_every=keyframe_every, motion_blur=motion_blur)
    with tempfile.TemporaryDirectory() as tmp:
        generate(f"{tmp}/seq", frames, seed=seed, config=config, progress=False)
        rec = Recording(f"{tmp}/seq")
        return [f.rgb for f in rec], rec.joints_mm, rec.poses, rec.camera  # true intrinsics: joints scored against truth


def _pass(pipe, rgbs, overlapped: bool) -> dict:
    """One pass over the video, drawing included; per-stage medians and end-to-end fps."""
    from live.app import _silhouette, annotate

    stages = {"localisation": [], "depthnet": [], "tracker": [], "drawing": []}
    statuses, joints = [], np.full((len(rgbs), 21, 3), np.nan)
    pipe.reset()

    def finish(n, rgb, r):
        t1 = time.perf_counter()
        annotate(rgb, pipe.camera, r, 0.0, _silhouette(pipe, r, rgb.shape[:2]))
        stages["drawing"].append(time.perf_counter() - t1)
        for k in ("localisation", "depthnet", "tracker"):
            stages[k].append(r.timings.get(k, 0.0))
        statuses.append(r.status)
        if r.status == "tracked":
            joints[n] = r.joints_mm

    t0 = time.perf_counter()
    if overlapped:
        done = 0
        for rgb in rgbs:
            out = pipe.process_overlapped(rgb)
            if out is not None:
                finish(done, *out)
                done += 1
        finish(done, *pipe.flush())
    else:
        for n, rgb in enumerate(rgbs):
            finish(n, rgb, pipe.process(rgb))
    seconds = time.perf_counter() - t0
    return {"fps": len(rgbs) / seconds, "stage_ms": {k: 1e3 * statistics.median(v) for k, v in stages.items()},
            "statuses": statuses, "joints": joints}


def _config(poses, gt, keypoints: bool, particles: int | None, generations: int | None, seed: int = 0):
    """The live configuration told the video's hand side and length (from its first frame); its
    tracker (PSO) seeded with ``seed``."""
    from live.pipeline import LiveConfig
    from tracker.pso import PSOConfig
    from tracker.run import infer_side_and_length

    side, length = infer_side_and_length(poses[0].astype(float), gt[0].astype(float))
    config = LiveConfig(keypoints=keypoints)
    config = replace(config, tracker=replace(config.tracker, side=side, hand_length_mm=length, seed=seed))
    if particles or generations:
        pso = config.tracker.pso
        config = replace(config, tracker=replace(config.tracker, pso=PSOConfig(particles or pso.particles,
                                                                              generations or pso.generations)))
    return config


def _accuracy(first: tuple, videos: int, frames: int, net, keypoints: bool, particles: int | None,
              generations: int | None, jpeg: tuple[int, ...] = (), motion: tuple[int, float] = (KEYFRAME_EVERY, 0.0),
              low_light: tuple[float, ...] = (), tracker_seeds: tuple[int, ...] = (0,)) -> dict:
    """MPJPE / PA-MPJPE pooled over the tracked frames of ``videos`` videos (module docstring),
    the first of them ``first`` (``_video``'s, already made); each video is tracked as rendered,
    again JPEG-compressed at each quality of ``jpeg`` and again taken in a dim scene at each gain
    of ``low_light`` (``depthnet.data.low_light``, the noise drawn from the video's seed and the
    frame's index), a fresh pipeline each time, once per tracker seed of ``tracker_seeds`` (the
    PSO's draw alone moves the pooled MPJPE by several mm: see docs/results.md). Returns the
    rendered videos' numbers pooled over every video and tracker seed, with each video's MPJPE
    (the mean over the tracker seeds), their median, each tracker seed's pooled MPJPE,
    ``"jpeg": {quality: the same}`` and ``"low_light": {gain: the same}``."""
    from depthnet.data import LOW_LIGHT_SEED, degraded
    from live.pipeline import LivePipeline
    from tracker.metrics import mpjpe, pa_mpjpe

    def degrade(rgb, variant, seed, n):
        if variant is None:
            return rgb
        kind, value = variant
        return degraded(rgb, **{"jpeg" if kind == "jpeg" else "low_light_gain": value},
                        rng=np.random.default_rng((LOW_LIGHT_SEED, seed, n)))

    variants = (None, *(("jpeg", q) for q in jpeg), *(("low_light", g) for g in low_light))
    runs = [(v, t) for v in variants for t in tracker_seeds]
    pred, per_video, truth = {r: [] for r in runs}, {r: {} for r in runs}, []
    for seed in range(VIDEO_SEED, VIDEO_SEED + videos):
        rgbs, gt, poses, camera = first if seed == VIDEO_SEED else _video(frames, seed, *motion)
        truth.append(gt)
        for v, t in runs:
            pipe = LivePipeline(camera, net, _config(poses, gt, keypoints, particles, generations, t))
            joints = np.full(gt.shape, np.nan)
            for n, rgb in enumerate(rgbs):
                r = pipe.process(degrade(rgb, v, seed, n))
                if r.status == "tracked":
                    joints[n] = r.joints_mm
            pipe.close()
            per_video[v, t][seed] = mpjpe(joints, gt)
            pred[v, t].append(joints)
    truth = np.concatenate(truth)

    def pooled(v):
        p = np.concatenate([np.concatenate(pred[v, t]) for t in tracker_seeds])
        every = np.concatenate([truth] * len(tracker_seeds))
        video = {s: float(np.mean([per_video[v, t][s] for t in tracker_seeds])) for s in per_video[v, tracker_seeds[0]]}
        return {"videos": videos, "tracker_seeds": list(tracker_seeds), "mpjpe_mm": mpjpe(p, every),
                "pa_mpjpe_mm": pa_mpjpe(p, every), "tracked_fraction": float(np.mean(np.isfinite(p).all(axis=(1, 2)))),
                "missed_videos": sorted(s for s, e in video.items() if not e <= MISSED_MM),
                "per_video_mpjpe_mm": video, "median_video_mpjpe_mm": float(np.median(list(video.values()))),
                "per_tracker_seed_mpjpe_mm": {t: mpjpe(np.concatenate(pred[v, t]), truth) for t in tracker_seeds}}

    return {**pooled(None), "jpeg": {q: pooled(("jpeg", q)) for q in jpeg},
            "low_light": {g: pooled(("low_light", g)) for g in low_light}}


def run(frames: int = 40, particles: int | None = None, generations: int | None = None, weights: str | None = None,
        keypoints: bool = True, videos: int = 1, jpeg: tuple[int, ...] = (), keyframe_every: int = KEYFRAME_EVERY,
        motion_blur: float = 0.0, low_light: tuple[float, ...] = (), tracker_seeds: tuple[int, ...] = (0,)) -> dict:
    from depthnet.model import DepthNet
    from depthnet.runtime import Inference
    from live.pipeline import LivePipeline
    from tracker.metrics import mpjpe, pa_mpjpe

    rgbs, gt, poses, camera = _video(frames, VIDEO_SEED, keyframe_every, motion_blur)
    net = DepthNet.load(weights) if weights else DepthNet.from_pretrained()
    pipe = LivePipeline(camera, net, _config(poses, gt, keypoints, particles, generations))
    pipe.process(rgbs[0])  # warm-up (numba compilation, the first inference)
    rows = {}
    for mode in ("sequential", "overlapped"):
        r = _pass(pipe, rgbs, mode == "overlapped")
        rows[mode] = {"fps": r["fps"], "stage_ms": r["stage_ms"], "mpjpe_mm": mpjpe(r["joints"], gt),
                      "pa_mpjpe_mm": pa_mpjpe(r["joints"], gt),
                      "tracked_fraction": r["statuses"].count("tracked") / len(r["statuses"])}
    pipe.close()
    torch_net = Inference(net, "torch")  # depthnet alone on the full frame, torch eager: the old baseline
    t0 = time.perf_counter()
    for rgb in rgbs[:10]:
        torch_net.predict(rgb)
    baseline = 10 / (time.perf_counter() - t0)
    from live.app import OVERLAP_MIN_CORES

    mode = "overlapped" if (os.cpu_count() or 1) > OVERLAP_MIN_CORES else "sequential"  # what live's --overlap auto runs
    accuracy = _accuracy((rgbs, gt, poses, camera), videos, frames, pipe.depthnet, keypoints, particles, generations,
                         tuple(jpeg), (keyframe_every, motion_blur), tuple(low_light), tuple(tracker_seeds)) \
        if videos > 1 or jpeg or low_light or tuple(tracker_seeds) != (0,) else None
    return {"fps": rows[mode]["fps"], "mode": mode, "rows": rows, "baseline_depthnet_torch_full_frame_fps": baseline,
            "videos": accuracy,
            "depthnet_backend": pipe.depthnet.backend,
            "budget": f"{pipe.tracker.config.pso.particles}x{pipe.tracker.config.pso.generations}",
            "keypoints": bool(keypoints and net.config.keypoints),
            "keyframe_every": keyframe_every, "motion_blur": motion_blur,
            "frames": len(rgbs), "commit": _commit(), "cpu": platform.processor() or platform.machine(),
            "machine": describe()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=40, help="video length")
    p.add_argument("--particles", type=int, default=None, help="PSO particles (default: the live default)")
    p.add_argument("--generations", type=int, default=None, help="PSO generations (default: the live default)")
    p.add_argument("--weights", default=None, help="depthnet weights (default: the shipped ones)")
    p.add_argument("--no-keypoints", action="store_true", help="do not give a keypoint network's keypoints to the tracker")
    p.add_argument("--videos", type=integer(1, 1000), default=1,
                   help="also pool accuracy over this many videos (seeds 4, 5, ...; module docstring)")
    p.add_argument("--jpeg", type=integer(1, 100), nargs="+", default=[], metavar="Q",
                   help="also track the videos JPEG-compressed at these qualities (a webcam's MJPEG, a video file)")
    p.add_argument("--low-light", type=number(1, 1000), nargs="+", default=[], metavar="GAIN",
                   help="also track the videos as taken in a scene GAIN times dimmer (the camera's gain raised as "
                        "much: shot and read noise; depthnet.data.low_light)")
    p.add_argument("--keyframe-every", type=integer(1, 10_000), default=KEYFRAME_EVERY, metavar="N",
                   help=f"the videos' keyframes N frames apart ({KEYFRAME_EVERY}: the generator's default; 3: a hand "
                        f"gesturing)")
    p.add_argument("--motion-blur", type=number(0, 1), default=0.0, metavar="E",
                   help="the videos' exposure as a share of the frame interval (synth --motion-blur)")
    p.add_argument("--tracker-seeds", type=integer(0, 2**31 - 1), nargs="+", default=[0], metavar="S",
                   help="track every video once per tracker (PSO) seed and pool them (the draw alone moves the "
                        "pooled MPJPE by several mm: compare networks over two or more)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if len(set(args.tracker_seeds)) < len(args.tracker_seeds):
        p.error(f"--tracker-seeds: each seed once (got {' '.join(map(str, args.tracker_seeds))})")
    res = run(args.frames, args.particles, args.generations, args.weights, not args.no_keypoints, args.videos,
              tuple(args.jpeg), args.keyframe_every, args.motion_blur, tuple(args.low_light), tuple(args.tracker_seeds))
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"live_speed  commit {res['commit']}  640x480, {res['frames']} frames, depthnet on {res['depthnet_backend']}, "
          f"PSO {res['budget']}, keypoints {'on' if res['keypoints'] else 'off'}, keyframes every "
          f"{res['keyframe_every']} frames, motion blur {res['motion_blur']}")
    print(machine_line(res['machine']))
    seq, ovl = res["rows"]["sequential"], res["rows"]["overlapped"]
    print(f"{'stage, median ms':<18}{'sequential':>12}{'overlapped':>12}")
    for k in seq["stage_ms"]:
        print(f"{k:<18}{seq['stage_ms'][k]:>12.1f}{ovl['stage_ms'][k]:>12.1f}")
    print(f"{'end to end fps':<18}{seq['fps']:>12.1f}{ovl['fps']:>12.1f}   ({ovl['fps'] / seq['fps']:.2f}x; "
          f"live --overlap auto runs {res['mode']} here)")
    for name, key in (("MPJPE mm", "mpjpe_mm"), ("PA-MPJPE mm", "pa_mpjpe_mm")):
        print(f"{name:<18}{seq[key]:>12.1f}{ovl[key]:>12.1f}")
    print(f"{'tracked':<18}{seq['tracked_fraction']:>12.0%}{ovl['tracked_fraction']:>12.0%}")
    if res["videos"]:
        for name, v in (("", res["videos"]), *((f"JPEG {q}: ", w) for q, w in res["videos"]["jpeg"].items()),
                        *((f"low light, gain {g:g}: ", w) for g, w in res["videos"]["low_light"].items())):
            seeds = v["per_tracker_seed_mpjpe_mm"]
            print(f"{name}{v['videos']} videos, pooled: MPJPE {v['mpjpe_mm']:.1f} mm, PA-MPJPE {v['pa_mpjpe_mm']:.1f} "
                  f"mm, tracked {v['tracked_fraction']:.0%}; per video median {v['median_video_mpjpe_mm']:.1f} mm; over "
                  f"{MISSED_MM:.0f} mm: {len(v['missed_videos'])} (seeds {' '.join(map(str, v['missed_videos'])) or '-'})"
                  + (f"; per tracker seed {', '.join(f'{t}: {e:.1f}' for t, e in seeds.items())}" if len(seeds) > 1
                     else ""))
    print(f"baseline: depthnet alone on the full frame with torch eager, {res['baseline_depthnet_torch_full_frame_fps']:.1f} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
