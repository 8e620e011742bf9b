"""Frame ranges, depth sources and the shared tracking loop, RGB-only recordings in every command,
and eval's crop to the hand."""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from handrgbd.args import frame_range
from handrgbd.recording import Recording
from handrgbd.sources import Observation, make_provider, track_frames
from tracker.pso import PSOConfig
from tracker.tracking import TrackerConfig

EMBEDDED = "data/embedded/test_sequence"


@pytest.fixture(scope="module")
def rgb_only(tmp_path_factory):
    """The embedded sequence's first 8 frames as an RGB-only recording with joints (no depth,
    no poses), as photo data sets come."""
    src = Recording(EMBEDDED)
    out = tmp_path_factory.mktemp("rgb_only")
    shutil.copy(src.path / "camera.json", out / "camera.json")
    (out / "rgb").mkdir()
    for name in src.names[:8]:
        shutil.copy(src.path / "rgb" / f"{name}.png", out / "rgb" / f"{name}.png")
    np.save(out / "joints.npy", src.joints_mm[:8])
    return out


# ---- frame ranges -------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [("5", slice(0, 5)), ("2:7", slice(2, 7)), ("3:", slice(3, None)),
                                            (":4", slice(None, 4))])
def test_frame_range_forms(text, expected):
    assert frame_range(text) == expected


@pytest.mark.parametrize("text", ["0", "7:2", "4:4", "a", "1:2:3", "-1:", "2.5"])
def test_frame_range_rejects(text):
    with pytest.raises(argparse.ArgumentTypeError, match="A:B"):
        frame_range(text)


def test_select_is_a_recording_of_those_frames():
    rec = Recording(EMBEDDED)
    view = rec.select(slice(5, 9))
    assert len(view) == 4 and view.names == rec.names[5:9]
    np.testing.assert_array_equal(view.joints_mm, rec.joints_mm[5:9])
    np.testing.assert_array_equal(view.poses, rec.poses[5:9])
    first = view[0]
    assert first.index == 0 and first.name == rec.names[5]
    np.testing.assert_array_equal(first.rgb, rec[5].rgb)
    assert view.frames_with("depth") == rec.names[5:9] and [f.name for f in view] == rec.names[5:9]
    assert rec.select(None) is rec and len(rec) == 32  # the recording itself is untouched
    with pytest.raises(ValueError, match="select no frame of its 32"):
        rec.select(slice(40, 50))


def test_frame_crop_keeps_the_geometry():
    """A crop's camera sees a joint at its pixel in the frame minus the crop's corner; pixels past
    the image are empty."""
    f = Recording(EMBEDDED)[3]
    c = f.crop(-10, 20, 100, 120)
    assert c.rgb.shape == (120, 100, 3) and c.depth_mm.shape == (120, 100) and c.camera.size == (100, 120)
    np.testing.assert_allclose(c.camera.project(f.joints_mm), f.camera.project(f.joints_mm) - [-10, 20], atol=1e-9)
    assert (c.rgb[:, :10] == 0).all() and (c.depth_mm[:, :10] == 0).all()
    np.testing.assert_array_equal(c.rgb[:, 10:], f.rgb[20:140, :90])


# ---- the shared loop ----------------------------------------------------------------------------
def test_track_frames_skips_frames_without_a_hand_and_starts_from_the_truth():
    """A source that sees no hand in a frame yields no_hand without running the tracker (its track
    is kept); a start from the truth is the first frame's pose."""
    rec = Recording(EMBEDDED).select(slice(0, 4))
    sensor = make_provider("sensor")

    def gappy(frame, state):
        return None if frame.index == 1 else sensor(frame, state)

    cfg = TrackerConfig(side="left", hand_length_mm=172.25, pso=PSOConfig(16, 4), backend="cpu")
    steps = list(track_frames(rec, gappy, cfg, start=rec.poses[0].astype(np.float64)))
    assert [s.status for s in steps][1] == "no_hand" and steps[1].result is None and not steps[1].usable
    assert all(s.result is not None for i, s in enumerate(steps) if i != 1)
    err = np.linalg.norm(steps[0].result.joints_mm - rec.joints_mm[0], axis=-1).mean()
    assert err < 15.0  # started from the truth: close to it


def test_track_frames_names_the_frame_of_a_bad_observation():
    rec = Recording(EMBEDDED).select(slice(0, 3))

    def broken(frame, state):
        if frame.index == 2:
            raise ValueError("no reading")
        return Observation(frame.depth_mm)

    steps = []
    with pytest.raises(ValueError, match=rf"frame {rec.names[2]}: no reading"):
        for s in track_frames(rec, broken, TrackerConfig(pso=PSOConfig(8, 2), backend="cpu")):
            steps.append(s)
    assert len(steps) == 2  # the frames before stay with the caller


# ---- RGB-only recordings in every command -------------------------------------------------------
def test_track_an_rgb_only_recording_from_a_range(rgb_only, tmp_path):
    """No depth/: track uses depthnet-rgb-crop; --frames 2:6 tracks frames 2-5, starting from frame 2's
    truth (fitted to its joints: there is no poses.npy)."""
    from tracker.run import track_main

    out = tmp_path / "t"
    assert track_main([str(rgb_only), "--out", str(out), "--frames", "2:6", "--init", "gt", "--particles", "16",
                       "--generations", "5", "--backend", "cpu", "--json"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["depth_source"] == "depthnet-rgb-crop" and res["frames"] == 4 and res["complete"]
    assert res["mpjpe_mm"] is not None and res["mpjpe_mm"] < 150.0
    names = [line.split(",")[0] for line in (out / "frames.csv").read_text().splitlines()[1:]]
    assert names == Recording(rgb_only).names[2:6]
    assert np.load(out / "joints.npy").shape == (4, 21, 3)


def test_track_refuses_sensor_depth_that_is_not_there(rgb_only, tmp_path, capsys):
    from tracker.run import track_main

    assert track_main([str(rgb_only), "--out", str(tmp_path / "t"), "--depth-source", "sensor"]) == 2
    err = capsys.readouterr().err
    assert "needs depth/" in err and "--depth-source depthnet-rgb-crop" in err
    assert not (tmp_path / "t").exists()
    assert track_main([str(rgb_only), "--out", str(tmp_path / "t"), "--mask", "skin"]) == 2
    assert "--mask applies to sensor depth" in capsys.readouterr().err


@pytest.fixture(scope="module")
def plain_weights(tmp_path_factory):
    """A weights file without keypoint or side heads: the shipped network's stages alone."""
    import torch

    from depthnet.model import DepthNet

    shipped = DepthNet.from_pretrained()
    plain = DepthNet(replace(shipped.config, keypoints=0, handedness=False))
    plain.load_state_dict(shipped.state_dict(), strict=False)
    path = tmp_path_factory.mktemp("weights") / "plain.pt"
    torch.save({"model": plain.state_dict(), "config": plain.config.to_dict()}, path)
    return path


def test_compare_skips_sensor_rows_on_rgb_only_recordings(rgb_only, plain_weights, tmp_path):
    from experiments.compare_depth_sources import compare, format_table, pooled

    with pytest.raises(ValueError, match="keypoint head"):  # refused before any row runs
        compare([str(rgb_only)], [f"depthnet-rgb+kp:{plain_weights}"], ["pso:12x4:cpu"], tmp_path / "kp",
                progress=False)
    assert not (tmp_path / "kp").exists()
    table = compare([str(rgb_only)], ["sensor", "depthnet-rgb"], ["pso:12x4:cpu"], tmp_path, progress=False,
                    frames="0:3")
    sensor, rgb = table
    assert "no depth/" in sensor["skipped"] and sensor.get("mpjpe_mm") is None
    assert rgb["frames"] == 3 and rgb["frame_range"] == "0:3" and np.isfinite(rgb["mpjpe_mm"])
    assert "skipped: " in format_table(table)
    assert len(list((tmp_path / "rows").glob("*.json"))) == 1  # a skipped row is not kept: depth/ may come
    assert [p["source"] for p in pooled(table)] == ["depthnet-rgb"]
    with pytest.raises(ValueError, match="none of the images"):
        compare([str(rgb_only)], ["sensor"], ["pso:12x4:cpu"], tmp_path / "b", progress=False)


def test_compare_row_keys_of_earlier_runs_are_kept():
    """Rows cached before --frames and --side keep their keys (finished rows are reused)."""
    import hashlib

    from experiments.compare_depth_sources import Row

    old = hashlib.sha1("d|sensor|pso:64x25||seed=1|init=auto".encode()).hexdigest()[:16]
    assert Row("d", "sensor", "pso:64x25", "", 1, "auto").key == old
    assert Row("d", "sensor", "pso:64x25", "", 1, "auto", frames="0:5").key != old
    assert Row("d", "sensor", "pso:64x25", "", 1, "auto", side="auto").key != old


def test_study_on_a_range_with_a_side(tmp_path):
    from experiments.pose_c1_c2 import run

    res = run(EMBEDDED, tmp_path / "o", frames=slice(3, 6), particles=12, generations=4, backend="cpu",
              init="auto", side="auto", progress=False)
    config = json.loads((tmp_path / "o" / "config.json").read_text())
    assert res["frames"] == 3 and config["frame_names"] == ["000003", "000005"]
    assert config["trackers"]["c1"]["side"] == "auto"
    assert np.load(tmp_path / "o" / "joints_c1.npy").shape == (3, 21, 3)


def test_the_crop_source_follows_the_hand(tmp_path):
    """On wide frames, given the tracker's previous joints, the crop source runs depthnet only on
    a crop around them: its mask matches the true hand much better than depthnet-rgb's on the
    whole frame (0.60 against 0.26 mean IoU on these frames). Without them it localises the hand
    in the whole frame first (a coarse pass that often picks another blob in clutter:
    docs/cli.md)."""
    from live.pipeline import LiveConfig, follow_crop
    from synth.generator import SynthConfig, generate

    generate(tmp_path / "wide", 3, 7, SynthConfig(size=640, full_frame=True, split="test"), progress=False)
    whole_source, crop_source = make_provider("depthnet-rgb"), make_provider("depthnet-rgb-crop")
    state = {"hand_length_mm": 180.0}
    whole, followed = [], []
    for f in Recording(tmp_path / "wide"):
        def iou(obs):
            return 0.0 if obs is None else (obs.mask & f.mask).sum() / (obs.mask | f.mask).sum()

        whole.append(iou(whole_source(f, {"hand_length_mm": 180.0})))
        crop_source(f, state)  # localised
        state["previous_joints"] = f.joints_mm
        obs = crop_source(f, state)
        followed.append(iou(obs))
        box = follow_crop(f.joints_mm, f.camera, LiveConfig().crop_margin)
        v, u = np.nonzero(obs.mask)
        assert obs.offset_free and u.min() >= box.x0 - 1 and u.max() <= box.x1 and v.min() >= box.y0 - 1 \
            and v.max() <= box.y1
        state["previous_joints"] = None
    assert np.mean(followed) > np.mean(whole) + 0.2


# ---- eval's crop --------------------------------------------------------------------------------
def test_hand_box_holds_the_hand_and_is_centred():
    from depthnet.evaluate import hand_box

    f = Recording(EMBEDDED)[0]
    x0, y0, side = hand_box(f, 1.3)
    uv = f.camera.project(f.joints_mm)
    assert (uv >= [x0, y0]).all() and (uv < [x0 + side, y0 + side]).all()
    extent = (uv.max(0) - uv.min(0)).max()
    assert 1.3 * extent < side < 1.3 * extent + 2 * 1.3 * 15.0 * f.camera.fx / f.joints_mm[:, 2].min() + 2
    hand = np.zeros(f.rgb.shape[:2], bool)
    hand[40:60, 100:180] = True  # an 80 x 20 labelled hand, without joints
    no_joints = type(f)(f.index, f.name, f.camera, f.rgb)
    assert hand_box(no_joints, 1.5, hand) == (80, -10, 120)  # centred (140, 50), reaching past the top
    assert hand_box(no_joints, 1.5) is None


def test_eval_crop_on_a_wide_frame(tmp_path):
    """A full 640-wide frame where the hand is small: --crop gives the network the hand at its
    size, many more hand pixels at the output, and a better mask."""
    from depthnet.evaluate import evaluate
    from depthnet.model import DepthNet
    from synth.generator import SynthConfig, generate

    generate(tmp_path / "wide", 2, 4, SynthConfig(size=640, full_frame=True, split="test"), progress=False)
    net = DepthNet.from_pretrained()
    whole = evaluate(net, tmp_path / "wide")
    cut = evaluate(net, tmp_path / "wide", crop=1.3)
    assert whole["crop"] is None and cut["crop"] == 1.3
    assert cut["pixels"] > 2 * whole["pixels"]
    assert cut["iou"] > whole["iou"]


def test_keypoint_sources_refuse_a_network_without_keypoints(plain_weights):
    """A network without a keypoint head: a +kp source says so instead of running as the plain
    source."""
    frame = Recording(EMBEDDED)[0]
    for name in ("depthnet-rgb+kp", "depthnet-rgb-crop+kp"):
        with pytest.raises(ValueError, match="keypoint head"):
            make_provider(f"{name}:{plain_weights}")(frame, {"hand_length_mm": 180.0})


def test_keypoint_weight_sweep_with_true_keypoints(tmp_path):
    """experiments.keypoint_weight: the true 2D joints as keypoints bring RGB-only tracking closer
    to the truth than no keypoints (lambda 0)."""
    from experiments.keypoint_weight import sweep

    rec = Recording(EMBEDDED)
    short = tmp_path / "short"
    shutil.copytree(EMBEDDED, short, ignore=shutil.ignore_patterns("0000[1-3]*.png"))  # frames 0-9
    for name in ("joints", "poses"):
        np.save(short / f"{name}.npy", np.load(rec.path / f"{name}.npy")[:10])
    res = sweep([str(short)], [0.0, 30.0], oracle_noise=0.0, particles=16, generations=6)
    assert res["C2-rgb"][30.0] < 0.9 * res["C2-rgb"][0.0] and set(res["C2"]) == {0.0, 30.0}  # 9.1 -> 7.5 mm


def test_c2_places_a_hand_network_at_its_own_mean_depth():
    """C2 makes relative depth metric with the sensor's mean hand depth: over eq. 1's foreground
    for an eq. 1 network (the paper), over the network's mask for one of the labelled hand, so
    a nearer arm in eq. 1's 300 mm does not shift the hand. An eq. 1 network's mask takes in the
    arm, and C2 and C2-rgb say so to the tracker (its forearm)."""
    from depthnet.model import Prediction
    from handrgbd.camera import CameraIntrinsics
    from handrgbd.recording import Frame
    from handrgbd.sources import depthnet_provider

    depth = np.zeros((8, 8), np.float32)
    depth[:4, :4] = 500.0  # the hand
    depth[4:, :4] = 400.0  # the arm, 100 mm nearer
    hand = depth == 500.0
    rel = np.where(hand, 0.1, 1.0).astype(np.float32)  # 20 mm behind the mean everywhere on the hand
    frame = Frame(0, "000000", CameraIntrinsics(100.0, 100.0, 4.0, 4.0, 8, 8), rgb=np.zeros((8, 8, 3), np.uint8),
                  depth_mm=depth)
    for foreground, mean in (("eq1", 450.0), ("hand", 500.0)):
        provider = depthnet_provider(predict=lambda f: Prediction(rel, hand, foreground=foreground))
        obs = provider(frame, {})
        np.testing.assert_allclose(obs.depth_mm[hand], mean + 20.0)
        assert (obs.depth_mm[~hand] == 0).all()
        assert obs.mask_has_arm is (foreground == "eq1") and not obs.offset_free
        rgb_only = depthnet_provider(predict=lambda f: Prediction(rel, hand, foreground=foreground), rgb_only=True)
        obs = rgb_only(frame, {"hand_length_mm": 180.0})
        assert obs.mask_has_arm is (foreground == "eq1") and obs.offset_free


def test_c2_zero_is_the_hand_found_when_eq1_holds_an_arm_toward_the_camera():
    """An arm coming toward the camera fills eq. 1's 300 mm and pulls its mean 86 mm in front
    of the hand at its far end (the hard bench's egocentric and bent-wrist scenes), where an eq. 1
    network still puts the hand near zero: C2's zero is then the mean over the hand the detector
    finds in the sensor's depth inside the network's mask. A hand alone keeps eq. 1's mean (the
    paper's C2)."""
    from depth_scenes import CAM, arm_toward_the_camera
    from depthnet.model import Prediction
    from depthnet.targets import make_targets, sensor_mean_depth
    from handrgbd.recording import Frame
    from handrgbd.sources import HAND_MEAN_TOLERANCE_MM, c2_mean_depth, depthnet_provider

    depth, palm = arm_toward_the_camera()  # the palm's surface at 450 mm, the arm 460 -> 260 mm
    eq1 = make_targets(depth).mask > 0  # hand and arm: the eq. 1 network's mask
    assert sensor_mean_depth(depth) < palm[2] - 3 * HAND_MEAN_TOLERANCE_MM  # 364 mm
    zero = c2_mean_depth(depth, CAM, eq1)
    assert abs(zero - palm[2]) < HAND_MEAN_TOLERANCE_MM  # the hand and a stub of its arm
    rel = np.where(eq1, 0.0, 1.0).astype(np.float32)
    frame = Frame(0, "000000", CAM, rgb=np.zeros((CAM.height, CAM.width, 3), np.uint8), depth_mm=depth)
    obs = depthnet_provider(predict=lambda f: Prediction(rel, eq1, foreground="eq1"))(frame, {"hand_length_mm": 180.0})
    u, v = np.round(CAM.project(palm)).astype(int)
    assert obs.depth_mm[v, u] == pytest.approx(zero)
    # the hand alone in eq. 1: the paper's mean, to the float
    alone = np.where(depth > palm[2] - 40.0, depth, 0.0).astype(np.float32)  # the arm cut 40 mm in front
    mask = alone > 0
    assert c2_mean_depth(alone, CAM, mask) == sensor_mean_depth(alone)
    # a network of the labelled hand: eq. 1 inside its mask, as before
    assert c2_mean_depth(depth, CAM, mask, "hand") == sensor_mean_depth(depth, mask)
    with pytest.raises(ValueError, match="foreground must be 'eq1' or 'hand'"):
        c2_mean_depth(depth, CAM, mask, "arm")


def test_handmask_source_takes_the_hand_network_and_refuses_eq1():
    """sensor-handmask cuts the sensor's depth with a network's mask: the shipped eq. 1 network's
    holds the arm and held objects, so it is refused before anything runs."""
    from depthnet.model import DepthNet, pretrained_path
    from handrgbd.sources import NOT_A_HAND_NETWORK, check_source_weights, weights_path

    with pytest.raises(ValueError, match="labelled hand") as e:
        check_source_weights(f"sensor-handmask:{pretrained_path()}")
    assert NOT_A_HAND_NETWORK in str(e.value)
    check_source_weights("depthnet")  # the same weights serve C2
    check_source_weights("sensor-handmask")  # by default the shipped network of the hand
    assert DepthNet.load(weights_path("sensor-handmask")).config.foreground == "hand"


def test_a_source_of_occluders_or_of_the_arm_says_so_to_the_tracker(monkeypatch):
    """An observation whose depth outside its mask is other surfaces (sensor-handmask) makes the
    tracker score them as occluders, one whose mask takes in the arm (an eq. 1 network's) gives
    it the forearm; other sources leave TrackerConfig.occluders and mask_has_arm as given."""
    import tracker.tracking as tt

    seen = []
    original = tt.Tracker.__init__

    def record(self, camera, config=None):
        seen.append(config)
        original(self, camera, config)

    monkeypatch.setattr(tt.Tracker, "__init__", record)
    rec = Recording(EMBEDDED).select(slice(0, 1))
    sensor = make_provider("sensor")

    def handmask(frame, state):
        depth = sensor(frame, state).depth_mm
        return Observation(depth, frame.mask & (depth > 0), occluders=True)

    def eq1(frame, state):
        depth = sensor(frame, state).depth_mm
        return Observation(depth, depth > 0, mask_has_arm=True)

    cfg = TrackerConfig(side="left", hand_length_mm=172.25, pso=PSOConfig(8, 2), backend="cpu")
    for provider, occluders, arm in ((sensor, False, False), (handmask, True, False), (eq1, False, True)):
        list(track_frames(rec, provider, cfg, start=rec.poses[0].astype(np.float64)))
        assert seen[-1].occluders is occluders and seen[-1].mask_has_arm is arm
        assert seen[-1].mask_source == ("depth" if provider is sensor else "given")


def test_handmask_keeps_the_hand_where_the_mask_spills_onto_the_background():
    """sensor-handmask takes eq. 1 inside the network's mask: a mask that spills over the hand's
    outline onto a background far behind keeps the hand; what lies outside the mask stays in the
    depth, as occluders."""
    from types import SimpleNamespace

    from depthnet.model import Prediction
    from handrgbd.camera import CameraIntrinsics
    from handrgbd.recording import Frame
    from handrgbd.sources import handmask_provider

    depth = np.full((8, 8), 2000.0, np.float32)  # the background
    depth[2:5, 2:5] = 500.0                        # the hand
    depth[6:, :] = 450.0                           # a held object, nearer, outside the mask
    net_mask = np.zeros((8, 8), bool)
    net_mask[1:6, 1:6] = True                      # the hand and a ring of background
    net = SimpleNamespace(config=SimpleNamespace(foreground="hand"),
                          predict=lambda rgb: Prediction(np.zeros((8, 8), np.float32), net_mask, foreground="hand"))
    frame = Frame(0, "000000", CameraIntrinsics(100.0, 100.0, 4.0, 4.0, 8, 8), rgb=np.zeros((8, 8, 3), np.uint8),
                  depth_mm=depth)
    obs = handmask_provider("unused.pt")(frame, {"net": net})
    np.testing.assert_array_equal(obs.mask, depth == 500.0)
    np.testing.assert_array_equal(obs.depth_mm, depth)
    assert obs.occluders


def test_sensor_keypoints_source_is_the_sensor_depth_with_the_networks_keypoints(plain_weights, tmp_path, capsys):
    """sensor+kp: the sensor's depth untouched, no mask (the tracker finds the hand in the depth),
    and the keypoints the shipped network reads from the same frame's RGB; a network without a
    keypoint head is refused, and --mask (sensor depth) stays allowed with it."""
    from depthnet.model import DepthNet
    from depthnet.runtime import Inference
    from handrgbd.sources import MASK_FROM_RGB, check_source_weights
    from tracker.run import track_main

    frame = Recording(EMBEDDED)[3]
    obs = make_provider("sensor+kp")(frame, {"hand_length_mm": 180.0})
    assert obs.mask is None and not obs.offset_free and not obs.occluders
    np.testing.assert_array_equal(obs.depth_mm, frame.depth_mm)
    pred = Inference(DepthNet.from_pretrained()).predict(frame.rgb)
    np.testing.assert_allclose(obs.keypoints.uv_px, pred.keypoints_px, atol=1e-3)
    np.testing.assert_allclose(obs.keypoints.confidence, pred.keypoint_confidence, atol=1e-4)
    # the keypoints lie on the hand: most within 25 px of the true joints on this easy sequence
    true_uv = frame.camera.project(frame.joints_mm)
    assert np.median(np.linalg.norm(np.asarray(obs.keypoints.uv_px) - true_uv, axis=-1)) < 25.0
    assert "sensor+kp" not in MASK_FROM_RGB
    with pytest.raises(ValueError, match="keypoint head"):
        check_source_weights(f"sensor+kp:{plain_weights}")
    with pytest.raises(ValueError, match="keypoint head"):
        make_provider(f"sensor+kp:{plain_weights}")(frame, {"hand_length_mm": 180.0})
    rec = Recording(EMBEDDED)
    masks = tmp_path / "m"
    (masks / "mask").mkdir(parents=True)
    shutil.copytree(rec.path / "depth", masks / "depth")  # a mask folder is a recording: its frames' depth
    shutil.copy(rec.path / "camera.json", masks / "camera.json")
    import cv2

    for name in rec.names:
        cv2.imwrite(str(masks / "mask" / f"{name}.png"), (frame.depth_mm > 0).astype(np.uint8) * 255)
    code = track_main([EMBEDDED, "--out", str(tmp_path / "t"), "--depth-source", "sensor+kp", "--frames", "2",
                       "--mask", str(masks), "--particles", "12", "--generations", "4", "--backend", "cpu"])
    assert code == 0, capsys.readouterr().err
    config = json.loads((tmp_path / "t" / "config.json").read_text())
    assert config["depth_source"] == "sensor+kp" and config["mask"] == str(masks)
