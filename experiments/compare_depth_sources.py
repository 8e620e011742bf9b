"""Compare trackers across depth sources: one command, one table, one plot.

How much does a depth source cost the tracker, and how does the pipeline stand against an
RGB-only tool? For every recording folder with ground-truth joints, every named depth source
and every tracker, track the sequence and score it: MPJPE, root-relative MPJPE, PA-MPJPE, 3D
PCK AUC (0-50 mm), fraction of frames lost, fps.

Depth sources are *providers*: ``provider(frame, state) -> Observation``, where ``state`` is one
dict per tracked sequence (it holds ``hand_length_mm``, the tracker's hand length, and whatever the
provider keeps between frames); register your own in ``PROVIDERS`` (see docs/compare.md). Built in:

* ``clean``: ``depth_gt/``, the noise-free rendered depth;
* ``sensor``: ``depth/``, the Kinect-like sensor depth;
* ``degraded:NOISE_MM:HOLES``: the sensor depth with extra Gaussian noise and a fraction of
  pixels dropped (e.g. ``degraded:8:0.3``);
* ``depthnet`` / ``depthnet:WEIGHTS``: depth estimated from RGB, made metric with the sensor's
  mean hand depth (the paper's C2), with depthnet's mask;
* ``depthnet-rgb`` / ``depthnet-rgb:WEIGHTS``: the same from RGB alone (the distance is fitted by
  the tracker: C2-rgb).

Trackers: ``pso:PARTICLESxGENERATIONS[:BACKEND][+OPTION]`` (ours; ``+forearm`` / ``+no-forearm``
set the model's forearm, ``+occluders`` scores the surfaces outside the hand mask as occluders,
``+whole-region`` keeps sensor depth's hand region as grown (the tracker before
``TrackerConfig.region_margin_mm``), ``+kp-modes`` lets each keypoint match any of its heatmap's
modes (``TrackerConfig.keypoint_modes`` 3), ``+prior`` / ``+no-prior`` the finger angles' pose
prior at weight 1 (the default) / 0 (``TrackerConfig.pose_prior_weight``), ``+grid-start`` the
sensor-depth start from the orientation grid instead of the learned start's poses
(``TrackerConfig.learned_start`` 0), ``+no-hand-split`` the detected region as it is
(``TrackerConfig.hand_split`` False), ``TRACKER_OPTIONS``), and ``mediapipe``: MediaPipe Hands
0.10.21 world landmarks from RGB (compared root-relative and after Procrustes alignment; its
absolute MPJPE is not defined).
Without the ``handrgbd[mediapipe]`` extra that row says how to install it instead of failing.

Outputs: a terminal table, ``OUT/comparison.csv``, ``OUT/comparison.json`` (list of rows),
``OUT/pck.png`` (one curve per row), and with several data folders or tracker seeds (``--seeds``)
``OUT/pooled.json``: each (source, tracker) pooled over all its frames (:func:`pooled`). Rows run
in parallel (``--workers``) with a progress bar; finished rows are kept in ``OUT/rows/`` and
reused when the command is run again (keyed by data, source, tracker, seed and the digest of a
depthnet source's weights).

    python -m experiments.compare_depth_sources --data data/embedded/test_sequence \\
        --sources clean sensor degraded:8:0.3 depthnet depthnet-rgb --trackers pso:64x25 mediapipe
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from handrgbd.args import MAX_WORKERS, SEED_MAX, CommandParser, frame_range, integer, out_path
from handrgbd.outputs import check_outputs, finite_or_none, make_folder, save_figure, undefined_reasons, write_csv, \
    write_json
from handrgbd.recording import Recording
from handrgbd.sources import PROVIDERS, Observation, make_provider, missing_images, source_arg, weights_path
from tracker.metrics import PCK_THRESHOLDS_MM, auc, pa_mpjpe, pck_curve, root_relative_mpjpe
from tracker.pose import SIDES

log = logging.getLogger(__name__)

__all__ = ["Observation", "PROVIDERS", "make_provider", "run_row", "compare", "pooled", "format_table", "main",
           "build_parser", "parse_tracker"]

DEFAULT_DATA = str(Path(__file__).resolve().parents[1] / "data" / "embedded" / "test_sequence")
MEDIAPIPE_HINT = "pip install 'handrgbd[mediapipe]'  (mediapipe==0.10.21; it pins numpy<2: use a separate venv)"


#: ``pso:PxG[:BACKEND]+OPTION``: tracker options -> the ``TrackerConfig`` fields they set
TRACKER_OPTIONS = {"forearm": {"forearm": True}, "no-forearm": {"forearm": False}, "occluders": {"occluders": True},
                   "whole-region": {"region_margin_mm": None}, "kp-modes": {"keypoint_modes": 3},
                   "prior": {"pose_prior_weight": 1.0}, "no-prior": {"pose_prior_weight": 0.0},
                   "grid-start": {"learned_start": 0}, "no-hand-split": {"hand_split": False}}


class TrackerSpec(NamedTuple):
    """A parsed ``pso:`` tracker: swarm size, scoring backend, and ``TrackerConfig`` overrides
    from its ``+OPTION`` suffixes (``TRACKER_OPTIONS``)."""

    particles: int
    generations: int
    backend: str
    overrides: dict


def parse_tracker(spec: str) -> TrackerSpec | None:
    """``pso:PxG[:backend][+option...]`` -> ``TrackerSpec``; ``mediapipe`` -> None. Options:
    ``+forearm`` / ``+no-forearm`` (the model's forearm on or off, ``TrackerConfig.forearm``),
    ``+occluders`` (``TrackerConfig.occluders``), ``+whole-region`` (sensor depth's hand region as
    grown, without ``TrackerConfig.region_margin_mm``'s rule), ``+kp-modes`` (keypoints matched to
    any of their heatmaps' modes, ``TrackerConfig.keypoint_modes`` 3). Raises ``ValueError`` saying what is wrong."""
    if spec == "mediapipe":
        return None
    from tracker.pso import MAX_GENERATIONS, MAX_PARTICLES

    spec, *options = spec.split("+")
    parts = spec.split(":")
    if parts[0] != "pso" or len(parts) > 3:
        raise ValueError("must be pso:PARTICLESxGENERATIONS[:auto|gl|cpu][+OPTION] or mediapipe")
    budget = (parts[1] if len(parts) > 1 else "64x25").lower().split("x")
    try:
        particles, generations = (int(x, 10) for x in budget)
    except ValueError:
        raise ValueError("pso:PxG needs two integers, e.g. pso:64x25") from None
    if not (2 <= particles <= MAX_PARTICLES and 1 <= generations <= MAX_GENERATIONS):
        raise ValueError(f"pso:PxG needs 2-{MAX_PARTICLES} particles and 1-{MAX_GENERATIONS} generations")
    backend = parts[2] if len(parts) > 2 else "auto"
    if backend not in ("auto", "gl", "cpu"):
        raise ValueError("the backend of pso:PxG:BACKEND must be auto, gl or cpu")
    overrides = {}
    for option in options:
        if option not in TRACKER_OPTIONS:
            raise ValueError(f"unknown tracker option +{option}; choose from "
                             f"{', '.join('+' + o for o in TRACKER_OPTIONS)}")
        overrides.update(TRACKER_OPTIONS[option])
    return TrackerSpec(particles, generations, backend, overrides)


def _tracker_arg(text: str) -> str:
    """argparse type of ``--trackers``."""
    try:
        parse_tracker(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"{e} (got {text!r})") from None
    return text


@dataclass(frozen=True)
class Row:
    """One table row. ``inputs`` fingerprints what the name does not say (the weights file's
    digest for depthnet sources), so a cached row is not reused after the weights change.
    ``frames``: a ``--frames`` range (``"A:B"``, ``""``: every frame); ``side``: ``"truth"`` (the
    true hand's side) or the tracker's ``side`` at automatic initialisation."""

    data: str
    source: str
    tracker: str
    inputs: str = ""
    seed: int = 0
    init: str = "gt"
    frames: str = ""
    side: str = "truth"

    @property
    def key(self) -> str:
        # defaults add nothing, keeping the keys rows were cached under before
        extra = "".join([f"|seed={self.seed}" if self.seed else "", f"|init={self.init}" if self.init != "gt" else "",
                         f"|frames={self.frames}" if self.frames else "",
                         f"|side={self.side}" if self.side != "truth" else ""])
        return hashlib.sha1(f"{self.data}|{self.source}|{self.tracker}|{self.inputs}{extra}".encode()).hexdigest()[:16]

    @property
    def reported_seed(self) -> int | None:
        """The seed a result row carries: None for MediaPipe, which has none."""
        return None if self.tracker == "mediapipe" else self.seed

    def recording(self) -> Recording:
        """The row's frames of its data folder."""
        return Recording(self.data).select(_frames_slice(self.frames))


def _frames_slice(text: str) -> slice | None:
    """``"A:B"`` (a ``--frames`` value) as a slice; ``""``: None (every frame)."""
    from handrgbd.args import frame_range

    return frame_range(text) if text else None


def _inputs_fingerprint(source: str) -> str:
    """The digest of the weights a depthnet source uses ('' for the other sources)."""
    from depthnet.model import file_digest

    path = weights_path(source)
    return "" if path is None else file_digest(path)


#: a frame reported "tracked" whose MPJPE is above this is wrongly tracked (drift not noticed)
WRONG_TRACK_MM = 50.0


def _metrics(pred: np.ndarray, gt: np.ndarray, statuses: list[str], seconds: float, absolute: bool = True) -> dict:
    curve = pck_curve(pred, gt)
    from tracker.metrics import mpjpe

    scored = int((np.isfinite(pred).all(axis=(1, 2)) & np.isfinite(gt).all(axis=(1, 2))).sum())  # as the metrics
    wrong = None
    if absolute and statuses:
        per_frame = np.linalg.norm(pred - gt, axis=-1).mean(-1)  # NaN (never "wrong") without joints
        wrong = float(np.mean([s == "tracked" and e > WRONG_TRACK_MM for s, e in zip(statuses, per_frame)]))
    return {"scored_frames": scored, "wrong_tracked_fraction": wrong,
            "mpjpe_mm": mpjpe(pred, gt) if absolute else None, "rr_mpjpe_mm": root_relative_mpjpe(pred, gt),
            "pa_mpjpe_mm": pa_mpjpe(pred, gt), "pck_auc_0_50": auc(curve) if absolute else None,
            "lost_fraction": float(np.mean([s != "tracked" for s in statuses])) if statuses else None,
            "fps": len(statuses) / seconds if seconds > 0 else None,
            "pck_curve": curve.tolist() if absolute else None}


def _run_pso(row: Row, rec: Recording, spec: str) -> dict:
    from handrgbd.sources import track_frames
    from tracker.pso import PSOConfig
    from tracker.run import truth_start
    from tracker.tracking import TrackerConfig

    particles, generations, backend, overrides = parse_tracker(spec)
    provider = make_provider(row.source)
    start, side, length = truth_start(rec)  # poses.npy, or fitted to frame 0's joints (init "auto": side, length)
    if row.init == "gt" and row.side not in ("truth", "auto", side):
        raise ValueError(f"{rec.path}: --side {row.side}, but the true hand is a {side} hand, and a start from the "
                         f"truth (--init gt) needs its side: use --side truth or auto, or --init auto")
    config = TrackerConfig(side=side if row.side == "truth" else row.side, hand_length_mm=length,
                           pso=PSOConfig(particles, generations), backend=backend, seed=row.seed, **overrides)
    joints = np.full((len(rec), 21, 3), np.nan)
    statuses, sides, seconds, usable = [], [], 0.0, 0
    try:
        for step in track_frames(rec, provider, config, start if row.init == "gt" else None, start_side=side):
            statuses.append(step.status)
            usable += step.usable
            if step.result is not None:
                seconds += step.result.seconds
                sides.append(step.result.side)
                if step.result.joints_mm is not None:
                    joints[step.frame.index] = step.result.joints_mm
    except ValueError as e:
        raise ValueError(f"{e} (source {row.source})") from e
    if not usable:
        raise ValueError(f"{rec.path}: source {row.source} gives no frame usable depth (every reading is 0 or past "
                         f"10 m, or depthnet found no hand); check the recording's depth and depth_unit_mm in "
                         f"camera.json")
    res = _metrics(joints, rec.joints_mm, statuses, seconds)
    res["sides"] = {s: sides.count(s) for s in ("right", "left")}  # frames tracked as each side
    return res


def _run_mediapipe(row: Row, rec: Recording) -> dict:
    """MediaPipe Hands world landmarks (metres, hand-centred) -> mm, compared root-relative / PA."""
    try:
        import mediapipe as mp  # noqa: F401
    except ImportError:
        return {"error": f"mediapipe is not installed: {MEDIAPIPE_HINT}"}
    import time

    hands = mp.solutions.hands.Hands(static_image_mode=False, max_num_hands=1, model_complexity=1)
    joints = np.full((len(rec), 21, 3), np.nan)
    statuses, t0 = [], time.perf_counter()
    try:
        for i in range(len(rec)):
            result = hands.process(rec[i].rgb)
            if result.multi_hand_world_landmarks:
                lm = result.multi_hand_world_landmarks[0].landmark
                joints[i] = np.array([[p.x, p.y, p.z] for p in lm]) * 1000.0
                statuses.append("tracked")
            else:
                statuses.append("no_hand")
    finally:
        hands.close()
    return _metrics(joints, rec.joints_mm, statuses, time.perf_counter() - t0, absolute=False)


def run_row(row: Row) -> dict:
    """Track one (data, source, tracker) combination; returns the row's fields."""
    rec = row.recording()
    if not rec.has_joints:
        raise ValueError(f"{rec.path}: comparison needs ground-truth joints.npy")
    source = "rgb" if row.tracker == "mediapipe" else row.source
    head = {"data": row.data, "source": source, "tracker": row.tracker, "seed": row.reported_seed,
            "init": None if row.tracker == "mediapipe" else row.init, "frame_range": row.frames or None,
            "side": None if row.tracker == "mediapipe" else row.side, "frames": len(rec)}
    lacking = missing_images(rec, "depthnet-rgb" if row.tracker == "mediapipe" else row.source)
    if lacking:  # e.g. sensor rows on an RGB-only recording: a note, not a failure
        return {**head, "skipped": f"{rec.path.name} has no {lacking}/ (source {source} reads it)"}
    if row.tracker == "mediapipe":
        res = _run_mediapipe(row, rec)
    else:
        res = _run_pso(row, rec, row.tracker)
    return finite_or_none({**head, **res})


def _cached_row(path: Path) -> dict | None:
    """A finished row from ``OUT/rows/``, or None (not there, or unreadable: it is tracked again)."""
    if not path.exists():
        return None
    if not path.is_file():
        raise ValueError(f"{path}: not an ordinary file")
    try:
        res = json.loads(path.read_text(), parse_constant=lambda c: float("nan"))
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable (%s); tracking the row again", path, e)
        return None
    if not isinstance(res, dict) or not {"data", "source", "tracker"} <= set(res):
        log.warning("%s: not a comparison row; tracking the row again", path)
        return None
    return finite_or_none(res)


def _check_weights(source: str) -> None:
    """A depthnet source's weights load, with a keypoint head for a ``+kp`` source (before
    anything is written)."""
    from handrgbd.sources import check_source_weights

    check_source_weights(source)


def _check_data(data: list[str], sources: list[str] = (), frames: str = "") -> None:
    """Every data folder loads, has consistent ground truth and at least one of the image folders
    the sources read (before anything is written; rows whose source lacks its images are skipped
    with a note)."""
    from tracker.run import truth_side_and_length, truth_start

    for d in data:
        rec = Recording(d).select(_frames_slice(frames))
        if not rec.has_joints:
            raise ValueError(f"{rec.path}: comparison needs ground-truth joints.npy (poses.npy too, or frame 0's "
                             f"pose is fitted to its joints)")
        if rec.has_poses:
            truth_side_and_length(rec)
        else:  # frame 0's pose will be fitted to its joints: fit it now, so a bad file stops the run here
            truth_start(rec)
        if sources and all(missing_images(rec, s) for s in sources):
            raise ValueError(f"--sources: {rec.path} has none of the images these sources read "
                             f"({', '.join(f'{s}: {missing_images(rec, s)}/' for s in sources)})")


def compare(data: list[str], sources: list[str], trackers: list[str], out: str | Path, workers: int = 1,
            progress: bool | str = True, seeds: tuple[int, ...] = (0,), init: str = "gt", frames: str = "",
            side: str = "truth") -> list[dict]:
    """Track every (data, source, tracker, seed) row; returns the rows, in that order.

    ``init``: ``"gt"`` starts each PSO row from the truth of frame 0 (poses.npy, or fitted to its
    joints), ``"auto"`` from the tracker's own detection (hand length still the truth's).
    ``side``: the side of the hand model at automatic initialisations: ``"truth"`` (the true
    hand's), ``"right"``, ``"left"`` or ``"auto"`` (both fitted, the better kept); a start from
    the truth is always the true side's. ``frames``: a ``--frames`` range (``"A:B"``; ``""``:
    every frame). Rows whose source reads images a recording lacks (sensor depth in an RGB-only
    folder) are skipped with a note.

    ``seeds``: the PSO trackers' random seeds (each seed is one row; MediaPipe runs once). With
    several data folders or seeds, ``OUT/pooled.json`` holds each (source, tracker) pooled over
    its rows (see :func:`pooled`).
    """
    from handrgbd.progress import Progress

    # no duplicate rows: one folder however it is spelled (the first spelling names it), one source, one tracker
    folders: dict[Path, str] = {}
    for d in data:
        folders.setdefault(Path(d).resolve(), d)
    data = list(folders.values())
    sources, trackers = list(dict.fromkeys(sources)), list(dict.fromkeys(trackers))
    for s in sources:
        make_provider(s)  # fail early on a bad name
        _check_weights(s)
    for t in trackers:
        parse_tracker(t)
    inputs = {s: _inputs_fingerprint(s) for s in sources}
    # finished rows are reused and the tables rewritten from them: resuming is this command's design
    out = check_outputs(out, COMPARE_OUTPUTS, overwrite=True)
    _check_data(data, sources, frames)
    rows = []
    for d in data:
        for t in trackers:
            for s in (sources if t != "mediapipe" else ["rgb"]):
                for seed in (dict.fromkeys(int(x) for x in seeds) if t != "mediapipe" else (0,)):
                    pso = t != "mediapipe"
                    rows.append(Row(d, s, t, inputs.get(s, ""), seed, init if pso else "gt", frames,
                                    side if pso else "truth"))
    results: dict[str, dict] = {}
    todo = []
    for r in rows:
        res = _cached_row(out / "rows" / f"{r.key}.json")
        if res is not None:
            res.setdefault("seed", r.reported_seed)  # rows cached before seeds
            results[r.key] = res
        else:
            todo.append(r)
    bar = Progress(len(rows), "compare", "row", progress, initial=len(rows) - len(todo))

    def done(r: Row, res: dict) -> None:  # the output folder appears with the first finished row
        results[r.key] = res
        if not res.get("skipped"):  # a skipped row is looked at again next time (depth/ may have come)
            write_json(make_folder(out / "rows") / f"{r.key}.json", res, indent=None)
        else:
            make_folder(out)
        bar.update()

    if workers > 1 and len(todo) > 1:
        import multiprocessing as mp

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(run_row, r): r for r in todo}
            for fut in as_completed(futures):
                done(futures[fut], fut.result())
    else:
        for r in todo:
            done(r, run_row(r))
    bar.close()
    table = [results[r.key] for r in rows]
    _write(out, table)
    return table


#: the files compare writes into its output folder (besides rows/)
COMPARE_OUTPUTS = ("comparison.json", "comparison.csv", "pooled.json", "pck.png")

FIELDS = ("data", "source", "tracker", "seed", "init", "frames", "scored_frames",
          "mpjpe_mm", "rr_mpjpe_mm", "pa_mpjpe_mm", "pck_auc_0_50",
          "lost_fraction", "wrong_tracked_fraction", "fps", "frame_range", "side", "error", "skipped")


#: pooled as means over frames: weighted by each row's scored frames (frames with joints)
_PER_SCORED_FRAME = ("mpjpe_mm", "rr_mpjpe_mm", "pa_mpjpe_mm", "pck_auc_0_50")


def pooled(table: list[dict]) -> list[dict]:
    """Each (source, tracker) over all its rows (data folders and seeds), one dict per pair.

    MPJPE, root-relative MPJPE, PA-MPJPE and PCK AUC are per-frame means, so they pool as means
    weighted by each row's scored frames (frames with joints; ``frames`` for rows cached before
    that field existed): the value over all frames together. ``lost_fraction`` pools weighted by
    ``frames``, fps as all frames over all seconds. Rows with an error, and skipped rows, are left out. ``rows``
    counts the rows pooled and ``mpjpe_worst_mm`` is the worst row's MPJPE, because one lost
    sequence can dominate the pooled value.
    """
    def column(rows: list[dict], key: str) -> np.ndarray:  # None (not measured) as NaN
        return np.array([np.nan if r.get(key) is None else r[key] for r in rows], np.float64)

    groups: dict[tuple[str, str], list[dict]] = {}
    for r in table:
        if not (r.get("error") or r.get("skipped")):
            groups.setdefault((r["source"], r["tracker"]), []).append(r)
    result = []
    for (source, tracker), rows in groups.items():
        frames = np.array([r["frames"] for r in rows], np.float64)
        scored = np.array([r.get("scored_frames", r["frames"]) for r in rows], np.float64)
        p = {"data": f"pooled over {len(rows)} rows", "source": source, "tracker": tracker, "rows": len(rows),
             "frames": int(frames.sum()), "scored_frames": int(scored.sum())}
        for k in _PER_SCORED_FRAME:
            v = column(rows, k)
            ok = np.isfinite(v) & (scored > 0)
            p[k] = float((v[ok] * scored[ok]).sum() / scored[ok].sum()) if ok.any() else None
        for k in ("lost_fraction", "wrong_tracked_fraction"):
            v = column(rows, k)
            ok = np.isfinite(v)
            p[k] = float((v[ok] * frames[ok]).sum() / frames[ok].sum()) if ok.any() else None
        fps = column(rows, "fps")
        ok = np.isfinite(fps) & (fps > 0)
        p["fps"] = float(frames[ok].sum() / (frames[ok] / fps[ok]).sum()) if ok.any() else None
        worst = column(rows, "mpjpe_mm")
        p["mpjpe_worst_mm"] = float(np.nanmax(worst)) if np.isfinite(worst).any() else None
        result.append(p)
    return result


_NO_FRAME = "no frame with both a tracked hand and ground truth"


def _with_reasons(row: dict) -> dict:
    """The row with ``"undefined"``: why each of its null metrics is null (rows with an error
    have that instead)."""
    if row.get("error") or row.get("skipped"):
        return row
    absolute = "MediaPipe's joints are hand-centred: absolute positions are not measured"
    reasons = {"scored_frames": "not recorded for this cached row",
               "mpjpe_mm": absolute if row["tracker"] == "mediapipe" else _NO_FRAME,
               "pck_auc_0_50": absolute if row["tracker"] == "mediapipe" else _NO_FRAME,
               "rr_mpjpe_mm": _NO_FRAME, "pa_mpjpe_mm": _NO_FRAME,
               "lost_fraction": "no frame processed", "fps": "no frame processed",
               "wrong_tracked_fraction": absolute if row["tracker"] == "mediapipe" else "no frame processed"}
    return {**row, "undefined": undefined_reasons(row, reasons)}


def _several(table: list[dict]) -> bool:
    """More than one data folder or tracker seed (MediaPipe rows have no seed)."""
    return len({r["data"] for r in table}) > 1 or len({r.get("seed") for r in table} - {None}) > 1


def _write(out: Path, table: list[dict]) -> None:
    several = _several(table)
    write_json(out / "comparison.json", [_with_reasons({k: r.get(k) for k in FIELDS}) for r in table])
    if several:
        write_json(out / "pooled.json", pooled(table))
    else:
        (out / "pooled.json").unlink(missing_ok=True)  # from an earlier run over several
    write_csv(out / "comparison.csv", ({k: r.get(k) for k in FIELDS} for r in table), FIELDS)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for r in table:
        if r.get("pck_curve"):
            where = f"{Path(r['data']).name} seed {r.get('seed')}: " if several else ""
            ax.plot(PCK_THRESHOLDS_MM, r["pck_curve"], label=f"{where}{r['source']} / {r['tracker']}")
    ax.set(xlabel="threshold (mm)", ylabel="3D PCK", xlim=(0, 50), ylim=(0, 1))
    ax.grid(alpha=0.3)
    if ax.lines:  # rows without a curve (errors, root-relative only) have nothing to label
        ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, out / "pck.png")
    plt.close(fig)


def format_table(table: list[dict]) -> str:
    """The rows as a text table; with several data folders or seeds, each row names its folder
    and seed, and the rows pooled per (source, tracker) follow (:func:`pooled`)."""
    def f(v, spec=".1f"):
        return "-" if v is None else format(v, spec)

    several = _several(table)
    sw = max([22] + [len(r["source"]) + 2 for r in table])  # long weights paths widen the column
    tw = max([16] + [len(r["tracker"]) + 2 for r in table])  # and tracker options that one
    head = f"{'data':<22}{'seed':>5} " if several else ""
    lines = [f"{head}{'source':<{sw}}{'tracker':<{tw}}{'MPJPE':>7}{'RR':>7}{'PA':>7}{'AUC':>7}{'lost':>6}{'wrong':>6}{'fps':>7}"]
    lines.append("-" * len(lines[0]))

    def line(r: dict, data: str, seed: str) -> str:
        lead = f"{data[-22:]:<22}{seed:>5} " if several else ""
        if r.get("error") or r.get("skipped"):
            note = f"error: {r['error']}" if r.get("error") else f"skipped: {r['skipped']}"
            return f"{lead}{r['source']:<{sw}}{r['tracker']:<{tw}}  {note}"
        return (f"{lead}{r['source']:<{sw}}{r['tracker']:<{tw}}{f(r.get('mpjpe_mm')):>7}{f(r.get('rr_mpjpe_mm')):>7}"
                f"{f(r.get('pa_mpjpe_mm')):>7}{f(r.get('pck_auc_0_50'), '.3f'):>7}"
                f"{f(r.get('lost_fraction'), '.2f'):>6}{f(r.get('wrong_tracked_fraction'), '.2f'):>6}"
                f"{f(r.get('fps')):>7}")

    for r in table:
        seed = r.get("seed")
        lines.append(line(r, Path(r["data"]).name, "-" if seed is None else str(seed)))
    if several:
        lines.append("-" * len(lines[0]))
        for p in pooled(table):
            worst = f"  (worst row {f(p['mpjpe_worst_mm'])})" if p["mpjpe_worst_mm"] is not None else ""
            lines.append(line(p, f"pooled: {p['rows']} rows", "") + worst)
    return "\n".join(lines)


def build_parser() -> CommandParser:
    p = CommandParser(prog="handrgbd compare", description=main.__doc__)
    p.add_argument("--data", nargs="+", default=[DEFAULT_DATA], help="recording folders with ground-truth joints")
    p.add_argument("--sources", nargs="+", type=source_arg,
                   default=["clean", "sensor", "degraded:8:0.3", "depthnet", "depthnet-rgb"],
                   help="depth sources (see the module docstring)")
    p.add_argument("--trackers", nargs="+", type=_tracker_arg, default=["pso:64x25", "mediapipe"],
                   help="pso:PxG[:backend][+forearm|+no-forearm|+occluders|+whole-region|+kp-modes|+prior|+no-prior|+grid-start|+no-hand-split] | mediapipe")
    p.add_argument("--out", type=out_path, default="out/compare",
                   help="output folder (finished rows in OUT/rows/ are reused: a rerun resumes)")
    p.add_argument("--seeds", type=integer(0, SEED_MAX), nargs="+", default=[0], help="PSO tracker seeds (one row each)")
    p.add_argument("--init", choices=("gt", "auto"), default="gt",
                   help="PSO start: the truth of frame 0 (gt), or the tracker's own detection (auto)")
    p.add_argument("--side", choices=("truth", *SIDES, "auto"), default="truth",
                   help="hand model side at automatic initialisations: the true hand's, right, left or auto (both "
                        "fitted, the better kept); a start from the truth is the true side's")
    p.add_argument("--frames", type=frame_range, default=None,
                   help="N: the first N frames of each folder; A:B: frames A to B-1 (from 0)")
    p.add_argument("--workers", type=integer(1, MAX_WORKERS), default=1, help="parallel processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: a log line every few seconds instead")
    return p


def _range_text(frames: slice | None) -> str:
    """A ``--frames`` slice as ``"A:B"`` (row keys and results), ``""`` for None."""
    if frames is None:
        return ""
    return f"{frames.start or 0}:{'' if frames.stop is None else frames.stop}"


def main(argv: list[str] | None = None) -> int:
    """Compare trackers across depth sources on recordings with ground truth."""
    p = build_parser()
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        table = compare(args.data, args.sources, args.trackers, args.out, args.workers, progress="log" if args.no_progress else True,
                        seeds=tuple(args.seeds), init=args.init, frames=_range_text(args.frames), side=args.side)
    except (ValueError, OSError) as e:  # OSError: a write the checks could not foresee
        return p.fail(e)
    print(format_table(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
