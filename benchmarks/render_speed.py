"""Hypotheses rendered per second: the tracker's workload, instanced path vs a naive baseline.

Workload: 64 hypotheses per batch, each 37 primitives (22 spheres + 15 cones, laid out like a
hand about 600 mm from the camera, every hypothesis jittered), into 64 x 64 tiles of a region
of interest around the hand. Rows:

* ``instanced``: one instanced draw per primitive kind (2 draws per batch) + depth read-back.
* ``naive``: the baseline in the same run, one draw call per primitive (2,368 per batch).
* ``instanced+sums``: instanced rendering plus the objective's three sums per hypothesis.

Run: ``python -m benchmarks.render_speed [--repeats 15] [--json]``. Medians over repeats, after
warm-up; ratios against the naive baseline.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks.machine import describe
from benchmarks.machine import line as machine_line
from handrgbd.camera import CameraIntrinsics
from renderer.context import create_context
from renderer.projection import RegionOfInterest
from renderer.tiled import HypothesisRenderer, PrimitiveKind, PrimitiveSet, tile_sums

NUM_SPHERES, NUM_CONES = 22, 15


def hand_like_workload(num_hypotheses: int, seed: int = 0):
    """A hand-shaped layout of 22 spheres + 15 cones (mm, camera frame), jittered per hypothesis.

    Returns ``(PrimitiveSet, transforms (N, 37, 4, 4), camera, roi)``. The layout only has to
    cost what a hand costs (sizes, overlap, screen coverage); the hand model itself lives in
    the tracker.
    """
    rng = np.random.default_rng(seed)
    spheres, cones = [], []
    palm_centre = np.array([0.0, 0.0, 600.0])
    for k in range(2):  # palm: two flattened spheres (ellipsoids)
        spheres.append((palm_centre + [0, -15 + 30 * k, 0], (42.0, 22.0, 14.0)))
    starts = [(-45, 20), (-25, -45), (-5, -50), (15, -47), (33, -40)]  # thumb, index..pinky bases
    lengths = [(35, 30, 25), (40, 25, 20), (45, 28, 22), (42, 27, 21), (32, 20, 18)]
    for f, ((x0, y0), segs) in enumerate(zip(starts, lengths)):
        p = palm_centre + [x0, y0, 0]
        direction = np.array([-0.6, -0.8, 0.0]) if f == 0 else np.array([0.05 * (f - 2), -1.0, 0.0])
        direction /= np.linalg.norm(direction)
        radius = 10.0 if f else 11.0
        spheres.append((p, (radius,) * 3))
        for length in segs:
            cones.append((p, direction, length, radius))
            p = p + direction * length
            radius *= 0.9
            spheres.append((p, (radius,) * 3))
    spheres = spheres[:NUM_SPHERES]
    cones = cones[:NUM_CONES]
    base = []
    for centre, scale in spheres:
        m = np.diag([*scale, 1.0])
        m[:3, 3] = centre
        base.append(m)
    for start, direction, length, radius in cones:
        z = direction
        x = np.cross(z, [0.0, 0.0, 1.0])
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        m = np.eye(4)
        m[:3, :3] = np.stack([x * radius, y * radius, z * length], axis=1)
        m[:3, 3] = start
        base.append(m)
    base = np.stack(base)
    prims = PrimitiveSet([PrimitiveKind.SPHERE] * len(spheres) + [PrimitiveKind.CONE] * len(cones),
                         [1.0] * len(spheres) + [0.9] * len(cones))
    transforms = np.repeat(base[None], num_hypotheses, axis=0)
    transforms[:, :, :3, 3] += rng.normal(0.0, 6.0, (num_hypotheses, 1, 3))
    transforms[:, :, :3, 3] += rng.normal(0.0, 2.0, (num_hypotheses, base.shape[0], 3))
    camera = CameraIntrinsics(525.0, 525.0, 319.5, 239.5, 640, 480)
    uv = camera.project(base[:, :3, 3])
    roi = RegionOfInterest.from_points(uv, margin=0.1)
    return prims, transforms, camera, roi


def _median_seconds(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run(hypotheses: int = 64, tile_size: int = 64, repeats: int = 15, backend: str | None = None) -> dict:
    prims, transforms, camera, roi = hand_like_workload(hypotheses)
    with create_context(backend) as ctx:
        info = ctx.info()
        with HypothesisRenderer(prims, tile_size=tile_size, capacity=hypotheses, context=ctx) as r:
            observed = r.render(transforms[:1], camera, roi)[0]
            mask = observed > 0
            t_inst = _median_seconds(lambda: r.render(transforms, camera, roi), repeats)
            t_naive = _median_seconds(lambda: r.render(transforms, camera, roi, instanced=False),
                                      max(3, repeats // 3))
            t_sums = _median_seconds(lambda: tile_sums(r.render(transforms, camera, roi), observed, mask, 40.0),
                                     repeats)
            coverage = float((r.render(transforms, camera, roi) > 0).mean())
    return {
        "hypotheses_per_s": hypotheses / t_inst,
        "baseline_hypotheses_per_s": hypotheses / t_naive,
        "scored_hypotheses_per_s": hypotheses / t_sums,
        "speedup_vs_baseline": t_naive / t_inst,
        "batch_ms": {"instanced": 1e3 * t_inst, "naive": 1e3 * t_naive, "instanced+sums": 1e3 * t_sums},
        "renderer": info["renderer"],
        "gl_version": info["version"],
        "backend": info["backend"],
        "workload": {"hypotheses_per_batch": hypotheses, "primitives": len(prims), "tile": tile_size,
                     "tile_coverage": round(coverage, 3)},
        "repeats": repeats,
        "commit": _commit(),
        "cpu": platform.processor() or platform.machine(), "machine": describe(),
    }


def save_tiles_png(path: str, hypotheses: int, tile_size: int, backend: str | None = None) -> None:
    """Render the workload once and save the tile grid (near = bright), for the README."""
    import cv2

    from handrgbd.outputs import write_image

    prims, transforms, camera, roi = hand_like_workload(hypotheses)
    with create_context(backend) as ctx, HypothesisRenderer(prims, tile_size, hypotheses, context=ctx) as r:
        depth = r.render(transforms, camera, roi)
    cols = r.cols
    rows = -(-hypotheses // cols)
    grid = np.zeros((rows * tile_size, cols * tile_size), np.float32)
    for n, tile in enumerate(depth):
        i, j = divmod(n, cols)
        grid[i * tile_size:(i + 1) * tile_size, j * tile_size:(j + 1) * tile_size] = tile
    valid = grid > 0
    lo, hi = grid[valid].min(), grid[valid].max()
    scaled = np.where(valid, 255 - (grid - lo) / max(hi - lo, 1e-6) * 200, 0).astype(np.uint8)
    colour = cv2.applyColorMap(scaled, cv2.COLORMAP_INFERNO)  # BGR
    colour[~valid] = 0
    write_image(path, colour[..., ::-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hypotheses", type=int, default=64, help="hypotheses per batch (default 64)")
    parser.add_argument("--tile", type=int, default=64, help="tile side in pixels (default 64)")
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per row (median reported)")
    parser.add_argument("--backend", default=None, help="GL backend: egl, osmesa, glfw (default: auto)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--png", default=None, help="also save the batch's depth tiles as a colour-mapped PNG")
    args = parser.parse_args(argv)
    res = run(args.hypotheses, args.tile, args.repeats, args.backend)
    if args.png:
        save_tiles_png(args.png, args.hypotheses, args.tile, args.backend)
    if args.json:
        print(json.dumps(res))
        return 0
    w = res["workload"]
    print(f"render_speed  commit {res['commit']}  cpu {res['cpu']}  python {sys.version.split()[0]}")
    print(machine_line(res['machine']))
    print(f"GL: {res['renderer']} | {res['gl_version']} | backend {res['backend']}")
    print(f"workload: {w['hypotheses_per_batch']} hypotheses x {w['primitives']} primitives, "
          f"{w['tile']}x{w['tile']} tiles (coverage {w['tile_coverage']:.0%}), median of {res['repeats']}")
    print(f"{'path':<16}{'ms/batch':>10}{'hyp/s':>10}{'vs naive':>10}")
    naive = res["batch_ms"]["naive"]
    for name, ms in res["batch_ms"].items():
        print(f"{name:<16}{ms:>10.2f}{w['hypotheses_per_batch'] / ms * 1e3:>10.0f}{naive / ms:>9.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
