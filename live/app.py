"""``handrgbd live``: track a hand in 3D from a plain RGB camera (or a video file), in a window
or headless.

    handrgbd live --camera 0                                   # window: q quit, r re-initialise,
                                                               # space pause, s snapshot
    handrgbd live --video hand.mp4 --headless --output out.mp4 --joints out.jsonl

Headless runs write the annotated video and one JSON line per frame:
``{"frame", "t", "status": "tracked|lost|no_hand", "joints_mm": [[x, y, z] * 21], "fps"}``
(``joints_mm`` is null without a hand). Both are written to hidden ``.NAME.partial`` files
(the JSON lines flushed frame by frame) and renamed when the run ends, so an interrupted run (end
of stream, a stall, Ctrl-C, an error) leaves either complete files or none, never half of one.
Existing files are not replaced without ``--overwrite``. Weights, intrinsics and output paths are
checked before the camera or video is opened, and the capture thread is stopped before the
capture is released, on every path out.

Camera intrinsics come from ``--intrinsics camera.json`` (our recording format's camera.json),
else from the image size and ``--hfov`` (default 60 degrees, a typical webcam).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from handrgbd.args import CommandParser, existing_file, integer, number, out_path
from handrgbd.camera import CameraIntrinsics
from handrgbd.draw import colorize_depth, draw_skeleton
from tracker.kinematics import HAND_LENGTH_RANGE_MM

log = logging.getLogger(__name__)

__all__ = ["run_live", "live_main", "build_parser", "annotate", "open_capture", "load_intrinsics", "CaptureError"]


#: ``--overlap auto`` runs depthnet on the next frame while the tracker works on this one (one
#: frame of latency) on machines with more cores than this: on 2 cores both stages already use
#: both, and overlapping measured 0.97-1.02x (benchmarks/live_speed.py), so frames stay in turn.
OVERLAP_MIN_CORES = 2
OVERLAP_CHOICES = ("auto", "on", "off")

#: the containers ``--output`` may name (OpenCV writes them with the mp4v codec)
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")


class CaptureError(RuntimeError):
    """The camera or video cannot be opened (message lists what to try)."""


def open_capture(camera: int | None, video: str | None) -> cv2.VideoCapture:
    if video is not None:
        if not Path(video).exists():
            raise CaptureError(f"video file {video!r} does not exist")
        cap = cv2.VideoCapture(video)
        if not cap.isOpened():
            raise CaptureError(f"cannot open video {video!r}: not a video OpenCV can decode (try re-encoding it as "
                               f"H.264 MP4 or MJPEG AVI)")
        return cap
    cap = cv2.VideoCapture(int(camera))
    if not cap.isOpened():
        raise CaptureError(
            f"cannot open camera {camera}. Try: another index (--camera 1, 2 ...; ls /dev/video* lists them on "
            f"Linux); closing other programs that use the camera (it may be busy); permission to the device "
            f"(add yourself to the 'video' group); or a video file instead: --video FILE")
    return cap


class _Reader:
    """Frames from a capture on a thread, so a stalled stream can be detected (timeout).

    ``close()`` stops the thread and only then releases the capture: releasing it while the
    thread is inside ``cap.read()`` can hang or abort FFmpeg (``async_lock`` assertion)."""

    def __init__(self, cap: cv2.VideoCapture):
        self.cap = cap
        self.frames: queue.Queue = queue.Queue(maxsize=2)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            ok, frame = self.cap.read()
            while not self._stop.is_set():  # never block for good on a full queue
                try:
                    self.frames.put(frame if ok else None, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not ok:
                return

    def read(self, timeout: float) -> np.ndarray | None:
        """Next BGR frame; None at the end of the stream; raises queue.Empty after ``timeout`` s."""
        return self.frames.get(timeout=timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread, then release the capture (left to the OS if a read never returns)."""
        self._stop.set()
        self.thread.join(timeout)
        if self.thread.is_alive():
            log.warning("the capture did not return a frame within %.0f s; leaving it to the OS", timeout)
            return
        self.cap.release()


def annotate(rgb: np.ndarray, camera: CameraIntrinsics, result, fps: float, silhouette: np.ndarray | None = None,
             depth_panel: bool = True) -> np.ndarray:
    """The frame with the model's silhouette, the skeleton, the estimated depth inset and fps."""
    img = rgb.copy()
    if silhouette is not None:  # blended within the silhouette's bounding box only (a per-frame cost)
        x, y, w, h = cv2.boundingRect(silhouette.view(np.uint8))
        if w and h:
            box = img[y:y + h, x:x + w]
            tint = cv2.addWeighted(box, 0.55, np.broadcast_to(np.array([60, 140, 255], np.uint8), box.shape).copy(), 0.45, 0)
            np.copyto(box, tint, where=silhouette[y:y + h, x:x + w, None])
    if result.joints_mm is not None:
        draw_skeleton(img, camera.project(result.joints_mm), (40, 230, 40), 2, dot_radius=3, dot_colour=(255, 60, 40))
    x, y, w, h = cv2.boundingRect(result.mask.view(np.uint8)) if result.mask is not None else (0, 0, 0, 0)
    if depth_panel and result.relative is not None and w and h:
        s = img.shape[0] // 4
        rel = np.where(result.mask[y:y + h, x:x + w], result.relative[y:y + h, x:x + w] + 2.0, 0.0).astype(np.float32)
        img[:s, -s:] = colorize_depth(cv2.resize(rel, (s, s), interpolation=cv2.INTER_NEAREST), 1.5, 2.5)
    cv2.putText(img, f"{result.status}  {fps:4.1f} fps", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2,
                cv2.LINE_AA)
    return img


def _silhouette(pipeline, result, shape) -> np.ndarray | None:
    """The fitted model's silhouette over the frame (ray-cast in the tracker's region)."""
    if result.params is None or result.crop is None:
        return None
    from renderer.projection import RegionOfInterest
    from tracker.objective import CpuScorer

    model = pipeline.tracker.model
    uv = pipeline.camera.project(result.joints_mm)
    roi = RegionOfInterest.from_points(uv, margin=0.4)
    size = 128
    depth = CpuScorer(model.primitive_set, size).render(model.primitives(result.params), pipeline.camera, roi)[0]
    # back to full-frame pixels: nearest tile pixel for each frame pixel inside the region
    H, W = shape
    out = np.zeros((H, W), bool)
    x0, y0, x1, y1 = roi.box
    cols = np.arange(max(0, int(x0)), min(W, int(np.ceil(x1))))
    rows = np.arange(max(0, int(y0)), min(H, int(np.ceil(y1))))
    if cols.size == 0 or rows.size == 0:
        return out
    i, j = roi.tile_indices(cols, rows, size)
    out[np.ix_(rows, cols)] = depth[np.ix_(i, j)] > 0
    return out


def run_live(camera: int | None = 0, video: str | None = None, headless: bool = False, output: str | None = None,
             joints_path: str | None = None, intrinsics: str | None = None, hfov_deg: float = 60.0,
             weights: str | None = None, max_frames: int | None = None, stall_timeout: float = 5.0,
             progress: bool | str = True, side: str = "right", hand_length_mm: float = 180.0,
             overwrite: bool = False, overlap: str = "auto", depthnet_backend: str = "auto") -> dict:
    """Run the live loop; returns ``{"frames", "tracked", "fps"}``. See the module docstring.

    Everything that can be checked without a frame (weights, intrinsics, output paths) is checked
    before the camera or video is opened; errors are ``ValueError`` or ``CaptureError``."""
    from depthnet.model import DepthNet
    from depthnet.runtime import Inference
    from handrgbd.outputs import check_output_file, finite_or_none, save_npy, write_image
    from handrgbd.progress import Progress
    from live.pipeline import LivePipeline, default_camera

    for path, option in ((output, "--output"), (joints_path, "--joints")):
        if path:
            check_output_file(path, overwrite, option)
            if video is not None and Path(path).resolve() == Path(video).resolve():
                raise ValueError(f"{option}: the input video itself (got {path!r})")
    if output and Path(output).suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"--output: must end in {', '.join(VIDEO_SUFFIXES)} (got {output!r})")
    if output and joints_path and Path(output).resolve() == Path(joints_path).resolve():
        raise ValueError(f"--joints: the same file as --output (got {joints_path!r})")
    cam = load_intrinsics(intrinsics) if intrinsics else None
    if overlap not in OVERLAP_CHOICES:
        raise ValueError(f"--overlap: choose from {OVERLAP_CHOICES} (got {overlap!r})")
    net = Inference(DepthNet.load(weights) if weights else DepthNet.from_pretrained(), depthnet_backend)
    cap = open_capture(camera, video)
    reader = _Reader(cap)
    writer = None
    tmp_video = _partial(output, ".mp4") if output else None
    tmp_jsonl = _partial(joints_path, ".jsonl") if joints_path else None
    jsonl = None
    viewer = None
    pipeline = None
    bar = None
    frames = tracked = 0
    t_first = t_last = 0.0
    t_start = time.perf_counter()
    fps = 0.0
    paused = False
    try:
        try:
            first = reader.read(stall_timeout)
        except queue.Empty:
            raise CaptureError(f"no frame within {stall_timeout:g} s of opening the "
                               f"{'video' if video is not None else 'camera'} (--stall-timeout)") from None
        if first is None:
            raise CaptureError("the stream ended before its first frame (empty or truncated video?)")
        H, W = first.shape[:2]
        if cam is not None and cam.size != (W, H):
            raise ValueError(f"--intrinsics: {intrinsics} is for {cam.width}x{cam.height} images but the frames are "
                             f"{W}x{H}")
        cam = cam or default_camera(W, H, hfov_deg)
        from dataclasses import replace

        from live.pipeline import LiveConfig

        config = LiveConfig()
        config = replace(config, tracker=replace(config.tracker, side=side, hand_length_mm=hand_length_mm))
        pipeline = LivePipeline(cam, net, config)
        overlapped = overlap == "on" or (overlap == "auto" and (os.cpu_count() or 1) > OVERLAP_MIN_CORES)
        if output:
            vfps = cap.get(cv2.CAP_PROP_FPS) or 30.0
            writer = cv2.VideoWriter(tmp_video, cv2.VideoWriter_fourcc(*"mp4v"), vfps if vfps > 0 else 30.0, (W, H))
            if not writer.isOpened():
                raise ValueError(f"--output: OpenCV cannot write an mp4v video to {output!r}")
        if joints_path:
            jsonl = open(tmp_jsonl, "w")
        if not headless:
            from renderer.viewer import ImageViewer

            viewer = ImageViewer(W, H, "handrgbd live")
        shown = None
        t_last = time.perf_counter()
        # headless over a video (or up to --max-frames): a progress bar, or log lines with --no-progress
        n_video = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if video is not None else 0
        total = min(n_video, max_frames) if n_video and max_frames else (n_video or max_frames or 0)
        bar = Progress(total, "live", "frame", progress) if headless and total > 0 else None

        def emit(rgb: np.ndarray, result, timed: bool = True) -> tuple[np.ndarray, object]:
            """Count, draw and write one finished frame; ``timed=False``: a frame finished after a
            stall, left out of the frame rate."""
            nonlocal frames, tracked, fps, t_first, t_last
            now = time.perf_counter()
            frames += 1
            if frames == 1:
                t_first = now
            tracked += result.status == "tracked"
            if bar is not None:
                bar.update()
            if timed:
                rate = 1.0 / max(now - t_last, 1e-6)
                fps = 0.9 * fps + 0.1 * rate if frames > 1 else rate
                t_last = now
            img = annotate(rgb, cam, result, fps, _silhouette(pipeline, result, (H, W)))
            if writer is not None:
                writer.write(np.ascontiguousarray(img[..., ::-1]))
            if jsonl is not None:
                row = {"frame": frames - 1, "t": round(now - t_start, 4), "status": result.status,
                       "joints_mm": None if result.joints_mm is None else np.round(result.joints_mm, 2).tolist(),
                       "fps": round(fps, 2)}
                jsonl.write(json.dumps(finite_or_none(row), allow_nan=False) + "\n")
                jsonl.flush()
            return img, result

        bgr = first
        fed = 0
        stalled = False
        while bgr is not None:
            if not paused:
                rgb = np.ascontiguousarray(bgr[..., ::-1])
                done = pipeline.process_overlapped(rgb) if overlapped else (rgb, pipeline.process(rgb))
                fed += 1
                if done is not None:
                    shown, shown_result = emit(*done)
            if viewer is not None and shown is not None:
                viewer.show(shown)
                for key in viewer.poll():
                    if key == "q":
                        done = pipeline.flush()  # the frame in flight (overlapped) is written too
                        if done is not None:
                            emit(*done)
                        return _stats(frames, tracked, t_first, t_last)
                    if key == "r":
                        pipeline.reset()
                    if key == " ":
                        paused = not paused
                    if key == "s":
                        stamp = time.strftime("%Y%m%d-%H%M%S")
                        write_image(f"snapshot-{stamp}.png", shown)
                        if shown_result.joints_mm is not None:
                            save_npy(f"snapshot-{stamp}-joints.npy", shown_result.joints_mm)
            if max_frames is not None and fed >= max_frames:
                break
            try:
                bgr = reader.read(stall_timeout) if not paused else bgr
            except queue.Empty:
                log.warning("no frame for %.1f s: the stream stalled; stopping", stall_timeout)
                stalled = True
                break
        done = pipeline.flush()  # the frame still in flight (overlapped)
        if done is not None:
            emit(*done, timed=not stalled)
    except KeyboardInterrupt:
        log.info("interrupted: closing outputs")
    finally:  # in order: the capture thread first, then the outputs, complete ones under their names
        reader.close()
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.release()
        if jsonl is not None:
            jsonl.close()
        for tmp, final in ((tmp_video, output), (tmp_jsonl, joints_path)):
            if tmp and os.path.exists(tmp):
                if frames > 0:
                    os.replace(tmp, final)
                else:
                    os.remove(tmp)
        if viewer is not None:
            viewer.close()
        if pipeline is not None:
            pipeline.close()
    return _stats(frames, tracked, t_first, t_last)


def _stats(frames: int, tracked: int, t_first: float, t_last: float) -> dict:
    """The run's counts, and its frame rate from the second finished frame to the last: the
    first pays for start-up (loading numba's cached kernels, the first inference, finding the
    hand), which a live user sees once. None with fewer than two frames."""
    fps = (frames - 1) / (t_last - t_first) if frames > 1 and t_last > t_first else None
    return {"frames": frames, "tracked": tracked, "fps": fps}


def _partial(path: str, suffix: str) -> str:
    """The hidden file an output is written to until the run ends (then renamed to ``path``)."""
    p = Path(path)
    return str(p.with_name(f".{p.stem}.partial{p.suffix or suffix}"))


def load_intrinsics(path: str) -> CameraIntrinsics:
    """Intrinsics from a camera.json (our recording format's keys fx, fy, cx, cy, width, height),
    checked for plausibility like a recording's; ``ValueError`` naming the file and the key."""
    try:
        d = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read ({e})") from e
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: expected a JSON object with fx, fy, cx, cy, width, height")
    try:
        cam = CameraIntrinsics.from_dict(d)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e
    for key, why in cam.implausible():
        raise ValueError(f"{path}: key '{key}' {why}")
    return cam


def build_parser() -> CommandParser:
    p = CommandParser(prog="handrgbd live", description=live_main.__doc__)
    src = p.add_mutually_exclusive_group()
    # default None, not 0: argparse only sees "--camera 0 --video F" as a conflict when 0 is not the default
    src.add_argument("--camera", type=integer(0, 1023), default=None, help="camera index (default 0)")
    src.add_argument("--video", type=existing_file, default=None, help="a video file instead of a camera")
    p.add_argument("--headless", action="store_true", help="no window (write --output and/or --joints)")
    p.add_argument("--output", type=out_path, default=None, help="annotated video (.mp4)")
    p.add_argument("--joints", type=out_path, default=None, help="JSON lines, one per frame")
    p.add_argument("--overwrite", action="store_true", help="replace existing --output / --joints files")
    p.add_argument("--intrinsics", type=existing_file, default=None,
                   help="camera.json with fx, fy, cx, cy, width, height")
    p.add_argument("--hfov", type=number(1, 179), default=60.0,
                   help="horizontal field of view (deg) without --intrinsics")
    p.add_argument("--weights", type=existing_file, default=None, help="depthnet weights (default: shipped)")
    p.add_argument("--side", choices=("right", "left", "auto"), default="right",
                   help="which hand to track (auto: both models fitted at every initialisation, the better kept)")
    p.add_argument("--hand-length", type=number(*HAND_LENGTH_RANGE_MM), default=180.0,
                   help="wrist to middle fingertip, mm")
    p.add_argument("--max-frames", type=integer(1), default=None, help="stop after N frames")
    p.add_argument("--no-progress", action="store_true",
                   help="headless: no progress bar, a log line every few seconds instead")
    p.add_argument("--overlap", choices=OVERLAP_CHOICES, default="auto",
                   help=f"depthnet on the next frame while tracking this one (one frame of latency); auto: on with "
                        f"more than {OVERLAP_MIN_CORES} CPU cores")
    from depthnet.runtime import BACKENDS  # here, not at import: the module pulls in torch

    p.add_argument("--depthnet-backend", choices=("auto", *BACKENDS), default="auto",
                   help="depthnet inference (auto: onnxruntime when installed, else torch)")
    p.add_argument("--stall-timeout", type=number(0.1, 3600), default=5.0,
                   help="seconds without a frame before stopping")
    return p


def live_main(argv: list[str] | None = None) -> int:
    """Track a hand in 3D from an RGB camera or video, in a window or headless."""
    p = build_parser()
    args = p.parse_args(argv)
    if args.headless and not (args.output or args.joints):
        p.error("--headless: needs --output and/or --joints (a headless run must write something)")
    try:
        stats = run_live(None if args.video else (args.camera or 0), args.video, args.headless, args.output, args.joints,
                         args.intrinsics, args.hfov, args.weights, args.max_frames, args.stall_timeout,
                         side=args.side, hand_length_mm=args.hand_length, overwrite=args.overwrite,
                         overlap=args.overlap, depthnet_backend=args.depthnet_backend,
                         progress="log" if args.no_progress else True)
    except (CaptureError, ValueError, OSError) as e:
        return p.fail(e)
    rate = "" if stats["fps"] is None else f", {stats['fps']:.1f} fps from frame 2 (start-up excluded)"
    log.info("%d frames, %d tracked%s", stats["frames"], stats["tracked"], rate)
    return 0


if __name__ == "__main__":
    sys.exit(live_main())
