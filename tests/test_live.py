"""Live tracking from RGB video, headless: JSON lines, a playable video, camera and file faults."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from live.app import live_main, run_live


@pytest.fixture(scope="module")
def hand_video(tmp_path_factory):
    """A 12-frame 320 x 240 video of a moving hand, made by the synthetic generator."""
    from handrgbd.recording import Recording
    from synth.generator import SynthConfig, generate

    root = tmp_path_factory.mktemp("live")
    generate(root / "seq", 12, seed=2, config=SynthConfig(size=320, sequence=True, full_frame=True, frame_aspect=4 / 3,
                                                           split="test"), progress=False)
    path = root / "hand.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (320, 240))
    for frame in Recording(root / "seq"):
        writer.write(np.ascontiguousarray(frame.rgb[..., ::-1]))
    writer.release()
    return path


@pytest.mark.parametrize("overlap", ["off", "on"])
def test_headless_run_writes_lines_and_video(hand_video, tmp_path, overlap):
    out, lines = tmp_path / "out.mp4", tmp_path / "joints.jsonl"
    stats = run_live(video=str(hand_video), headless=True, output=str(out), joints_path=str(lines), progress=False,
                     overlap=overlap)
    rows = [json.loads(x) for x in lines.read_text().splitlines()]
    assert stats["frames"] == 12 and len(rows) == 12 and stats["fps"] > 0
    assert [r["frame"] for r in rows] == list(range(12))
    for r in rows:
        assert set(r) == {"frame", "t", "status", "joints_mm", "fps"} and r["status"] in ("tracked", "lost", "no_hand")
        if r["status"] == "tracked":
            j = np.array(r["joints_mm"])
            assert j.shape == (21, 3) and np.isfinite(j).all()
    cap = cv2.VideoCapture(str(out))
    count = 0
    while cap.read()[0]:
        count += 1
    assert count == 12
    assert not list(tmp_path.glob(".*partial*"))


def test_missing_camera_exits_non_zero_with_advice(tmp_path, capsys):
    code = live_main(["--camera", "57", "--headless", "--joints", str(tmp_path / "j.jsonl")])
    err = capsys.readouterr().err
    assert code == 2 and "handrgbd live: error: cannot open camera 57" in err and "--video" in err
    assert not (tmp_path / "j.jsonl").exists() and not list(tmp_path.iterdir())


def test_truncated_video_is_handled(hand_video, tmp_path):
    cut = tmp_path / "cut.avi"
    data = hand_video.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"
    code = live_main(["--video", str(cut), "--headless", "--output", str(out), "--joints", str(tmp_path / "j.jsonl")])
    lines = (tmp_path / "j.jsonl").read_text().splitlines() if (tmp_path / "j.jsonl").exists() else []
    if code == 0:  # decoded what was there: a complete (shorter) video, one line per frame
        assert 0 < len(lines) < 12 and out.exists()
    else:  # not even one frame: a clear error and no half-written video
        assert code == 2 and not out.exists()


def test_overlapped_pipeline_returns_every_frame_once_in_order(hand_video):
    """process_overlapped: None first, then the previous frame and its result; flush gives the
    last. Frame 0 has no earlier crop in either mode, so its result is the sequential one."""
    from handrgbd.recording import Recording
    from live.pipeline import LivePipeline

    rec = Recording(hand_video.parent / "seq")
    frames = [f.rgb for f in rec][:5]
    sequential = LivePipeline(rec.camera)
    first = sequential.process(frames[0])
    sequential.close()
    pipe = LivePipeline(rec.camera)
    out = [pipe.process_overlapped(rgb) for rgb in frames]
    out.append(pipe.flush())
    assert out[0] is None and pipe.flush() is None
    assert [rgb is f for (rgb, _), f in zip(out[1:], frames)] == [True] * len(frames)
    results = [r for _, r in out[1:]]
    assert all(r.status in ("tracked", "lost", "no_hand") for r in results)
    assert results[0].status == first.status
    if first.joints_mm is not None:
        np.testing.assert_allclose(results[0].joints_mm, first.joints_mm)
    # a wrong-sized frame is refused at once and loses nothing in flight
    out = pipe.process_overlapped(frames[0])
    assert out is None
    with pytest.raises(ValueError, match="frame is 64x64"):
        pipe.process_overlapped(np.zeros((64, 64, 3), np.uint8))
    # reset while a frame is in flight: that frame is observed again from scratch (localised)
    calls = []
    real_observe = pipe.observe
    pipe.observe = lambda rgb, crop=None: calls.append(crop) or real_observe(rgb, crop)
    pipe.reset()
    rgb, r = pipe.flush()
    assert rgb is frames[0] and calls == [None] and r.status in ("tracked", "lost", "no_hand")
    pipe.process_overlapped(frames[1])
    pipe.close()  # with a frame in flight: waits for the worker, drops the frame
    assert pipe.flush() is None


# ---- finding the hand in a whole frame ------------------------------------------------------------
class _PaintedNetwork:
    """A stand-in for depthnet on painted frames: its mask marks the cells of a 48 x 48 grid over
    its input that are at least half painted (any colour), so an object a few pixels wide in a
    large input is not seen; its keypoints are sure (0.9) where the input shows any green pixel
    (the "hand") and unsure (0.05) elsewhere (clutter); ``graded``: unsure everywhere, a little
    surer the more of the input is green (0.2 + 0.1 x its share), so a tighter crop around the
    hand is surer; ``keypoints=False``: a network without a keypoint head; ``lookalike``: this
    sure of an input with blue but no green pixel (clutter it takes for a hand). The keypoints lie
    along the diagonal of the green pixels' box (the input's centre without green)."""

    def __init__(self, keypoints: bool = True, graded: bool = False, lookalike: float | None = None):
        from types import SimpleNamespace

        self.keypoints, self.graded, self.lookalike = keypoints, graded, lookalike
        self.config = SimpleNamespace(input_size=192)  # the cpu preset's
        self.inputs = 0

    def predict(self, image: np.ndarray):
        from depthnet.model import Prediction

        self.inputs += 1
        h, w = image.shape[:2]
        painted = image.max(axis=-1) > 0
        rows, cols = np.arange(h) * 48 // h, np.arange(w) * 48 // w
        share = np.zeros((48, 48))
        np.add.at(share, (rows[:, None], cols[None, :]), painted)
        share /= np.maximum(np.bincount(rows, minlength=48)[:, None] * np.bincount(cols, minlength=48)[None, :], 1)
        mask = (share >= 0.5)[rows[:, None], cols[None, :]]
        if not self.keypoints:
            return Prediction(np.ones((h, w), np.float32), mask)
        green = (image[..., 1] > 0) & (image[..., 0] == 0)
        sure = 0.2 + 0.1 * green.mean() if self.graded else 0.9 if green.any() else 0.05
        if self.lookalike is not None and not green.any() and (image[..., 2] > 0).any():
            sure = self.lookalike
        if green.any():
            ys, xs = np.nonzero(green)
            uv = np.linspace([xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1], 21)
        else:
            uv = np.full((21, 2), w / 2.0)
        return Prediction(np.ones((h, w), np.float32), mask, uv, np.full(21, sure), 0.5)


def _paint(frame: np.ndarray, x0: int, y0: int, side: int, rgb: tuple) -> tuple[float, float]:
    frame[y0:y0 + side, x0:x0 + side] = rgb
    return x0 + side / 2, y0 + side / 2


def _holds(crop, point) -> bool:
    return crop is not None and crop.x0 <= point[0] <= crop.x1 and crop.y0 <= point[1] <= crop.y1


def test_localisation_prefers_the_blob_whose_keypoints_are_sure_to_the_largest():
    """Skin-coloured clutter larger than the hand (a red square twice the green one's side): the
    coarse pass finds both; the crop whose keypoints are sure wins, not the largest blob; a
    network without keypoints keeps the largest blob, as before."""
    from live.pipeline import HandFinder

    frame = np.zeros((480, 640, 3), np.uint8)
    clutter = _paint(frame, 40, 60, 160, (255, 0, 0))
    hand = _paint(frame, 420, 280, 80, (0, 255, 0))
    net = _PaintedNetwork()
    crop = HandFinder(net).localise(frame)
    assert _holds(crop, hand) and not _holds(crop, clutter)
    # the coarse pass, the two blobs' crops and each looked at again around its keypoints (no
    # surer there: the blobs' crops kept): the hand's is sure, no window search
    assert net.inputs == 5
    obs = HandFinder(net).observe(frame)  # the crop's prediction is reused, not made again
    assert _holds(obs.crop, hand) and net.inputs == 5 + 5
    assert _holds(HandFinder(_PaintedNetwork(keypoints=False)).localise(frame), clutter)


def test_localisation_searches_windows_for_a_hand_too_small_for_the_coarse_pass():
    """A hand 12 px wide in a 640 x 480 frame covers no cell of the coarse pass's 48 x 48 grid
    (13 px cells) by half: that pass sees no blob, so localisation searches windows of the frame
    and returns one that holds the hand; without keypoints there is nothing to judge by, and no
    hand (the old rule); a frame without a hand gives None either way."""
    from live.pipeline import LOCALISE_WINDOWS, HandFinder

    frame = np.zeros((480, 640, 3), np.uint8)
    hand = _paint(frame, 500, 330, 12, (0, 255, 0))
    crop = HandFinder(_PaintedNetwork(), min_mask_pixels=20).localise(frame)
    assert _holds(crop, hand)
    assert round(crop.x1 - crop.x0) in [round(f * 480) for f in LOCALISE_WINDOWS]
    assert HandFinder(_PaintedNetwork(keypoints=False), min_mask_pixels=20).localise(frame) is None
    assert HandFinder(_PaintedNetwork(), min_mask_pixels=20).localise(np.zeros((480, 640, 3), np.uint8)) is None


def test_a_small_hand_in_a_large_blob_is_looked_at_again_around_its_keypoints():
    """A 40 px hand at the corner of a 200 px skin-coloured patch: the coarse pass sees one
    blob, whose crop (300 px) shows the hand small and unsure (0.2 + 0.1 x its share of 1.8%);
    depthnet again on a square around that crop's keypoints (the hand's 40 px box grown by the
    tracked crop's margin, ``LiveConfig.crop_margin``, per side, or the finder's own) sees it
    surer (a share of 31%), and that crop is the answer: the whole hand in it and little else.
    No window is surer by the margin."""
    from live.pipeline import HandFinder, LiveConfig

    frame = np.zeros((480, 640, 3), np.uint8)
    _paint(frame, 200, 120, 200, (255, 0, 0))
    _paint(frame, 400, 320, 40, (0, 255, 0))
    crop = HandFinder(_PaintedNetwork(graded=True)).localise(frame)
    assert crop is not None
    assert crop.x1 - crop.x0 == pytest.approx((40 + 1) * (1 + 2 * LiveConfig.crop_margin))  # from_points: the end pixel too
    assert all(_holds(crop, corner) for corner in ((400, 320), (439, 320), (400, 359), (439, 359)))
    assert crop.x0 > 380 and crop.y0 > 300
    closer = HandFinder(_PaintedNetwork(graded=True), crop_margin=0.25).localise(frame)
    assert closer.x1 - closer.x0 == pytest.approx((40 + 1) * 1.5)


def test_window_origins_cover_the_side_and_end_flush():
    from live.pipeline import _window_origins

    assert _window_origins(640, 240) == [0, 120, 240, 360, 400]
    assert _window_origins(480, 240) == [0, 120, 240]
    assert _window_origins(100, 240) == [0]  # a window larger than the side starts at 0 (black past the edge)


def test_a_window_that_cuts_the_hand_does_not_replace_its_blob_unless_clearly_surer():
    """A close-up in a frame large enough for the window search (a 300 px hand in 512 px) whose
    keypoints are unsure: the blob's crop holds the whole hand (green a share 0.44 of it:
    0.244), a 256 px window inside the hand is all green (0.3), surer but by less than the
    margin: the blob's crop is kept, with the whole hand in it."""
    from live.pipeline import LOCALISE_CONFIDENT, LOCALISE_MIN_SCALE, LOCALISE_WINDOW_MARGIN, HandFinder

    frame = np.zeros((512, 512, 3), np.uint8)
    _paint(frame, 100, 100, 300, (0, 255, 0))
    blob, window = 0.2 + 0.1 * (300 / 450) ** 2, 0.3
    assert blob < LOCALISE_CONFIDENT and blob < window < blob + LOCALISE_WINDOW_MARGIN
    net = _PaintedNetwork(graded=True)
    assert 512 >= LOCALISE_MIN_SCALE * net.config.input_size
    crop = HandFinder(net).localise(frame)
    assert net.inputs > 2  # the windows were searched
    assert all(_holds(crop, corner) for corner in ((100, 100), (399, 100), (100, 399), (399, 399)))


def test_a_crop_sized_frame_keeps_its_largest_blob():
    """A 256 px crop (photo data sets, the held-out sequences, the hard bench) is less than twice
    depthnet's input: the frame was cut around a hand, so its largest blob is taken as before,
    without judging candidates or searching windows (the coarse pass alone), even when a smaller
    blob's keypoints would be surer; the whole hand in its crop."""
    from live.pipeline import HandFinder

    frame = np.zeros((256, 256, 3), np.uint8)
    _paint(frame, 30, 30, 150, (255, 0, 0))
    hand = _paint(frame, 200, 200, 40, (0, 255, 0))
    net = _PaintedNetwork()
    crop = HandFinder(net).localise(frame)
    assert net.inputs == 1
    assert all(_holds(crop, corner) for corner in ((30, 30), (179, 30), (30, 179), (179, 179)))
    assert not _holds(crop, hand)


# ---- hard negatives for the localiser (live.mining) ------------------------------------------------
def _lookalike_frame():
    """640 x 480: a green hand (80 px) and a blue look-alike (120 px) far from it; the hand's
    pixels, and what no hand-free square may touch (the hand grown by 10 px)."""
    frame = np.zeros((480, 640, 3), np.uint8)
    _paint(frame, 420, 280, 80, (0, 255, 0))
    _paint(frame, 60, 60, 120, (0, 0, 255))
    hand = frame[..., 1] > 0
    exclude = cv2.dilate(hand.astype(np.uint8), np.ones((21, 21), np.uint8)) > 0
    return frame, hand, exclude


def test_mining_lists_the_hand_free_squares_the_localiser_is_sure_of():
    """A network a little sure of a blue look-alike (0.6, the hand 0.9): the mined squares are
    the candidates with blue and no hand pixel, at 0.6; the localiser still finds the hand. Surer
    of the look-alike than of the hand (0.95): the localiser picks it, and the frame says so. A
    threshold above the look-alike's confidence mines nothing."""
    from live.mining import mine_frame
    from live.pipeline import HandFinder

    frame, hand, exclude = _lookalike_frame()
    net = _PaintedNetwork(lookalike=0.6)
    m = mine_frame(HandFinder(net), frame, exclude, hand, min_confidence=0.5)
    alone = _PaintedNetwork(lookalike=0.6)
    with HandFinder(alone).one_frame() as finder:
        finder.candidates(frame)
        # another frame inside the block is predicted afresh: the hand moved, so does the answer
        moved = np.roll(frame, 100, axis=1)
        assert finder.localise(moved).box == HandFinder(_PaintedNetwork(lookalike=0.6)).localise(moved).box
    assert net.inputs < alone.inputs
    alone.inputs = 0
    with HandFinder(alone).one_frame() as finder:
        finder.candidates(frame)
    assert net.inputs == alone.inputs  # localise's squares are among the candidates: none predicted twice
    assert m["found"] and m["best_hand"] == pytest.approx(0.9) and m["best_free"] == pytest.approx(0.6) and m["squares"]
    for x0, y0, side, confidence in m["squares"]:
        square = frame[max(y0, 0):y0 + side, max(x0, 0):x0 + side]
        assert confidence == pytest.approx(0.6) and (square[..., 2] > 0).any() and not (square[..., 1] > 0).any()
        assert not exclude[max(y0, 0):y0 + side, max(x0, 0):x0 + side].any()
    assert mine_frame(HandFinder(_PaintedNetwork(lookalike=0.6)), frame, exclude, hand, 0.7)["squares"] == []
    fooled = mine_frame(HandFinder(_PaintedNetwork(lookalike=0.95)), frame, exclude, hand, 0.5)
    assert not fooled["found"] and fooled["best_free"] == pytest.approx(0.95) and fooled["best_free"] > fooled["best_hand"]
    with pytest.raises(ValueError, match="keypoint network"):
        HandFinder(_PaintedNetwork(keypoints=False)).candidates(frame)
    with pytest.raises(ValueError, match="256 x 256"):
        HandFinder(_PaintedNetwork()).candidates(frame[:256, :256])


def test_mined_squares_go_through_a_file_into_hand_free_training_samples(tmp_path):
    """``mine`` over a full-frame recording writes squares that ``HandDepthDataset`` reads back
    (``hand_free_mined``): every hand-free sample then shows the look-alike and no hand, with
    the no-hand targets; the summary counts the frames and the localiser's hits."""
    from depthnet.data import Augmentation, HandDepthDataset, read_mined_squares, write_mined_squares
    from handrgbd.camera import CameraIntrinsics
    from handrgbd.recording import RecordingWriter
    from live.mining import mine
    from live.pipeline import HandFinder

    frame, hand, _ = _lookalike_frame()
    depth = np.where(hand, 500.0, 1500.0).astype(np.float32)
    writer = RecordingWriter(tmp_path / "full", CameraIntrinsics(500.0, 500.0, 319.5, 239.5, 640, 480),
                             expect=("rgb", "depth", "mask"))
    for i in range(2):
        writer.write_frame(i, rgb=frame, depth_mm=depth, mask=hand)
    squares, summary = mine(HandFinder(_PaintedNetwork(lookalike=0.6)), [tmp_path / "full"], min_confidence=0.5)
    assert summary["frames"] == 2 and summary["found"] == 1.0 and summary["free_surer"] == 0.0
    assert summary["squares"] == len(squares) > 0 and {sq.frame for sq in squares} == {"000000", "000001"}
    write_mined_squares(tmp_path / "mined.csv", squares)
    again = read_mined_squares(tmp_path / "mined.csv")
    assert [(sq.folder, sq.frame, sq.x0, sq.y0, sq.side) for sq in again] == \
        [(sq.folder, sq.frame, sq.x0, sq.y0, sq.side) for sq in squares]
    import torch

    data = HandDepthDataset("data/embedded/test_sequence", 64, Augmentation(color_jitter=0.0), seed=1, hand_free_share=0.5,
                            hand_free_mined=[tmp_path / "mined.csv"], hand_free_mined_share=1.0)
    assert len(data) == 2 * data.n_hand
    for i in range(data.n_hand, len(data)):
        s = data[i]
        rgb = (s.rgb.numpy() * 255).round()
        assert (rgb[2] > 0).any() and (rgb[1] == 0).all() and "#mined(" in s.name
        assert s.mask.abs().sum() == 0 and s.heatmaps.abs().sum() == 0 and torch.isnan(s.joint_uv).all()
