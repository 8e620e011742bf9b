"""depthnet's keypoint and side heads (issue 21): targets, read-out, losses, starting from weights
without the heads, ONNX, and the side of a pose."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from depthnet.data import Augmentation, HandDepthDataset
from depthnet.model import DepthNet, DepthNetConfig, image_to_output, keypoints_from_heatmaps, output_to_image
from depthnet.targets import HIDDEN_JOINT_WEIGHT, keypoint_targets
from handrgbd.joints import hand_side
from handrgbd.recording import Recording

TINY_KP = DepthNetConfig(mask_stages=1, depth_stages=1, width=8, input_size=64, hourglass_depth=3, stem="light",
                         keypoints=21, handedness=True)
EMBEDDED = "data/embedded/test_sequence"


def test_hand_side_of_random_poses_of_either_model():
    from tracker.kinematics import HandModel
    from tracker.pose import HandPose

    rng = np.random.default_rng(0)
    for k in range(40):
        side = ("right", "left")[k % 2]
        p = HandPose.canonical(("open", "fist", "pinch", "point")[k % 4], side=side).to_array()
        q = rng.normal(size=4)
        p[3:7] = q / np.linalg.norm(q)
        p[7:] += rng.normal(0, 0.2, 20)
        assert hand_side(p, HandModel(side, 180.0).joints(p)[0]) == side


def test_sub_pixel_peaks():
    rows, cols = np.mgrid[0:24, 0:32]
    true = np.array([[10.3, 7.8], [0.0, 0.0], [25.6, 20.2]])
    maps = np.stack([np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * 1.5 ** 2)) for u, v in true])
    uv, conf = keypoints_from_heatmaps(maps)
    np.testing.assert_allclose(uv, true, atol=0.15)
    np.testing.assert_allclose(conf, [0.97, 1.0, 0.95], atol=0.05)


def test_heatmap_modes_find_the_lower_peaks_highest_first():
    """Two Gaussians of known places and heights in one map, one in another, none in a third:
    the modes are those places with their heights' ratio; the peak is keypoints_from_heatmaps'."""
    from depthnet.model import heatmap_modes

    rows, cols = np.mgrid[0:24, 0:32]

    def blob(u, v, a):
        return a * np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * 1.5 ** 2))

    maps = np.stack([blob(20.4, 6.2, 0.8) + blob(8.3, 15.7, 0.4) + blob(26.0, 20.0, 0.1),  # third under 0.25
                     blob(5.0, 5.0, 0.6) + blob(6.5, 5.0, 0.5),  # the second within 2 px: not a mode of its own
                     np.zeros((24, 32))])
    modes, ratio = heatmap_modes(maps, max_modes=3, min_ratio=0.25, separation=2.0)
    peaks, _ = keypoints_from_heatmaps(maps)
    assert modes.shape == (3, 3, 2) and ratio.shape == (3, 3)
    np.testing.assert_allclose(modes[:, 0], peaks)
    np.testing.assert_allclose(modes[0, :2], [[20.4, 6.2], [8.3, 15.7]], atol=0.15)
    np.testing.assert_allclose(ratio[0], [1.0, 0.5, 0.0], atol=0.02)
    np.testing.assert_allclose(ratio[1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(ratio[2], [1.0, 0.0, 0.0])  # an empty map: its "peak" alone, as before


def test_output_and_image_coordinates_are_inverse_and_match_the_targets():
    """A joint's target peak, read back through output_to_image, lands on its projection."""
    uv = np.array([[3.2, 100.0], [250.7, 17.1]])
    out = image_to_output(uv, (48, 48), (256, 256))
    np.testing.assert_allclose(output_to_image(out, (48, 48), (256, 256)), uv, atol=1e-9)
    ds = HandDepthDataset(EMBEDDED, 192, Augmentation(enabled=False))
    s, frame = ds[3], Recording(EMBEDDED)[3]
    peaks, _ = keypoints_from_heatmaps(s.heatmaps.numpy())
    seen = s.joint_weights.numpy() > 0
    back = output_to_image(peaks, (48, 48), (256, 256))
    np.testing.assert_allclose(back[seen], frame.camera.project(frame.joints_mm)[seen], atol=1.0)


def test_keypoint_targets_weigh_hidden_and_outside_joints():
    depth = np.full((16, 16), 500.0, np.float32)
    uv = np.array([[4.0, 4.0], [8.0, 8.0], [20.0, 3.0]])
    maps, w = keypoint_targets(uv, np.array([505.0, 560.0, 505.0]), depth)  # the second 60 mm behind the surface
    assert w.tolist() == [1.0, pytest.approx(HIDDEN_JOINT_WEIGHT), 0.0]
    assert maps[0, 4, 4] == 1.0 and maps[2].max() == 0.0


def test_a_flipped_sample_is_the_other_side():
    rec = Recording(EMBEDDED)
    side = hand_side(rec.poses[0], rec.joints_mm[0])
    plain = HandDepthDataset(EMBEDDED, 192, Augmentation(enabled=False))[0]
    flipped = HandDepthDataset(EMBEDDED, 192, Augmentation(flip_prob=1.0, rotation_deg=0.0, crop_fraction=1.0))[0]
    assert plain.right.item() == float(side == "right") and flipped.right.item() == float(side != "right")
    # the mirrored image's joints are the mirrored joints, joint for joint: input column x becomes
    # 191 - x, and output column j = (x - 2) / 4 becomes 46.75 - j
    a, _ = keypoints_from_heatmaps(plain.heatmaps.numpy())
    b, _ = keypoints_from_heatmaps(flipped.heatmaps.numpy())
    seen = (plain.joint_weights.numpy() > 0) & (flipped.joint_weights.numpy() > 0)
    np.testing.assert_allclose(b[seen, 0], 46.75 - a[seen, 0], atol=0.3)
    np.testing.assert_allclose(b[seen, 1], a[seen, 1], atol=0.3)


def test_head_losses_are_zero_at_the_targets_and_skip_unknown_sides():
    from depthnet.train import head_losses

    target = torch.rand(2, 21, 8, 8)
    w = torch.ones(2, 21)
    zero = head_losses(target.clone(), torch.tensor([30.0, -30.0]), target, w, torch.tensor([1.0, 0.0]))
    assert zero[0].item() == 0.0 and zero[1].item() < 1e-6
    unknown = head_losses(None, torch.tensor([30.0, 5.0]), target, w, torch.tensor([1.0, -1.0]))
    assert unknown[0].item() == 0.0 and unknown[1].item() < 1e-6  # the second sample's side is unknown


def test_soft_argmax_and_the_integral_loss():
    """soft_argmax against a plain numpy expectation; on the dataset's own target maps it lands
    within a pixel of the joints it carries (joint_uv), so the integral term is near zero there and
    grows with a shifted map."""
    from depthnet.train import INTEGRAL_BETA, head_losses, soft_argmax

    rng = np.random.default_rng(0)
    maps = rng.random((2, 3, 6, 5)).astype(np.float32)
    got = soft_argmax(torch.from_numpy(maps)).numpy()
    for b in range(2):
        for k in range(3):
            p = np.exp(INTEGRAL_BETA * maps[b, k].astype(np.float64))
            p /= p.sum()
            rows, cols = np.mgrid[0:6, 0:5]
            np.testing.assert_allclose(got[b, k], [(p * cols).sum(), (p * rows).sum()], rtol=1e-4, atol=1e-4)
    s = HandDepthDataset(EMBEDDED, 192, Augmentation(enabled=False))[3]
    seen = s.joint_weights.numpy() == 1.0  # visible joints inside the map (those near a border pull inwards)
    at = soft_argmax(s.heatmaps[None])[0].numpy()
    np.testing.assert_allclose(at[seen], s.joint_uv.numpy()[seen], atol=1.0)
    args = (None, s.heatmaps[None], s.joint_weights[None], torch.tensor([-1.0]), s.joint_uv[None])
    plain = head_losses(s.heatmaps[None], *args)[0].item()
    near = head_losses(s.heatmaps[None], *args, keypoint_loss="integral")[0].item()
    shifted = head_losses(torch.roll(s.heatmaps[None], 3, dims=-1), *args, keypoint_loss="integral")[0].item()
    assert plain == 0.0 and near < 0.02 and shifted > near + 0.02
    with pytest.raises(ValueError, match="keypoint_loss"):
        head_losses(s.heatmaps[None], *args, keypoint_loss="l2")


def test_softmax_divergence_against_numpy_and_at_the_target():
    """The softmax loss is KL(normalised target || softmax(logits)), as plain numpy computes it:
    0 when the logits are the target's logarithm, larger for a map peaking elsewhere; an empty
    target (no joint in the map: weighed 0, or a hand-free sample) is a flat map."""
    from depthnet.train import head_losses, softmax_divergence

    rows, cols = np.mgrid[0:12, 0:10]
    target = np.exp(-((cols - 4.3) ** 2 + (rows - 6.8) ** 2) / (2 * 1.5 ** 2))
    logits = np.random.default_rng(1).normal(size=(12, 10))
    t = target / target.sum()
    p = np.exp(logits - logits.max())
    p /= p.sum()
    expected = (t * np.log(np.maximum(t, 1e-300) / p)).sum()
    flat = (np.log(1.0 / p.size / p) / p.size).sum()
    maps = torch.from_numpy(np.stack([target, np.zeros_like(target)])[None]).float()
    got = softmax_divergence(torch.from_numpy(np.stack([logits, logits])[None]).float(), maps)
    np.testing.assert_allclose(got.numpy(), [[expected, flat]], rtol=1e-4)
    assert flat > 0.1 and abs(softmax_divergence(torch.zeros(1, 1, 12, 10), maps[:, 1:]).item()) < 1e-6
    at = softmax_divergence(torch.log(maps[:, :1].clamp_min(1e-30)), maps[:, :1])
    assert abs(at.item()) < 1e-4
    w = torch.ones(1, 2)
    near = head_losses(torch.log(maps.clamp_min(1e-30)), None, maps, w, torch.tensor([-1.0]), keypoint_loss="softmax")
    far = head_losses(torch.roll(torch.log(maps.clamp_min(1e-30)), 3, dims=-1), None, maps, w, torch.tensor([-1.0]),
                      keypoint_loss="softmax")
    assert abs(near[0].item()) < 1e-4 and far[0].item() > 0.5  # about 3^2 / (2 x 1.5^2) / 2 joints


def test_a_softmax_network_reads_its_maps_as_a_distribution():
    """keypoint_maps="softmax": the heatmaps are SOFTMAX_PEAK x the softmax of the head's logits,
    so logits that are the log of the training target read back at the joint with confidence 1;
    the training loss picks the maps (TrainConfig), and weights of either kind start the other."""
    from dataclasses import replace

    from depthnet.model import SOFTMAX_PEAK, heads_only_difference, prediction_from_stages
    from depthnet.train import TrainConfig

    net = DepthNet(replace(TINY_KP, keypoint_maps="softmax")).eval()
    out = net(torch.rand(2, 3, 64, 64))
    expected = SOFTMAX_PEAK * torch.softmax(out.keypoint_logits.flatten(2), -1).view_as(out.keypoint_logits)
    torch.testing.assert_close(out.heatmaps, expected)
    rows, cols = np.mgrid[0:16, 0:16]
    joint = np.array([6.4, 9.7])
    gauss = -((cols - joint[0]) ** 2 + (rows - joint[1]) ** 2) / (2 * 1.5 ** 2)
    heat = SOFTMAX_PEAK * torch.softmax(torch.from_numpy(np.repeat(gauss[None], 21, 0)).flatten(1), -1).view(21, 16, 16)
    pred = prediction_from_stages(np.zeros((2, 1, 16, 16), np.float32), 1, (64, 64), heat.numpy())
    np.testing.assert_allclose(pred.keypoints_px, np.repeat(output_to_image(joint[None], (16, 16), (64, 64)), 21, 0),
                               atol=0.3)
    # the peak cell (6, 10) is 0.4 and 0.3 px off the joint, as a Gaussian map's would be
    np.testing.assert_allclose(pred.keypoint_confidence, np.exp(-(0.4 ** 2 + 0.3 ** 2) / (2 * 1.5 ** 2)), atol=1e-3)
    base = dict(data=("d",), out="r", model=TINY_KP)
    assert TrainConfig(**base, keypoint_loss="softmax").model_config.keypoint_maps == "softmax"
    assert TrainConfig(**base, keypoint_loss="heatmap").model_config.keypoint_maps == "gaussian"
    assert heads_only_difference(TINY_KP, replace(TINY_KP, keypoint_maps="softmax"))
    with pytest.raises(ValueError, match="keypoint_maps"):
        replace(TINY_KP, keypoint_maps="peaks")


def test_a_keypoint_network_starts_from_weights_without_the_heads(tmp_path):
    """--init with the same network minus its heads: every stage's weight carried over, the heatmap
    head's last layer starting at zero (empty maps)."""
    from dataclasses import replace

    from depthnet.train import TrainConfig, train

    plain = DepthNet(replace(TINY_KP, keypoints=0, handedness=False))
    torch.save({"model": plain.state_dict(), "config": plain.config.to_dict()}, tmp_path / "plain.pt")
    from synth.generator import SynthConfig, generate

    generate(tmp_path / "d", 4, seed=2, config=SynthConfig(size=64), progress=False)
    cfg = TrainConfig((str(tmp_path / "d"),), str(tmp_path / "run"), model=TINY_KP, epochs=1, batch_size=2,
                      lr=1e-12, init=str(tmp_path / "plain.pt"), checkpoint_every=100, val_frames=None)
    train(cfg, progress=False)
    net = DepthNet.load(tmp_path / "run" / "model.pt")
    for k, v in plain.state_dict().items():
        if v.is_floating_point() and "running" not in k:
            torch.testing.assert_close(net.state_dict()[k], v, atol=1e-6, rtol=0)
    assert net.keypoint_head[-1].weight.abs().max() < 1e-6


@pytest.mark.parametrize("head", ["residual", "hourglass"])
def test_onnx_and_torch_agree_on_the_heads(head):
    from dataclasses import replace

    from depthnet.runtime import Inference

    torch.manual_seed(0)
    net = DepthNet(replace(TINY_KP, keypoint_head=head)).eval()
    torch.nn.init.normal_(net.keypoint_head[-1].weight)  # not the empty maps a new head starts with
    rgb = Recording(EMBEDDED)[0].rgb
    a, b = Inference(net, "onnxruntime").predict(rgb), Inference(net, "torch").predict(rgb)
    np.testing.assert_allclose(a.keypoints_px, b.keypoints_px, atol=1e-3)
    np.testing.assert_allclose(a.keypoint_confidence, b.keypoint_confidence, atol=1e-5)
    assert a.right_prob == pytest.approx(b.right_prob, abs=1e-5) and a.keypoints_px.shape == (21, 2)


def test_a_run_from_before_the_heads_resumes(tmp_path):
    """A checkpoint and config.json written before DepthNetConfig had keypoints and handedness
    (their model dicts lack the two keys) resume: the missing fields take their defaults."""
    import json
    from dataclasses import replace

    from depthnet.train import TrainConfig, train
    from synth.generator import SynthConfig, generate

    generate(tmp_path / "d", 4, seed=2, config=SynthConfig(size=64), progress=False)
    plain = replace(TINY_KP, keypoints=0, handedness=False)
    cfg = TrainConfig((str(tmp_path / "d"),), str(tmp_path / "run"), model=plain, epochs=2, batch_size=2,
                      checkpoint_every=100, val_frames=None, stop_after_epoch=1)
    train(cfg, progress=False)
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    for key in ("keypoints", "handedness"):
        del ck["config"][key]
    torch.save(ck, tmp_path / "run" / "checkpoint.pt")
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    for key in ("keypoints", "handedness"):
        del stored["model"][key]
    (tmp_path / "run" / "config.json").write_text(json.dumps(stored))
    metrics = train(replace(cfg, stop_after_epoch=None), resume=True, progress=False)
    assert metrics["epoch"] == 2
    # a field added since (keypoint_loss) had its default in the older run: resuming with another
    # value is a change of what the run learns, refused; the default resumes
    kp = replace(cfg, model=TINY_KP, out=str(tmp_path / "kp"))
    train(kp, progress=False)
    stored = json.loads((tmp_path / "kp" / "config.json").read_text())
    del stored["keypoint_loss"]
    (tmp_path / "kp" / "config.json").write_text(json.dumps(stored))
    with pytest.raises(ValueError, match="keypoint_loss: 'heatmap' now 'integral'"):
        train(replace(kp, stop_after_epoch=None, keypoint_loss="integral"), resume=True, progress=False)
    assert train(replace(kp, stop_after_epoch=None), resume=True, progress=False)["epoch"] == 2
    with pytest.raises(ValueError, match="needs a network with keypoint heads"):
        replace(cfg, keypoint_loss="integral")


def test_gaussian_heatmaps_match_the_targets():
    """The training loop's torch heatmaps (made from cached joint positions) are keypoint_targets' maps."""
    from depthnet.train import gaussian_heatmaps

    rng = np.random.default_rng(3)
    uv = np.concatenate([rng.uniform(-3, 19, (19, 2)), [[-0.6, 5.0], [15.4, 15.4]]])  # some outside, one just inside
    maps, _ = keypoint_targets(uv, np.full(21, 500.0), np.full((16, 16), 500.0, np.float32))
    got = gaussian_heatmaps(torch.from_numpy(uv[None].astype(np.float32)), (16, 16))
    np.testing.assert_allclose(got[0].numpy(), maps, atol=1e-6)
    assert maps[19].max() == 0 and maps[20].max() > 0.5


def _plain_weights(tmp_path, config):
    """Random weights of ``config`` without heads, BatchNorm statistics away from their defaults."""
    from dataclasses import replace

    torch.manual_seed(1)
    plain = DepthNet(replace(config, keypoints=0, handedness=False))
    state = {k: (v + 0.1 * torch.rand_like(v) if "running" in k else v) for k, v in plain.state_dict().items()}
    torch.save({"model": state, "config": plain.config.to_dict()}, tmp_path / "plain.pt")
    return state


def test_frozen_stages_train_the_heads_alone_on_cached_features(tmp_path):
    """--freeze-stages: the stages (weights and BatchNorm statistics) stay exactly the --init
    weights', the hourglass keypoint head learns (its loss falls), and the cached features are
    the stages' features of each pass's augmented frames, computed in evaluation mode."""
    import csv
    from dataclasses import replace

    from depthnet.data import collate
    from depthnet.train import TrainConfig, train
    from synth.generator import SynthConfig, generate

    config = replace(TINY_KP, keypoint_head="hourglass")
    plain = _plain_weights(tmp_path, config)
    generate(tmp_path / "d", 4, seed=2, config=SynthConfig(size=64), progress=False)
    cfg = TrainConfig((str(tmp_path / "d"),), str(tmp_path / "run"), model=config, epochs=15, batch_size=2, lr=3e-2, lr_step_epochs=100,
                      init=str(tmp_path / "plain.pt"), val_frames=None, keypoint_loss="softmax", freeze_stages=True,
                      feature_passes=2)
    train(cfg, progress=False)
    net = DepthNet.load(tmp_path / "run" / "model.pt")
    assert net.config.keypoint_head == "hourglass" and net.config.keypoint_maps == "softmax"
    for k, v in plain.items():
        assert torch.equal(net.state_dict()[k], v), k
    assert net.keypoint_head[-1].weight.abs().max() > 1e-3
    with open(tmp_path / "run" / "metrics.csv") as f:
        losses = [float(r["train_keypoint_loss"]) for r in csv.DictReader(f)]
    assert len(losses) == 15 and losses[-1] < 0.85 * losses[0]
    data = HandDepthDataset([str(tmp_path / "d")], 64, seed=0)
    for p in (0, 1):
        data.set_epoch(p)
        batch = collate([data[i] for i in range(4)])
        with torch.no_grad():
            want = net.trunk(batch.rgb)[1].numpy()
        cached = np.load(tmp_path / "run" / "features" / f"pass{p}.npy")
        np.testing.assert_allclose(cached.astype(np.float32), want, rtol=2e-3, atol=2e-3)
        labels = np.load(tmp_path / "run" / "features" / f"pass{p}_labels.npy")
        np.testing.assert_array_equal(labels[:, :42], batch.joint_uv.flatten(1).numpy())
    assert not np.array_equal(np.load(tmp_path / "run" / "features" / "pass0_labels.npy"), labels)  # augmented anew


def test_frozen_stages_cache_hand_free_squares_with_the_frames(tmp_path):
    """--freeze-stages with hand-free squares (4 frames + 4 squares, 2 of them mined): the cache
    holds all 8 samples, the squares' rows without joint positions; the stages stay the --init
    weights'."""
    from dataclasses import replace

    from depthnet.train import TrainConfig, train
    from synth.generator import SynthConfig, generate

    config = replace(TINY_KP, keypoint_head="hourglass")
    plain = _plain_weights(tmp_path, config)
    generate(tmp_path / "d", 4, seed=2, config=SynthConfig(size=64), progress=False)
    frames = _full_frames(tmp_path / "full")
    mined = tmp_path / "mined.csv"
    mined.write_text(f"folder,frame,x0,y0,side,confidence\n{frames},000001,100,50,40,0.3\n")
    cfg = TrainConfig((str(tmp_path / "d"),), str(tmp_path / "run"), model=config, epochs=1, batch_size=2,
                      init=str(tmp_path / "plain.pt"), val_frames=None, keypoint_loss="softmax", freeze_stages=True,
                      hand_free=(str(frames),), hand_free_share=0.5, hand_free_mined=(str(mined),),
                      hand_free_mined_share=0.5)
    m = train(cfg, progress=False)
    assert m["steps"] == 4 and np.isfinite(m["train_loss"])
    labels = np.load(tmp_path / "run" / "features" / "pass0_labels.npy")
    assert labels.shape[0] == 8 and np.isnan(labels[4:, :42]).all() and np.isfinite(labels[:4, :42]).all()
    net = DepthNet.load(tmp_path / "run" / "model.pt")
    for k, v in plain.items():
        assert torch.equal(net.state_dict()[k], v), k


def test_an_interrupted_feature_pass_continues(tmp_path):
    """A feature pass stopped part way (its count of frames done at 2 of 4) computes the rest and
    gives what an uninterrupted pass gives; a resumed run refuses another --feature-passes."""
    import json
    from dataclasses import replace

    from depthnet.train import TrainConfig, _feature_pass, train
    from synth.generator import SynthConfig, generate

    _plain_weights(tmp_path, TINY_KP)
    generate(tmp_path / "d", 4, seed=2, config=SynthConfig(size=64), progress=False)
    net = DepthNet(TINY_KP)
    net.load_state_dict(torch.load(tmp_path / "plain.pt", weights_only=True)["model"], strict=False)
    data = HandDepthDataset([str(tmp_path / "d")], 64, seed=0)
    folder = tmp_path / "features"
    first = [a.copy() for a in _feature_pass(net, data, np.arange(4), 0, folder, 3, 0, torch.device("cpu"), False)]
    features = np.load(folder / "pass0.npy", mmap_mode="r+")
    features[2:] = 0
    features.flush()
    del features
    state = json.loads((folder / "pass0.json").read_text())
    (folder / "pass0.json").write_text(json.dumps({**state, "frames": 2}))
    again = _feature_pass(net, data, np.arange(4), 0, folder, 3, 0, torch.device("cpu"), False)
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])
    assert json.loads((folder / "pass0.json").read_text())["frames"] == 4
    other = DepthNet(TINY_KP)  # other stages: the cache is theirs no longer
    with pytest.raises(ValueError, match="other stage weights"):
        _feature_pass(other, data, np.arange(4), 0, folder, 3, 0, torch.device("cpu"), False)

    cfg = TrainConfig((str(tmp_path / "d"),), str(tmp_path / "run"), model=TINY_KP, epochs=2, batch_size=2,
                      init=str(tmp_path / "plain.pt"), val_frames=None, freeze_stages=True, stop_after_epoch=1)
    train(cfg, progress=False)
    with pytest.raises(ValueError, match="feature_passes"):
        train(replace(cfg, feature_passes=2, stop_after_epoch=None), resume=True, progress=False)
    assert train(replace(cfg, stop_after_epoch=None), resume=True, progress=False)["epoch"] == 2


def test_frozen_stages_refuse_what_they_cannot_train(tmp_path):
    from dataclasses import replace

    from depthnet.train import TrainConfig, train, train_main

    with pytest.raises(ValueError, match="needs a network with heads"):
        TrainConfig(("d",), "r", model=replace(TINY_KP, keypoints=0, handedness=False), freeze_stages=True)
    with pytest.raises(ValueError, match="--init"):
        train(TrainConfig((EMBEDDED,), str(tmp_path / "run"), model=TINY_KP, freeze_stages=True), progress=False)
    with pytest.raises(ValueError, match="keypoint_head"):
        replace(TINY_KP, keypoint_head="transformer")
    with pytest.raises(SystemExit):
        train_main(["--data", EMBEDDED, "--out", str(tmp_path / "r2"), "--preset", "cpu", "--keypoint-head",
                    "hourglass"])


def _full_frames(path, frames: int = 2, hand_box=(8, 10, 40, 44)):
    """A full-frame recording (120 x 160): a red hand in ``hand_box`` (x0, y0, x1, y1) at
    500-520 mm, a green forearm beside it at 600 mm (eq. 1 keeps it), a blue wall at 1,500 mm."""
    from handrgbd.camera import CameraIntrinsics
    from handrgbd.recording import RecordingWriter

    x0, y0, x1, y1 = hand_box
    rgb = np.zeros((120, 160, 3), np.uint8)
    rgb[..., 2] = 200
    depth = np.full((120, 160), 1500.0, np.float32)
    hand = np.zeros((120, 160), bool)
    hand[y0:y1, x0:x1] = True
    rgb[hand] = (255, 0, 0)
    depth[hand] = 500.0 + 20.0 * np.random.default_rng(0).random(hand.sum())
    rgb[y1:y1 + 20, x0:x1] = (0, 255, 0)
    depth[y1:y1 + 20, x0:x1] = 600.0
    writer = RecordingWriter(path, CameraIntrinsics(150.0, 150.0, 79.5, 59.5, 160, 120),
                             expect=("rgb", "depth", "mask"))
    for i in range(frames):
        writer.write_frame(i, rgb=rgb, depth_mm=depth, mask=hand)
    return path


def test_square_sum_counts_the_mask_pixels_inside_the_image():
    """Against numpy's slice sums, for squares inside, across the edges and outside the image."""
    from depthnet.data import square_sum

    mask = np.random.default_rng(4).random((30, 40)) < 0.3
    integral = cv2.integral(mask.astype(np.uint8))
    for x0, y0, side in ((5, 3, 10), (-4, -6, 12), (35, 25, 9), (0, 0, 40), (50, 2, 5), (-20, 0, 8)):
        want = mask[max(y0, 0):max(y0 + side, 0), max(x0, 0):max(x0 + side, 0)].sum()
        assert square_sum(integral, x0, y0, side) == want, (x0, y0, side)


def test_hand_free_squares_keep_away_from_the_hands_and_what_eq1_keeps_with_them():
    from depthnet.data import hand_exclusion, hand_free_square

    depth = np.full((60, 80), 1500.0, np.float32)
    hand = np.zeros((60, 80), bool)
    hand[5:20, 10:25] = True
    depth[hand] = 500.0
    depth[20:30, 10:25] = 750.0  # an arm 250 mm behind the hand's nearest: eq. 1 keeps it
    depth[40:50, 60:70] = 900.0  # a box 400 mm behind: it does not
    ex = hand_exclusion(depth, hand)
    assert ex[hand].all() and ex[20:30, 10:25].all() and not ex[40:50, 60:70].any() and ex.sum() == 15 * 25
    rng = np.random.default_rng(3)
    squares = [hand_free_square(ex, rng, gap=0.05) for _ in range(200)]
    found = [s for s in squares if s is not None]
    assert len(found) > 150
    pad = 3  # ceil(0.05 x 60)
    for x0, y0, side in found:
        assert 0 <= x0 and 0 <= y0 and x0 + side <= 80 and y0 + side <= 60 and 12 <= side <= 48
        assert not ex[max(y0 - pad, 0):y0 + side + pad, max(x0 - pad, 0):x0 + side + pad].any()
    assert hand_free_square(np.ones((60, 80), bool), rng) is None


def test_hand_free_samples_show_no_hand_and_ask_for_none(tmp_path):
    """The dataset appends the share of hand-free squares; each is cut away from the hand and its
    forearm (no red or green pixel) and its targets say no hand: mask 0, background depth, every
    joint weighed with an empty map, side unknown, no joint position."""
    frames = _full_frames(tmp_path / "full")
    aug = Augmentation(color_jitter=0.0)  # flipped, rotated, cropped: black where it leaves the square
    data = HandDepthDataset(EMBEDDED, 64, aug, seed=2, hand_free=[frames], hand_free_share=0.2)
    n = len(Recording(EMBEDDED))
    assert data.n_hand == n and len(data) == n + round(0.25 * n)
    for i in range(n, len(data)):
        s = data[i]
        rgb = (s.rgb.numpy() * 255).round()
        assert (rgb[2] > 170).mean() > 0.4 and (rgb[:2] == 0).all()
        assert s.mask.abs().sum() == 0 and (s.relative == 1.0).all() and s.heatmaps.abs().sum() == 0
        assert (s.joint_weights == 1).all() and s.right.item() == -1.0 and torch.isnan(s.joint_uv).all()
        assert s.name.endswith("#hand-free")
    again = HandDepthDataset(EMBEDDED, 64, aug, seed=2, hand_free=[frames], hand_free_share=0.2)
    assert torch.equal(again[n].rgb, data[n].rgb)  # (seed, epoch, index) decide it
    # a share of mined squares (a 40 px square on the wall): those samples are cut from it
    mined = tmp_path / "mined.csv"
    mined.write_text(f"folder,frame,x0,y0,side,confidence\n{frames},000001,100,50,40,0.3\n")
    mixed = HandDepthDataset(EMBEDDED, 64, aug, seed=2, hand_free=[frames], hand_free_share=0.2,
                             hand_free_mined=[mined], hand_free_mined_share=0.5)
    names = [mixed[i].name for i in range(n, len(mixed))]
    assert 0 < sum("#mined(100,50,40)" in name for name in names) < len(names)
    assert all(name.endswith(("#hand-free", "#mined(100,50,40)")) for name in names)
    assert torch.equal(mixed[0].rgb, data[0].rgb)
    assert torch.equal(HandDepthDataset(EMBEDDED, 64, aug, seed=2)[0].rgb, data[0].rgb)  # hand samples as before
    data.set_epoch(1)
    assert not torch.equal(again[n].rgb, data[n].rgb)


def test_hand_free_losses_ask_for_flat_or_empty_maps():
    """A hand-free sample's keypoint loss: the softmax maps' divergence from a flat map (0 when
    flat, more when peaked), the Gaussian maps' MSE against zero, and no integral term (its joints
    have no position)."""
    from depthnet.train import head_losses

    t = torch.zeros(1, 21, 8, 8)
    w, right, uv = torch.ones(1, 21), torch.tensor([-1.0]), torch.full((1, 21, 2), float("nan"))
    flat = head_losses(torch.zeros(1, 21, 8, 8), None, t, w, right, uv, "softmax")[0].item()
    peaked = torch.zeros(1, 21, 8, 8)
    peaked[..., 3, 4] = 5.0
    sharp = head_losses(peaked, None, t, w, right, uv, "softmax")[0].item()
    assert abs(flat) < 1e-6 and sharp > 1.0
    for loss in ("heatmap", "integral"):
        got = head_losses(peaked / 5.0, None, t, w, right, uv, loss)[0].item()
        assert np.isfinite(got) and got == pytest.approx(20.0 * 21 / 64 / 21, rel=1e-5)  # one pixel of 1 in 64


def test_hand_free_squares_refuse_what_they_cannot_use(tmp_path):
    from depthnet.train import TrainConfig

    frames = _full_frames(tmp_path / "full")
    with pytest.raises(ValueError, match="needs hand_free folders"):
        HandDepthDataset(EMBEDDED, 64, hand_free_share=0.2)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        HandDepthDataset(EMBEDDED, 64, hand_free=[frames], hand_free_share=1.0)
    unlabelled = _full_frames(tmp_path / "unlabelled")
    (unlabelled / "mask" / "000001.png").unlink()
    with pytest.raises(ValueError, match="mask/ for every frame"):
        HandDepthDataset(EMBEDDED, 64, hand_free=[unlabelled], hand_free_share=0.2)
    huge = _full_frames(tmp_path / "huge", hand_box=(0, 0, 160, 100))
    data = HandDepthDataset(EMBEDDED, 64, hand_free=[huge], hand_free_share=0.2)
    with pytest.raises(ValueError, match="no frame has a hand-free square"):
        data[data.n_hand]
    with pytest.raises(ValueError, match="--hand-free FOLDERS"):
        TrainConfig((str(EMBEDDED),), str(tmp_path / "run"), hand_free_share=0.2)
    with pytest.raises(ValueError, match="--hand-free-share S > 0"):
        TrainConfig((str(EMBEDDED),), str(tmp_path / "run"), hand_free=(str(frames),))
    mined = tmp_path / "mined.csv"
    mined.write_text(f"folder,frame,x0,y0,side,confidence\n{frames},000001,100,50,40,0.3\n")
    with pytest.raises(ValueError, match="go together"):
        HandDepthDataset(EMBEDDED, 64, hand_free=[frames], hand_free_share=0.2, hand_free_mined=[mined])
    with pytest.raises(ValueError, match="hand_free_share > 0 too"):
        HandDepthDataset(EMBEDDED, 64, hand_free_mined=[mined], hand_free_mined_share=0.5)
    with pytest.raises(ValueError, match="needs hand_free folders"):  # random squares need their folders
        HandDepthDataset(EMBEDDED, 64, hand_free_share=0.2, hand_free_mined=[mined], hand_free_mined_share=0.5)
    assert HandDepthDataset(EMBEDDED, 64, hand_free_share=0.2, hand_free_mined=[mined],
                            hand_free_mined_share=1.0).n_free > 0  # all mined: no folders needed
    for text, why in (("folder,frame,x0,y0,side\n", "header"), (f"folder,frame,x0,y0,side,confidence\n", "no squares"),
                      (f"folder,frame,x0,y0,side,confidence\n{frames},000001,1,2,3,0.3\n", "line 2.*side 3"),
                      (f"folder,frame,x0,y0,side,confidence\n{frames},000001,a,2,30,0.3\n", "line 2"),
                      (f"folder,frame,x0,y0,side,confidence\n{frames},000009,1,2,30,0.3\n", "frame 000009 is not in"),
                      (f"folder,frame,x0,y0,side,confidence\n{tmp_path}/none,000001,1,2,30,0.3\n", "its folder")):
        mined.write_text(text)
        with pytest.raises(ValueError, match=why):
            HandDepthDataset(EMBEDDED, 64, hand_free_share=0.2, hand_free_mined=[mined], hand_free_mined_share=1.0)
    with pytest.raises(ValueError, match="cannot read"):
        HandDepthDataset(EMBEDDED, 64, hand_free_share=0.2, hand_free_mined=[tmp_path / "gone.csv"],
                         hand_free_mined_share=1.0)
    with pytest.raises(ValueError, match="go together"):
        TrainConfig((str(EMBEDDED),), str(tmp_path / "run"), hand_free=(str(frames),), hand_free_share=0.2,
                    hand_free_mined_share=0.5)
    with pytest.raises(ValueError, match="--hand-free-share S > 0 too"):
        TrainConfig((str(EMBEDDED),), str(tmp_path / "run"), hand_free_mined=(str(mined),), hand_free_mined_share=0.5)


class _ColourNet:
    """A stand-in keypoint network: as sure of a hand as the share of the image in ``colour``
    (0 red, 2 blue), and its mask is those pixels."""

    def __init__(self, channel: int):
        from types import SimpleNamespace

        self.config, self.channel = SimpleNamespace(keypoints=21), channel

    def predict(self, rgb):
        from types import SimpleNamespace

        mine = rgb[..., self.channel] > 150
        return SimpleNamespace(keypoint_confidence=np.full(21, mine.mean()), mask=mine)


def test_hand_free_scores_compare_each_square_with_its_frames_hand(tmp_path):
    from depthnet.evaluate import HAND_FREE_SQUARES, hand_free_scores

    frames = _full_frames(tmp_path / "full", frames=3)
    red = hand_free_scores(_ColourNet(0), frames)
    assert red["frames"] == 3 and red["squares"] == 3 * HAND_FREE_SQUARES
    assert red["hand_confidence_median"] > 0.3 and red["hand_free_confidence_p90"] == 0.0
    assert red["hand_free_surer_than_hand"] == 0.0 and red["hand_free_mask_fraction"] == 0.0
    blue = hand_free_scores(_ColourNet(2), frames)  # the wall: every hand-free square is all wall
    assert blue["hand_free_confidence_median"] == 1.0 and blue["hand_free_surer_than_hand"] == 1.0
    assert blue["hand_free_mask_fraction"] == 1.0 and blue["hand_confidence_median"] < 0.7
    assert hand_free_scores(_ColourNet(0), frames) == red  # the squares are drawn from the frame index
    with pytest.raises(ValueError, match="keypoint heads"):
        net = _ColourNet(0)
        net.config.keypoints = 0
        hand_free_scores(net, frames)
    (frames / "mask" / "000002.png").unlink()
    with pytest.raises(ValueError, match="mask/ for every frame"):
        hand_free_scores(_ColourNet(0), frames)


def test_a_run_with_hand_free_squares_draws_their_share_and_can_leave_them_to_the_keypoints(tmp_path):
    """Each epoch draws the hand frames and the share of hand-free squares (4 + 4 samples: 4 steps
    of 2); with ``hand_free_losses="keypoints"`` the stages' losses take the hand samples alone."""
    from depthnet.train import TrainConfig, stage_samples, train
    from synth.generator import SynthConfig, generate

    uv = torch.zeros(3, 21, 2)
    uv[1] = float("nan")
    assert stage_samples(uv).tolist() == [True, True, True]
    assert stage_samples(uv, "keypoints").tolist() == [True, False, True]
    generate(tmp_path / "d", 4, seed=2, config=SynthConfig(size=64), progress=False)
    frames = _full_frames(tmp_path / "full")
    for losses in ("all", "keypoints"):
        cfg = TrainConfig((str(tmp_path / "d"),), str(tmp_path / losses), model=TINY_KP, epochs=1, batch_size=2,
                          val_frames=None, keypoint_loss="softmax", hand_free=(str(frames),), hand_free_share=0.5,
                          hand_free_losses=losses)
        m = train(cfg, progress=False)
        assert m["steps"] == 4 and np.isfinite(m["train_loss"])
    with pytest.raises(ValueError, match="hand_free_losses"):
        TrainConfig((str(EMBEDDED),), str(tmp_path / "run"), hand_free_losses="mask")
