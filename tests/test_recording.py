"""Recording folders: write/read round trips, partial folders, errors that name the file, resume,
determinism, and the real SR305 fixture."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest

from handrgbd.camera import CameraIntrinsics
from handrgbd.recording import Frame, Recording, RecordingWriter, read_depth_png, write_depth_png

SR305 = Path(__file__).parent / "data" / "sr305"
W, H, N = 16, 12, 3
CAMERA = CameraIntrinsics(fx=20.0, fy=21.0, cx=7.5, cy=5.25, width=W, height=H)


def synthetic_frames(n: int = N, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """``n`` frames of random RGB, depth in 300..1500 mm with holes, mask and noise-free depth."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n):
        depth_gt = rng.uniform(300.0, 1500.0, (H, W)).astype(np.float32)
        mask = rng.random((H, W)) < 0.5
        depth_gt[~mask] = 0.0
        hole = (rng.random((H, W)) < 0.1) | ~mask
        depth = np.where(hole, 0.0, depth_gt + rng.normal(0, 2, (H, W)))
        frames.append({"rgb": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
                       "depth_mm": depth.astype(np.float32), "mask": mask, "depth_gt_mm": depth_gt})
    return frames


def write_recording(path: Path, depth_unit_mm: float = 1.0, frames=None, arrays: bool = True,
                    **writer_kwargs) -> list[dict[str, np.ndarray]]:
    frames = synthetic_frames() if frames is None else frames
    writer = RecordingWriter(path, CAMERA, depth_unit_mm=depth_unit_mm,
                             meta={"source": "test", "seed": 0, "config": {"noise_mm": 2.0}},
                             **writer_kwargs)
    for i, images in enumerate(frames):
        writer.write_frame(i, **images)
    if arrays:
        rng = np.random.default_rng(1)
        writer.write_arrays(joints=rng.uniform(-100, 600, (len(frames), 21, 3)),
                            poses=rng.normal(size=(len(frames), 27)))
    return frames


# ---- round trips -------------------------------------------------------------------------------
@pytest.mark.parametrize("unit", [1.0, 0.125])
def test_round_trip_within_quantisation(tmp_path, unit):
    frames = write_recording(tmp_path / "rec", depth_unit_mm=unit)
    rec = Recording(tmp_path / "rec")
    assert len(rec) == N and rec.names == ["000000", "000001", "000002"]
    assert rec.camera == CAMERA and rec.depth_unit_mm == unit
    assert rec.meta == {**CAMERA.to_dict(), "depth_unit_mm": unit, "source": "test", "seed": 0,
                        "config": {"noise_mm": 2.0}}
    assert rec.has_rgb and rec.has_depth and rec.has_mask and rec.has_depth_gt
    assert rec.has_joints and rec.has_poses and not rec.has_intrinsics
    joints = np.random.default_rng(1).uniform(-100, 600, (N, 21, 3)).astype(np.float32)
    read = list(rec)
    assert [f.index for f in read] == [0, 1, 2]
    for frame, written in zip(read, frames):
        assert frame.camera == CAMERA
        np.testing.assert_array_equal(frame.rgb, written["rgb"])
        np.testing.assert_array_equal(frame.mask, written["mask"])
        for key in ("depth_mm", "depth_gt_mm"):
            got = getattr(frame, key)
            assert got.dtype == np.float32 and got.shape == (H, W)
            np.testing.assert_array_equal(got == 0, written[key] == 0)   # holes stay holes
            np.testing.assert_allclose(got, written[key], atol=unit / 2 + 1e-3)
        np.testing.assert_array_equal(frame.joints_mm, joints[frame.index])
        assert frame.pose.shape == (27,) and frame.pose.dtype == np.float32
    assert rec[-1].name == "000002" and rec[-3].index == 0
    with pytest.raises(IndexError):
        rec[N]
    with pytest.raises(IndexError):
        rec[-N - 1]


def test_rgb_is_rgb_in_memory_and_bgr_for_opencv(tmp_path):
    red = np.zeros((H, W, 3), np.uint8)
    red[..., 0] = 255
    RecordingWriter(tmp_path, CAMERA, expect=("rgb",)).write_frame(0, rgb=red)
    assert cv2.imread(str(tmp_path / "rgb" / "000000.png"))[0, 0].tolist() == [0, 0, 255]
    np.testing.assert_array_equal(Recording(tmp_path)[0].rgb, red)


def test_per_frame_intrinsics_override_camera_json(tmp_path):
    writer = RecordingWriter(tmp_path, CAMERA, expect=("rgb",), per_frame_intrinsics=True)
    writer.write_frame(0, rgb=np.zeros((8, 8, 3), np.uint8))
    writer.write_frame(1, rgb=np.zeros((10, 6, 3), np.uint8), mask=np.ones((10, 6), bool))
    writer.write_arrays(intrinsics=[[30.0, 31.0, 3.5, 3.5], [40.0, 40.0, 2.5, 4.5]])
    rec = Recording(tmp_path)
    assert rec.has_intrinsics and rec.camera == CAMERA
    assert rec[0].camera == CameraIntrinsics(30.0, 31.0, 3.5, 3.5, 8, 8)
    assert rec[1].camera == CameraIntrinsics(40.0, 40.0, 2.5, 4.5, 6, 10)


def test_rgb_only_folder(tmp_path):
    frames = [{"rgb": f["rgb"]} for f in synthetic_frames()]
    write_recording(tmp_path, frames=frames, arrays=False, expect=("rgb",))
    rec = Recording(tmp_path)
    assert rec.has_rgb and not rec.has_depth and not rec.has_joints and len(rec) == N
    frame = rec[1]
    np.testing.assert_array_equal(frame.rgb, frames[1]["rgb"])
    assert frame.depth_mm is None and frame.mask is None and frame.joints_mm is None and frame.pose is None


def test_depth_only_folder_with_unnumbered_gaps(tmp_path):
    frames = synthetic_frames(2)
    writer = RecordingWriter(tmp_path, CAMERA, depth_unit_mm=0.125, expect=("depth",))
    writer.write_frame(0, depth_mm=frames[0]["depth_mm"])
    writer.write_frame(10, depth_mm=frames[1]["depth_mm"])
    (tmp_path / "depth" / "notes.txt").write_text("ignored")
    rec = Recording(tmp_path)
    assert rec.names == ["000000", "000010"] and not rec.has_rgb
    assert rec[1].index == 1 and rec[1].name == "000010" and rec[1].rgb is None
    np.testing.assert_allclose(rec[1].depth_mm, frames[1]["depth_mm"], atol=0.0625 + 1e-3)


def test_mixed_folder_loads_what_exists(tmp_path):
    frames = synthetic_frames(2)
    writer = RecordingWriter(tmp_path, CAMERA)
    writer.write_frame(0, rgb=frames[0]["rgb"])
    writer.write_frame(1, depth_mm=frames[1]["depth_mm"], mask=frames[1]["mask"])
    rec = Recording(tmp_path)
    assert rec[0].depth_mm is None and rec[0].rgb is not None
    assert rec[1].rgb is None and rec[1].mask is not None


def test_depth_png_helpers(tmp_path):
    depth = np.array([[0.0, 500.0], [1234.5, np.nan]], np.float32)
    write_depth_png(tmp_path / "d.png", depth, 0.125)
    assert cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED).tolist() == [[0, 4000], [9876, 0]]
    np.testing.assert_array_equal(read_depth_png(tmp_path / "d.png", 0.125), [[0, 500], [1234.5, 0]])
    with pytest.raises(ValueError, match=r"d2\.png.*exceeds the uint16 range"):
        write_depth_png(tmp_path / "d2.png", np.full((2, 2), 9000.0), 0.125)


# ---- loader errors: each names the offending file ----------------------------------------------
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _set_json(path: Path, **changes) -> None:
    meta = json.loads(path.read_text())
    meta.update(changes)
    path.write_text(json.dumps({k: v for k, v in meta.items() if v is not None}))


CORRUPTIONS: dict[str, tuple[Callable[[Path], None], str, str, str]] = {
    # name: (corrupt the folder, when it fails, file named in the message, problem in the message)
    "missing camera.json": (lambda d: (d / "camera.json").unlink(), "open", "camera.json", "missing"),
    "camera.json missing key": (lambda d: _set_json(d / "camera.json", depth_unit_mm=None), "open",
                                "camera.json", "depth_unit_mm"),
    "camera.json bad JSON": (lambda d: (d / "camera.json").write_text('{"fx": 1,'), "open",
                             "camera.json", "not valid JSON"),
    "camera.json non-positive": (lambda d: _set_json(d / "camera.json", fx=-20.0), "open",
                                 "camera.json", "'fx' must be a finite positive number"),
    "camera.json fractional width": (lambda d: _set_json(d / "camera.json", width=16.5), "open",
                                     "camera.json", "'width' must be a positive integer"),
    "truncated PNG": (lambda d: _truncate(d / "depth" / "000001.png"), "read", "depth/000001.png",
                      "truncated PNG"),
    "not a PNG": (lambda d: (d / "rgb" / "000001.png").write_bytes(b"GIF89a"), "read", "rgb/000001.png",
                  "not a PNG"),
    "8-bit depth": (lambda d: cv2.imwrite(str(d / "depth" / "000001.png"), np.zeros((H, W), np.uint8)),
                    "read", "depth/000001.png", "expected uint16 single-channel depth, got uint8"),
    "4-channel rgb": (lambda d: cv2.imwrite(str(d / "rgb" / "000001.png"), np.zeros((H, W, 4), np.uint8)),
                      "read", "rgb/000001.png", "expected 8-bit 3-channel RGB, got uint8 with 4 channels"),
    "16-bit mask": (lambda d: cv2.imwrite(str(d / "mask" / "000001.png"), np.zeros((H, W), np.uint16)),
                    "read", "mask/000001.png", "expected uint8 single-channel mask, got uint16"),
    "size mismatch between images": (
        lambda d: cv2.imwrite(str(d / "mask" / "000001.png"), np.zeros((H, W - 1), np.uint8)),
        "read", "mask/000001.png", f"size {W - 1}x{H} differs from rgb/000001.png {W}x{H}"),
    "size mismatch with camera.json": (
        lambda d: _set_json(d / "camera.json", width=W + 4), "read", "rgb/000000.png",
        f"size {W}x{H} differs from camera.json {W + 4}x{H}"),
    "joints.npy wrong shape": (lambda d: np.save(d / "joints.npy", np.zeros((N - 1, 21, 3), np.float32)),
                               "open", "joints.npy", f"expected shape ({N}, 21, 3) ({N} frames), got ({N - 1}, 21, 3)"),
    "joints.npy with NaN": (lambda d: np.save(d / "joints.npy", np.where(
        np.arange(N)[:, None, None] == 1, np.nan, np.zeros((N, 21, 3), np.float32))),
        "open", "joints.npy", "NaN or infinite values in 1 frame(s), first at row 1"),
    "joints.npy not an array file": (lambda d: (d / "joints.npy").write_bytes(b"junk"), "open",
                                     "joints.npy", "cannot read"),
    "poses.npy wrong shape": (lambda d: np.save(d / "poses.npy", np.zeros((N, 26), np.float32)), "open",
                              "poses.npy", f"expected shape ({N}, 27)"),
    "intrinsics.npy zero focal": (lambda d: np.save(d / "intrinsics.npy", np.zeros((N, 4), np.float32)),
                                  "open", "intrinsics.npy", "fx and fy must be positive"),
    "mask without a matching frame": (lambda d: cv2.imwrite(str(d / "mask" / "000007.png"),
                                                            np.zeros((H, W), np.uint8)),
                                      "open", "mask/000007.png", "no matching frame"),
    "depth_gt without a matching frame": (
        lambda d: write_depth_png(d / "depth_gt" / "000009.png", np.zeros((H, W)), 1.0),
        "open", "depth_gt/000009.png", "no matching frame"),
    "frame file not numbered": (lambda d: cv2.imwrite(str(d / "rgb" / "frame_a.png"),
                                                      np.zeros((H, W, 3), np.uint8)),
                                "open", "rgb/frame_a.png", "named by number"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_bad_files_raise_naming_the_file(tmp_path, case):
    corrupt, when, file, problem = CORRUPTIONS[case]
    write_recording(tmp_path)
    corrupt(tmp_path)
    if when == "read":
        rec = Recording(tmp_path)                 # images are read lazily: opening still works
        with pytest.raises(ValueError) as info:
            list(rec)
    else:
        with pytest.raises(ValueError) as info:
            Recording(tmp_path)
    message = str(info.value)
    assert str(tmp_path / file) in message and problem in message, message


def test_not_a_directory(tmp_path):
    with pytest.raises(ValueError, match="not a directory"):
        Recording(tmp_path / "nope")


def test_skip_bad_counts_and_logs(tmp_path, caplog):
    write_recording(tmp_path, frames=synthetic_frames(5))
    _truncate(tmp_path / "rgb" / "000001.png")
    cv2.imwrite(str(tmp_path / "depth" / "000003.png"), np.zeros((H, W), np.uint8))
    with pytest.raises(ValueError, match="rgb/000001.png"):
        list(Recording(tmp_path))
    rec = Recording(tmp_path, skip_bad=True)
    with caplog.at_level(logging.WARNING, logger="handrgbd.recording"):
        names = [f.name for f in rec]
    assert names == ["000000", "000002", "000004"]
    assert [name for name, _ in rec.skipped] == ["000001", "000003"]
    assert "truncated PNG" in rec.skipped[0][1] and "expected uint16" in rec.skipped[1][1]
    assert sum("skipping frame" in r.getMessage() for r in caplog.records) == 2
    assert len(list(rec)) == 3 and len(rec.skipped) == 2      # a second pass starts over
    with pytest.raises(ValueError, match="depth/000003.png"):  # indexing never skips
        rec[3]


# ---- writer --------------------------------------------------------------------------------------
def test_rewrite_is_byte_identical(tmp_path):
    frames = synthetic_frames()
    write_recording(tmp_path / "a", depth_unit_mm=0.125, frames=frames)
    first = {p.relative_to(tmp_path / "a"): p.read_bytes()
             for p in sorted((tmp_path / "a").rglob("*")) if p.is_file()}
    write_recording(tmp_path / "a", depth_unit_mm=0.125, frames=frames)   # same folder again
    write_recording(tmp_path / "b", depth_unit_mm=0.125, frames=frames)   # and a fresh one
    for folder in ("a", "b"):
        files = {p.relative_to(tmp_path / folder): p.read_bytes()
                 for p in sorted((tmp_path / folder).rglob("*")) if p.is_file()}
        assert files == first                   # no leftover temporary files either
    assert len(first) == 1 + 4 * N + 2


def test_frame_done_for_resuming(tmp_path):
    frame = synthetic_frames(1)[0]
    writer = RecordingWriter(tmp_path, CAMERA, expect=("rgb", "depth"))
    assert not writer.frame_done(0)
    writer.write_frame(0, rgb=frame["rgb"])
    assert not writer.frame_done(0)
    writer.write_frame(0, rgb=frame["rgb"], depth_mm=frame["depth_mm"])
    assert writer.frame_done(0) and not writer.frame_done(1)
    resumed = RecordingWriter(tmp_path, CAMERA, expect=("rgb", "depth"))
    assert resumed.frame_done(0)
    with pytest.raises(ValueError, match="camera.json: exists with different contents"):
        RecordingWriter(tmp_path, CAMERA, depth_unit_mm=0.125)


@pytest.mark.parametrize("kwargs, problem", [
    (dict(rgb=np.zeros((H, W, 3), np.float32)), "rgb must be (H, W, 3) uint8"),
    (dict(rgb=np.zeros((H, W, 3), np.uint8), depth_mm=np.zeros((H, W + 1))), "differs from the frame"),
    (dict(depth_mm=np.zeros((H + 1, W))), "differs from the camera"),
    (dict(depth_mm=np.full((H, W), 70000.0)), "exceeds the uint16 range"),
    (dict(mask=np.zeros((H, W), bool)), "needs rgb or depth_mm"),
])
def test_write_frame_validates_before_writing(tmp_path, kwargs, problem):
    writer = RecordingWriter(tmp_path, CAMERA)
    with pytest.raises(ValueError) as info:
        writer.write_frame(0, **kwargs)
    assert problem in str(info.value)
    assert not list(tmp_path.rglob("*.png"))


@pytest.mark.parametrize("kwargs, problem", [
    (dict(joints=np.zeros((2, 21, 2))), "joints.npy: expected a float array of shape (N, 21, 3)"),
    (dict(poses=np.full((2, 27), np.nan)), "poses.npy: NaN"),
    (dict(intrinsics=np.zeros((2, 4))), "intrinsics.npy: fx and fy must be positive"),
    (dict(joints=np.zeros((2, 21, 3)), poses=np.zeros((3, 27))), "disagree on the number of frames"),
])
def test_write_arrays_validates(tmp_path, kwargs, problem):
    writer = RecordingWriter(tmp_path, CAMERA)
    with pytest.raises(ValueError) as info:
        writer.write_arrays(**kwargs)
    assert problem in str(info.value)
    assert not list(tmp_path.glob("*.npy"))


def test_writer_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="depth_unit_mm"):
        RecordingWriter(tmp_path / "a", CAMERA, depth_unit_mm=0.0)
    with pytest.raises(ValueError, match="expect"):
        RecordingWriter(tmp_path / "b", CAMERA, expect=("mask",))
    with pytest.raises(ValueError, match="camera key 'fx'"):
        RecordingWriter(tmp_path / "c", CAMERA, meta={"fx": 1.0})
    with pytest.raises(ValueError, match="JSON-serialisable"):
        RecordingWriter(tmp_path / "d", CAMERA, meta={"when": object()})


def test_frame_validates_shapes_and_dtypes():
    Frame(0, "000000", CAMERA, depth_mm=np.zeros((H, W), np.float32))
    with pytest.raises(ValueError, match="Frame.depth_mm must be float32"):
        Frame(0, "000000", CAMERA, depth_mm=np.zeros((H, W), np.float64))
    with pytest.raises(ValueError, match="Frame.rgb"):
        Frame(0, "000000", CAMERA, rgb=np.zeros((H + 1, W, 3), np.uint8))
    with pytest.raises(ValueError, match="Frame.joints_mm"):
        Frame(0, "000000", CAMERA, joints_mm=np.zeros((20, 3), np.float32))
    with pytest.raises(ValueError, match="Frame.index"):
        Frame(-1, "000000", CAMERA)


# ---- the real SR305 fixture -------------------------------------------------------------------
def test_sr305_fixture_loads_in_millimetres():
    rec = Recording(SR305)
    assert len(rec) == 19 and not rec.has_rgb and rec.has_depth and not rec.has_joints
    assert rec.depth_unit_mm == 0.125
    assert rec.camera == CameraIntrinsics(476.007, 476.007, 313.683, 242.755, 640, 480)
    assert "hand-recognition" in rec.meta["source"]
    assert rec.meta["original_files"][0] == "20210326-230536/30.png"
    assert rec.meta["original_files"][-1] == "20210326-231615/220.png"
    for frame in rec:
        assert frame.rgb is None and frame.depth_mm.shape == (480, 640)
        valid = frame.depth_mm[frame.depth_mm > 0]
        assert 0.1 < valid.size / frame.depth_mm.size < 0.4     # holes and background are 0
        assert valid.max() <= 1500.0                               # the SR305's range
        near = np.percentile(valid, 1)                             # the hand is the nearest surface
        hand = valid[valid < near + 150.0]
        assert 450.0 <= np.median(hand) <= 800.0, frame.name
    raw = cv2.imread(str(SR305 / "depth" / "000000.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(rec[0].depth_mm, raw.astype(np.float32) / 8)   # 0.125 mm units


def test_spread_picks_evenly_spaced_frames_first_and_last_included(tmp_path):
    red = np.zeros((CAMERA.height, CAMERA.width, 3), np.uint8)
    writer = RecordingWriter(tmp_path, CAMERA, expect=("rgb",))
    for i in range(10):
        writer.write_frame(i, rgb=red)
    rec = Recording(tmp_path)
    assert rec.spread(4).tolist() == [0, 3, 6, 9]
    assert rec.spread(1).tolist() == [0]
    assert rec.spread().tolist() == rec.spread(10).tolist() == rec.spread(50).tolist() == list(range(10))


def test_a_frames_clean_depth_is_the_noise_free_one_when_there_is_one():
    depth = np.full((CAMERA.height, CAMERA.width), 500.0, np.float32)
    clean = depth + 3.0
    assert Frame(0, "000000", CAMERA, depth_mm=depth, depth_gt_mm=clean).clean_depth_mm is clean
    assert Frame(0, "000000", CAMERA, depth_mm=depth).clean_depth_mm is depth
    assert Frame(0, "000000", CAMERA).clean_depth_mm is None
