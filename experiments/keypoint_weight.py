"""Choose the tracker's keypoint weight lambda_p (issue 21) on validation sequences.

For each lambda_p, track each sequence from the truth of its first frame on depth estimated from
RGB alone (C2-rgb, ``depthnet-rgb``) and on the estimate scaled by the sensor (C2, ``depthnet``),
with 2D keypoints from a keypoint network (``--weights``) or, with ``--oracle-noise PX``, the true
2D joints plus Gaussian noise (what the term can give with a good keypoint detector; the depth
then comes from ``--weights`` or the shipped network). Prints MPJPE per (condition, lambda_p)
pooled over every frame; lambda_p = 0 is the tracker without keypoints.

    python -m experiments.keypoint_weight --data val21 val22 val23 --lambdas 0 10 30 100 \\
        [--weights runs/kp/model.pt] [--oracle-noise 3]
"""

from __future__ import annotations

import sys

import numpy as np

from handrgbd.args import CommandParser, existing_file, number
from handrgbd.joints import Keypoints
from handrgbd.recording import Recording
from handrgbd.sources import depthnet_provider, track_frames
from tracker.pso import PSOConfig
from tracker.run import truth_start
from tracker.tracking import TrackerConfig

__all__ = ["sweep", "main", "build_parser"]


def sweep(data: list[str], lambdas: list[float], weights: str | None = None, oracle_noise: float | None = None,
          particles: int = 64, generations: int = 25, seed: int = 0,
          progress: bool | str = False) -> dict[str, dict[float, float]]:
    """``{"C2-rgb": {lambda: MPJPE mm}, "C2": {...}}`` pooled over the frames of ``data``;
    ``progress`` as ``handrgbd.progress.Progress``'s mode (one step per tracked sequence)."""
    from handrgbd.progress import Progress

    out: dict[str, dict[float, float]] = {}
    bar = Progress(2 * len(lambdas) * len(data), "keypoint weight", "sequence", progress)
    for label, rgb_only in (("C2-rgb", True), ("C2", False)):
        out[label] = {}
        for lam in lambdas:
            errors = []
            for folder in data:
                rec = Recording(folder)
                start, side, length = truth_start(rec)
                config = TrackerConfig(side=side, hand_length_mm=length, pso=PSOConfig(particles, generations),
                                       keypoint_weight=lam, seed=seed)
                network_keypoints = lam > 0 and oracle_noise is None
                source = depthnet_provider(weights, rgb_only=rgb_only, keypoints=network_keypoints)
                rng = np.random.default_rng(seed)

                def provider(frame, state, source=source, rng=rng, lam=lam):
                    obs = source(frame, state)
                    if obs is None or lam == 0 or oracle_noise is None:
                        return obs
                    uv = frame.camera.project(frame.joints_mm) + rng.normal(0.0, oracle_noise, (21, 2))
                    return obs._replace(keypoints=Keypoints(uv, np.ones(21)))

                joints = np.full((len(rec), 21, 3), np.nan)
                for step in track_frames(rec, provider, config, start):
                    if step.result is not None and step.result.joints_mm is not None:
                        joints[step.frame.index] = step.result.joints_mm
                errors.append(np.linalg.norm(joints - rec.joints_mm, axis=-1).mean(-1))
                bar.update()
            e = np.concatenate(errors)
            out[label][lam] = float(np.nanmean(e)) if np.isfinite(e).any() else float("nan")
    bar.close()
    return out


def build_parser() -> CommandParser:
    p = CommandParser(prog="python -m experiments.keypoint_weight", description=__doc__.split("\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="validation recordings with joints.npy")
    p.add_argument("--lambdas", nargs="+", type=number(0, 1e6), default=[0.0, 10.0, 30.0, 100.0],
                   help="keypoint weights to try")
    p.add_argument("--weights", type=existing_file, default=None,
                   help="depthnet weights (a keypoint network unless --oracle-noise; default: the shipped ones)")
    p.add_argument("--oracle-noise", type=number(0, 1000), default=None, metavar="PX",
                   help="use the true 2D joints plus this much Gaussian noise (pixels) as the keypoints")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: a log line every few seconds instead")
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        res = sweep(args.data, args.lambdas, args.weights, args.oracle_noise,
                    progress="log" if args.no_progress else True)
    except (ValueError, OSError) as e:
        return p.fail(e)
    print(f"{'MPJPE (mm)':<12}" + "".join(f"{f'lambda {lam:g}':>14}" for lam in args.lambdas))
    for label, row in res.items():
        print(f"{label:<12}" + "".join(f"{row[lam]:>14.1f}" for lam in args.lambdas))
    return 0


if __name__ == "__main__":
    sys.exit(main())
