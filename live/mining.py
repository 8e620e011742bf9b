"""Hard negatives for depthnet's keypoints: squares without a hand that the live localiser is
sure of (``handrgbd mine``).

The live localiser (``live.pipeline.HandFinder``) picks, among a frame's candidate squares, the
one whose keypoints depthnet is surest of. Every training sample of depthnet held a hand, so
nothing taught it to be unsure where there is none, and on webcam-sized frames some clutter (a
skin-coloured cylinder's end, a portrait's neck, a patterned background) wins over a small or
unsure hand. Random hand-free squares rarely hold such things (docs/depthnet.md, "Hand-free
squares"). So, as detectors are trained (hard negative mining: Sung and Poggio 1998; Dalal and
Triggs 2005; Felzenszwalb et al. 2010), the squares are mined with the localiser itself: on
full frames with the hands labelled (``handrgbd synth --full-frame``), every candidate it
weighs (``HandFinder.candidates``) that keeps clear of the hands and of what eq. 1 keeps with
them (``depthnet.data.hand_exclusion``) and whose keypoints' mean confidence reaches
``min_confidence`` is written to a mined squares file (``depthnet.data.write_mined_squares``),
which ``handrgbd train --hand-free-mined`` cuts a share of its hand-free samples from.

The same pass measures the localiser on those frames (``mine``'s summary): how often its answer
(``HandFinder.localise``) holds the hand's centre, and how often a hand-free candidate is surer
than every candidate on the hand.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import cv2
import numpy as np

from depthnet.data import MinedSquare, check_hand_free_source, hand_exclusion, square_sum, write_mined_squares
from handrgbd.args import CommandParser, integer, number, out_path
from handrgbd.recording import Recording
from live.pipeline import HandFinder

__all__ = ["MIN_CONFIDENCE", "mine", "mine_frame", "mine_main"]

log = logging.getLogger(__name__)

#: a hand-free candidate is mined when its keypoints' mean confidence reaches this (on the test
#: full frames of docs/depthnet.md the shipped network's hands' surest candidates score 0.54 on
#: median, 11% of the hand-free candidates 0.2 or more)
MIN_CONFIDENCE = 0.2


def mine_frame(finder: HandFinder, rgb: np.ndarray, exclude: np.ndarray, hand: np.ndarray,
               min_confidence: float = MIN_CONFIDENCE) -> dict:
    """One full frame ``rgb (H, W, 3) uint8`` with its hands' pixels ``hand (H, W) bool`` and the
    pixels no hand-free square may touch ``exclude (H, W) bool`` (``hand_exclusion``) ->
    ``{"squares": [(x0, y0, side, confidence)] mined, "best_free": the surest hand-free
    candidate's confidence (0 without one), "best_hand": the surest candidate holding hand pixels
    (0 without one), "found": whether localise's square holds the hand's centre (the centre of its
    pixels' box)}``."""
    ex, hd = cv2.integral(exclude.astype(np.uint8)), cv2.integral(hand.astype(np.uint8))
    squares, best_free, best_hand = [], 0.0, 0.0
    with finder.one_frame():  # the squares localise weighs are among the candidates: predicted once
        candidates, located = finder.candidates(rgb), finder.localise(rgb)
    for crop, confidence in candidates:
        x0, y0, x1, y1 = (int(round(v)) for v in crop.box)
        side = max(x1 - x0, y1 - y0, 16)  # as the finder cuts it (HandFinder._predict_crop)
        if square_sum(ex, x0, y0, side) == 0:
            best_free = max(best_free, confidence)
            if confidence >= min_confidence:
                squares.append((x0, y0, side, confidence))
        elif square_sum(hd, x0, y0, side) > 0:
            best_hand = max(best_hand, confidence)
    ys, xs = np.nonzero(hand)
    found = bool(xs.size) and located is not None and \
        located.x0 <= (xs.min() + xs.max() + 1) / 2 <= located.x1 and \
        located.y0 <= (ys.min() + ys.max() + 1) / 2 <= located.y1
    return {"squares": squares, "best_free": best_free, "best_hand": best_hand, "found": found}


def mine(finder: HandFinder, folders: list[str | Path], max_frames: int | None = None,
         min_confidence: float = MIN_CONFIDENCE, progress: bool | str = False) -> tuple[list[MinedSquare], dict]:
    """Mine full-frame recordings (rgb/, depth/ or depth_gt/, mask/ for every frame; ``max_frames``:
    that many spread over each) -> the mined squares and a summary: ``{"frames", "squares",
    "found"`` (the share of frames whose localised square holds the hand), ``"free_surer"`` (the
    share of frames where a hand-free candidate is surer than every candidate on the hand),
    ``"best_free_median", "best_free_p90", "best_hand_median", "min_confidence"}``."""
    from handrgbd.progress import Progress

    recordings = [Recording(f) for f in folders]
    for rec in recordings:
        check_hand_free_source(rec, "mining")
    squares, found, surer, best_free, best_hand = [], [], [], [], []
    plan = []
    for rec in recordings:
        plan += [(rec, int(i)) for i in rec.spread(max_frames)]
    bar = Progress(len(plan), "mining", "frame", progress)
    for rec, i in plan:
        bar.update()
        f = rec[i]
        hand = f.mask > 0
        if not hand.any():
            continue
        depth = f.clean_depth_mm
        m = mine_frame(finder, f.rgb, hand_exclusion(depth, hand), hand, min_confidence)
        folder = str(Path(rec.path).resolve())
        squares += [MinedSquare(folder, f.name, x0, y0, side, c) for x0, y0, side, c in m["squares"]]
        found.append(m["found"])
        surer.append(m["best_free"] > m["best_hand"])
        best_free.append(m["best_free"])
        best_hand.append(m["best_hand"])
    bar.close()
    if not found:
        raise ValueError(f"{', '.join(str(r.path) for r in recordings)}: no frame with a labelled hand to mine")
    return squares, {"frames": len(found), "squares": len(squares), "found": float(np.mean(found)),
                     "free_surer": float(np.mean(surer)), "best_free_median": float(np.median(best_free)),
                     "best_free_p90": float(np.percentile(best_free, 90)),
                     "best_hand_median": float(np.median(best_hand)), "min_confidence": min_confidence}


def build_parser() -> CommandParser:
    p = CommandParser(prog="handrgbd mine", description=(
        "Hard negatives for depthnet's keypoints: run the live localiser on full frames with the hands "
        "labelled (handrgbd synth --full-frame), report how often it finds the hand, and write the squares "
        "without a hand it was sure of (--out: for handrgbd train --hand-free-mined)."))
    p.add_argument("--data", nargs="+", required=True, metavar="DIR",
                   help="full-frame recordings (rgb/, depth/ or depth_gt/, mask/ for every frame)")
    p.add_argument("--weights", default=None, help="depthnet weights with keypoints (default: the shipped cpu weights)")
    p.add_argument("--frames", type=integer(1), default=None, metavar="N", help="N frames spread over each folder")
    p.add_argument("--min-confidence", type=number(0, 1), default=MIN_CONFIDENCE, metavar="C",
                   help=f"mine hand-free squares whose keypoints' mean confidence reaches C (default {MIN_CONFIDENCE})")
    p.add_argument("--out", type=out_path, default=None, metavar="FILE.csv", help="write the mined squares here")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: a log line every few seconds instead")
    return p


def mine_main(argv: list[str] | None = None) -> int:
    import json

    from depthnet.model import DepthNet, pretrained_path
    from depthnet.runtime import Inference
    from handrgbd.outputs import check_output_file

    p = build_parser()
    args = p.parse_args(argv)
    try:
        if args.out is not None:
            check_output_file(args.out, args.overwrite, "--out")
        net = DepthNet.load(args.weights or pretrained_path("cpu"))
        if not net.config.keypoints:
            raise ValueError(f"{args.weights}: mining needs a network with keypoint heads (how sure it is of a hand)")
        squares, summary = mine(HandFinder(Inference(net)), args.data, args.frames, args.min_confidence,
                                progress="log" if args.no_progress else True)
        if args.out is not None:
            write_mined_squares(args.out, squares)
    except (ValueError, OSError) as e:
        return p.fail(e)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['frames']} frames: the localised square holds the hand in {100 * summary['found']:.1f}%; "
              f"a hand-free candidate surer than the hand's in {100 * summary['free_surer']:.1f}% (surest hand-free "
              f"median {summary['best_free_median']:.3f}, 90th percentile {summary['best_free_p90']:.3f}; the hand's "
              f"median {summary['best_hand_median']:.3f}); {summary['squares']} squares at confidence >= "
              f"{summary['min_confidence']:g}" + (f" written to {args.out}" if args.out is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(mine_main())
