"""Hand detection in depth: milliseconds per frame, against the paper's eq. (1) in the same run.

Rows, medians over the frames of each recording after one warm-up frame:

- ``eq1``: the paper's foreground (valid pixels within 300 mm of the nearest), the baseline;
- ``detect``: ``tracker.detect.detect_hand`` (surface graph, geodesic extrema, candidates and
  the hand's full-resolution region), what (re-)initialisation costs;
- ``region``: ``hand_region`` from a palm (here the frame's own detected one; the tracker passes
  the previous solution's palm centre and, as four more seed points, its knuckles), what every
  tracked frame costs; frames where nothing is detected are left out of this row.

On the real SR305 frames (640 x 480, a person in view) and the embedded synthetic sequence
(256 x 256 crops). Run: ``python -m benchmarks.detect_speed [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.machine import describe
from benchmarks.machine import line as machine_line
from benchmarks.render_speed import _commit
from handrgbd.recording import Recording
from tracker.detect import detect_hand, hand_region
from tracker.tracking import depth_foreground

ROOT = Path(__file__).resolve().parent.parent
DATA = {"sr305 640x480": ROOT / "tests/data/sr305", "embedded 256x256": ROOT / "data/embedded/test_sequence"}


def _median_ms(fn, frames) -> float:
    if not frames:
        return float("nan")
    fn(frames[0])  # warm-up
    times = []
    for f in frames:
        t = time.perf_counter()
        fn(f)
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def measure(folder: Path) -> dict:
    frames = list(Recording(folder))
    palms = {}
    for f in frames:
        found = detect_hand(f.depth_mm, f.camera)
        if found is not None:  # the region is timed from this frame's detected palm (on the surface)
            palms[f.name] = found.palm_mm
    with_hand = [f for f in frames if f.name in palms]
    rows = {"eq1": _median_ms(lambda f: depth_foreground(f.depth_mm), frames),
            "detect": _median_ms(lambda f: detect_hand(f.depth_mm, f.camera), frames),
            "region": _median_ms(lambda f: hand_region(f.depth_mm, f.camera, palms[f.name]), with_hand)}
    return {"frames": len(frames), "frames_with_hand": len(with_hand), "ms": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    out = {"data": {name: measure(folder) for name, folder in DATA.items()}, "commit": _commit(),
           "machine": describe()}
    if args.json:
        print(json.dumps(out))
        return 0
    print(f"detect_speed  commit {out['commit']}  median ms per frame")
    print(machine_line(out["machine"]))
    print(f"{'recording':<18}{'frames':>7}{'eq1':>8}{'detect':>9}{'region':>9}{'detect/eq1':>12}{'region/eq1':>12}")
    for name, r in out["data"].items():
        ms = r["ms"]
        print(f"{name:<18}{r['frames']:>7}{ms['eq1']:>8.2f}{ms['detect']:>9.2f}{ms['region']:>9.2f}"
              f"{ms['detect'] / ms['eq1']:>12.1f}{ms['region'] / ms['eq1']:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
