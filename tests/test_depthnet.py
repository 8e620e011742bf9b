"""depthnet: targets, model shapes, augmentation, training resume and DDP, evaluation, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from depthnet.data import Augmentation, HandDepthDataset, augment_pair
from depthnet.model import PRESETS, DepthNet, DepthNetConfig
import depthnet.model as dm
from depthnet.targets import make_targets, relative_to_metric
from depthnet.train import NonFiniteLossError, TrainConfig, planar_error, stage_losses, train

TINY = DepthNetConfig(mask_stages=1, depth_stages=1, width=8, input_size=64, hourglass_depth=3, stem="light")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    from synth.generator import SynthConfig, generate

    out = tmp_path_factory.mktemp("dn") / "data"
    generate(out, 8, seed=5, config=SynthConfig(size=64), progress=False)
    return out


def test_targets_follow_the_paper():
    d = np.array([[0, 500, 520], [790, 801, 1500]], np.float32)  # 0 = no reading
    t = make_targets(d)
    np.testing.assert_array_equal(t.mask, [[0, 1, 1], [1, 0, 0]])  # D < 500 + 300
    mean = (500 + 520 + 790) / 3
    assert t.mean_depth_mm == pytest.approx(mean)
    np.testing.assert_allclose(t.relative[0, 1], (500 - mean) / 200, rtol=1e-6)
    assert t.relative[0, 0] == 1.0 and t.relative[1, 2] == 1.0  # background (and no reading) -> 1
    back = relative_to_metric(t.relative, t.mask > 0, t.mean_depth_mm)
    np.testing.assert_allclose(back[t.mask > 0], d[t.mask > 0], rtol=1e-6)
    assert np.isnan(make_targets(np.zeros((4, 4))).mean_depth_mm)


@pytest.mark.parametrize("batch", [1, 3])
def test_model_shapes(batch):
    net = DepthNet(TINY)
    out = net(torch.rand(batch, 3, 64, 64))
    assert out.stages.shape == (batch, 2, 1, 16, 16)
    assert out.depth.shape == (batch, 1, 16, 16) and out.mask.shape == (batch, 1, 16, 16)
    assert PRESETS["paper"] == DepthNetConfig(3, 3, 128, 256, 4, "paper") and PRESETS["cpu"].output_size == 48


def test_bad_configs():
    with pytest.raises(ValueError, match="divisible"):
        DepthNetConfig(input_size=100)
    with pytest.raises(ValueError, match="depth_stages"):
        DepthNetConfig(depth_stages=0)


def test_stage_losses_against_numpy():
    rng = np.random.default_rng(3)
    stages = rng.normal(size=(2, 4, 1, 6, 6)).astype(np.float32)
    mask = (rng.random((2, 1, 6, 6)) > 0.6).astype(np.float32)
    rel = np.where(mask > 0, rng.normal(0, 0.2, (2, 1, 6, 6)), 1.0).astype(np.float32)
    t = [torch.from_numpy(a) for a in (stages, mask, rel)]
    for w in (1.0, 7.0):
        got = stage_losses(t[0], 2, t[1], t[2], hand_weight=w).numpy()
        want = [((stages[:, s] - mask) ** 2).mean() for s in range(2)]
        want += [((1 + (w - 1) * mask) * (stages[:, s] - rel) ** 2).mean() for s in range(2, 4)]
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # the default is the paper's loss: torch's MSE, bit for bit
    paper = stage_losses(*t[:1], 2, *t[1:])
    assert all(torch.equal(paper[s], torch.nn.functional.mse_loss(t[0][:, s], t[2])) for s in range(2, 4))
    for bad in (0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="hand_weight"):
            TrainConfig(("d",), "o", hand_weight=bad)


def test_planar_error_against_numpy_lstsq():
    """The planar part of the hand's error, against numpy's least squares on the hand pixels."""
    rng = np.random.default_rng(5)
    h, w = 9, 12
    err = rng.normal(size=(3, 1, h, w)).astype(np.float64)
    mask = (rng.random((3, 1, h, w)) > 0.4).astype(np.float64)
    mask[2] = 0
    mask[2, 0, :2, :5] = 1  # 10 pixels: below MIN_PLANE_PIXELS, no plane
    got = planar_error(torch.from_numpy(err), torch.from_numpy(mask)).numpy()
    v, u = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    for i in range(2):
        on = mask[i, 0] > 0
        a = np.stack([np.ones(on.sum()), u[on], v[on]], axis=1)
        k = np.linalg.lstsq(a, err[i, 0][on], rcond=None)[0]
        assert got[i] == pytest.approx(np.mean((a @ k) ** 2), rel=1e-5)  # the solve's ridge: ~1e-6
    assert got[2] == 0.0
    # a pure plane is all planar; what is orthogonal to every plane on the hand is not
    plane = (0.3 + 0.2 * u - 0.1 * v)[None, None]
    on = mask[:1]
    assert planar_error(torch.from_numpy(plane), torch.from_numpy(on)).item() == pytest.approx(
        np.mean(plane[on > 0] ** 2), rel=1e-5)
    a = np.stack([np.ones(int(on.sum())), u[on[0, 0] > 0], v[on[0, 0] > 0]], axis=1)
    resid = err[0, 0][on[0, 0] > 0] - a @ np.linalg.lstsq(a, err[0, 0][on[0, 0] > 0], rcond=None)[0]
    ortho = np.zeros((1, 1, h, w))
    ortho[0, 0][on[0, 0] > 0] = resid
    assert planar_error(torch.from_numpy(ortho), torch.from_numpy(on)).item() == pytest.approx(0.0, abs=1e-12)
    # a hand on one line (a strip along the crop's edge): the plane is not unique, its values on
    # the line are; finite, with finite gradients, and equal to the least-squares line's
    strip = np.zeros((1, 1, 48, 48))
    strip[0, 0, 0, 10:35] = 1
    e = torch.from_numpy(rng.normal(size=(1, 1, 48, 48))).requires_grad_()
    val = planar_error(e, torch.from_numpy(strip))
    val.backward()
    assert torch.isfinite(e.grad).all()
    uu = np.linspace(-1, 1, 48)[10:35]
    a = np.stack([np.ones(25), uu], axis=1)
    y = e.detach().numpy()[0, 0, 0, 10:35]
    assert val.item() == pytest.approx(np.mean((a @ np.linalg.lstsq(a, y, rcond=None)[0]) ** 2), rel=1e-4)


def test_stage_losses_plane_weight_adds_the_planar_error():
    rng = np.random.default_rng(4)
    stages = torch.from_numpy(rng.normal(size=(2, 3, 1, 8, 8)).astype(np.float32))
    mask = torch.from_numpy((rng.random((2, 1, 8, 8)) > 0.3).astype(np.float32))
    rel = torch.where(mask > 0, torch.from_numpy(rng.normal(0, 0.2, (2, 1, 8, 8)).astype(np.float32)), 1.0)
    base = stage_losses(stages, 1, mask, rel, hand_weight=10.0)
    with_plane = stage_losses(stages, 1, mask, rel, hand_weight=10.0, plane_weight=5.0)
    assert with_plane[0] == base[0]  # mask stage unchanged
    for s in (1, 2):
        want = base[s] + 5.0 * planar_error(stages[:, s] - rel, mask).mean()
        assert with_plane[s].item() == pytest.approx(want.item(), rel=1e-6)
        assert with_plane[s] > base[s]
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="plane_weight"):
            TrainConfig(("d",), "o", plane_weight=bad)


def test_augmentation_moves_rgb_and_depth_together():
    """Encode each pixel's depth in its colour: after any augmentation they still agree."""
    rng = np.random.default_rng(0)
    blocks = rng.integers(1, 200, (4, 4)).astype(np.float32) * 5 + 400
    depth = np.kron(blocks, np.ones((12, 12), np.float32))  # 12 px blocks: bilinear = nearest inside
    rgb = np.repeat(((depth - 400) / 5).astype(np.uint8)[..., None], 3, axis=2)
    for seed in range(5):
        a_rgb, a_depth = augment_pair(rgb, depth, 64, Augmentation(color_jitter=0.0), np.random.default_rng(seed))
        valid = a_depth > 0
        assert set(np.unique(a_depth[valid])) <= set(np.unique(depth))  # nearest: no blended depths
        # pixel centres map identically: away from colour edges, the colour decodes the depth
        smooth = valid & (np.abs(a_rgb[..., 0].astype(float) * 5 + 400 - a_depth) < 1e-3)
        assert smooth.sum() > 0.5 * valid.sum()
    no_aug_rgb, no_aug_depth = augment_pair(rgb, depth, 48, Augmentation(enabled=False), rng)
    np.testing.assert_array_equal(no_aug_depth, depth)
    np.testing.assert_array_equal(no_aug_rgb, rgb)


def test_colour_jitter_touches_rgb_only():
    rgb = np.full((32, 32, 3), 100, np.uint8)
    depth = np.full((32, 32), 600.0, np.float32)
    aug = Augmentation(flip_prob=0.0, rotation_deg=0.0, crop_fraction=1.0, color_jitter=20.0)
    out_rgb, out_depth = augment_pair(rgb, depth, 32, aug, np.random.default_rng(1))
    np.testing.assert_array_equal(out_depth, depth)
    shift = out_rgb.reshape(-1, 3)[0].astype(int) - 100
    assert np.all(np.abs(shift) <= 20) and np.any(shift != 0)
    assert np.all(out_rgb == out_rgb[0, 0])  # one offset per channel, the same everywhere


def test_dataset_samples(tiny_data):
    ds = HandDepthDataset(tiny_data, 64)
    s = ds[0]
    assert s.rgb.shape == (3, 64, 64) and s.mask.shape == (1, 16, 16) and s.relative.shape == (1, 16, 16)
    assert 0 <= s.rgb.min() and s.rgb.max() <= 1 and s.mask.sum() > 0
    ds.set_epoch(1)
    assert not torch.equal(ds[0].rgb, s.rgb)  # a new epoch, new augmentation


def _tiny_config(data, out, **kw):
    return TrainConfig((str(data),), str(out), model=TINY, epochs=2, batch_size=2, checkpoint_every=1,
                       val_frames=None, **kw)


def test_max_frames_trains_on_the_first_frames_only(tiny_data, tmp_path, monkeypatch):
    seen = []
    original = HandDepthDataset.__getitem__

    def record(self, i):
        seen.append((self.epoch, int(i)))
        return original(self, i)

    monkeypatch.setattr(HandDepthDataset, "__getitem__", record)
    train(_tiny_config(tiny_data, tmp_path / "first4", max_frames=4), progress=False)  # 8 frames in the folder
    for epoch in (0, 1):  # every epoch: each of frames 0-3 once (2 steps of 2), never frames 4-7
        assert sorted(i for e, i in seen if e == epoch) == [0, 1, 2, 3]


def test_resume_after_interruption_matches_uninterrupted(tiny_data, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    full = train(_tiny_config(tiny_data, tmp_path / "full"), progress=False)
    calls = {"n": 0}
    original = HandDepthDataset.__getitem__

    def crash_after_some(self, i):
        calls["n"] += 1
        if calls["n"] > 11:  # in the 2nd epoch (4 steps of 2 frames per epoch)
            raise KeyboardInterrupt
        return original(self, i)

    monkeypatch.setattr(HandDepthDataset, "__getitem__", crash_after_some)
    with pytest.raises(KeyboardInterrupt):
        train(_tiny_config(tiny_data, tmp_path / "cut"), progress=False)
    monkeypatch.setattr(HandDepthDataset, "__getitem__", original)
    with pytest.raises(ValueError, match="--resume"):
        train(_tiny_config(tiny_data, tmp_path / "cut"), progress=False)
    resumed = train(_tiny_config(tiny_data, tmp_path / "cut"), resume=True, progress=False)
    assert resumed["steps"] == full["steps"] == 8
    a = torch.load(tmp_path / "full" / "model.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_loader_workers_train_the_same_steps(tiny_data, tmp_path):
    # augmentation is a function of (seed, epoch, index): loading in worker processes changes nothing
    torch.set_num_threads(1)
    train(replace(_tiny_config(tiny_data, tmp_path / "inline"), epochs=1), progress=False)
    train(replace(_tiny_config(tiny_data, tmp_path / "workers"), epochs=1, workers=2, device="cpu"), progress=False)
    a, b = (torch.load(tmp_path / d / "model.pt", weights_only=True)["model"] for d in ("inline", "workers"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="device must be"):
        _tiny_config(tiny_data, tmp_path / "x", device="gpu")
    with pytest.raises(ValueError, match="workers must be"):
        _tiny_config(tiny_data, tmp_path / "x", workers=-1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            train(_tiny_config(tiny_data, tmp_path / "cuda", device="cuda"), progress=False)


def test_init_starts_from_given_weights(tiny_data, tmp_path):
    torch.set_num_threads(1)
    train(_tiny_config(tiny_data, tmp_path / "first"), progress=False)
    start = tmp_path / "first" / "model.pt"
    # lr 0: parameters stay where they started (BatchNorm statistics still move, so compare parameters)
    train(_tiny_config(tiny_data, tmp_path / "tuned", lr=0.0, init=str(start)), progress=False)
    train(_tiny_config(tiny_data, tmp_path / "fresh", lr=0.0, seed=1), progress=False)
    params = {n for n, _ in DepthNet(TINY).named_parameters()}
    a, b, c = (torch.load(tmp_path / d / "model.pt", weights_only=True)["model"] for d in ("first", "tuned", "fresh"))
    for k in params:
        torch.testing.assert_close(a[k], b[k])
    assert any(not torch.equal(a[k], c[k]) for k in params)
    config = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert config["init"] == str(start) and len(config["init_sha256_10"]) == 10
    other = replace(TINY, width=16)
    with pytest.raises(ValueError, match="model.pt: weights are of model"):
        train(TrainConfig((str(tiny_data),), str(tmp_path / "bad"), model=other, epochs=1, batch_size=2,
                          val_frames=None, init=str(start)), progress=False)


def test_resume_after_kill_9(tiny_data, tmp_path):
    import signal
    import time

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "depthnet.train", "--data", str(tiny_data), "--out", str(out), "--preset", "cpu",
           "--width", "8", "--input-size", "64", "--stages", "1", "1", "--epochs", "3", "--batch-size", "2",
           "--checkpoint-every", "1", "--threads", "1", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["global_step"] == 3 * 4 and ck["epoch"] == 3
    assert len((out / "metrics.csv").read_text().strip().splitlines()) >= 2


def test_nan_stops_with_the_file_names(tiny_data, tmp_path, monkeypatch):
    original = HandDepthDataset.__getitem__

    def poisoned(self, i):
        s = original(self, i)
        return s._replace(rgb=s.rgb * float("nan"))

    monkeypatch.setattr(HandDepthDataset, "__getitem__", poisoned)
    with pytest.raises(NonFiniteLossError, match="000"):
        train(_tiny_config(tiny_data, tmp_path / "nan"), progress=False)


def test_ddp_two_cpu_processes(tiny_data, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "depthnet.train", "--data", str(tiny_data), "--out", str(out), "--width", "8", "--input-size", "64",
           "--stages", "1", "1", "--epochs", "1", "--batch-size", "2", "--threads", "1", "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ck["global_step"] == 2  # 8 frames / 2 processes / batch 2
    DepthNet.load(out / "model.pt")


def test_evaluate_and_predict(tiny_data, tmp_path):
    from depthnet.evaluate import eval_main, evaluate

    run = tmp_path / "ev"
    train(replace(_tiny_config(tiny_data, run), epochs=1), progress=False)
    net = DepthNet.load(run / "model.pt")
    m = evaluate(net, tiny_data, figure=tmp_path / "fig.png")
    assert np.isfinite(m["depth_error_mm"]) and np.isfinite(m["surface_error_mm"]) and 0 <= m["iou"] <= 1
    assert m["frames"] == 8
    f = [v for _, v in m["f_curve"]]
    assert f == sorted(f) and f[0] == 0.0
    assert (tmp_path / "fig.png").exists()
    # the flat-hand reference from the recording's truth alone (eq. 1-2 at output resolution)
    from depthnet.data import _downsample_depth
    from handrgbd.recording import Recording
    rec, flat = Recording(tiny_data), []
    for i in range(len(rec)):
        d = rec[i].depth_gt_mm if rec[i].depth_gt_mm is not None else rec[i].depth_mm
        d = cv2.resize(d, (net.config.input_size,) * 2, interpolation=cv2.INTER_NEAREST)
        d = _downsample_depth(d, 4)
        fg = (d > 0) & (d < d[d > 0].min() + 300)
        flat.append(np.abs(d[fg] - d[fg].mean()))  # mm
    assert m["flat_error_mm"] == pytest.approx(np.concatenate(flat).mean(), rel=1e-4)
    for k in ("tilt_error_deg", "flat_tilt_error_deg"):  # None when no frame has 20 pixels hand in both masks
        assert (m[k] is None) == (m["tilt_error_deg"] is None) and (m[k] is None or 0 <= m[k] <= 90)
    bins = m["by_hand_fraction"]  # the size bins partition the frames; E is their pixel-weighted mean
    assert sum(b["frames"] for b in bins) == m["frames"]
    per_bin = [b["depth_error_mm"] for b in bins if b["frames"]]
    assert min(per_bin) - 1e-4 <= m["depth_error_mm"] <= max(per_bin) + 1e-4
    assert eval_main(["--data", str(tiny_data), "--weights", str(run / "model.pt"), "--out", str(tmp_path / "o")]) == 0
    assert {"depth_error_mm", "iou", "frames"} <= set(json.loads((tmp_path / "o" / "metrics.json").read_text()))
    pred = net.predict(np.zeros((50, 70, 3), np.uint8))
    assert pred.relative.shape == (50, 70) and pred.mask.shape == (50, 70) and pred.mask.dtype == bool


def test_hand_surface_takes_the_nearest_reliable_value():
    from depthnet.evaluate import hand_surface

    rng = np.random.default_rng(3)
    rel = rng.normal(size=(13, 17)).astype(np.float32)
    ok = rng.random((13, 17)) < 0.3
    out = hand_surface(rel, ok)
    assert out.dtype == np.float32 and np.array_equal(out[ok], rel[ok])
    good = np.argwhere(ok)
    for r, c in np.argwhere(~ok):  # brute force: a reliable pixel at the least Euclidean distance
        d2 = ((good - (r, c)) ** 2).sum(1)
        assert out[r, c] in rel[tuple(good[d2 == d2.min()].T)]
    for none_or_all in (np.zeros_like(ok), np.ones_like(ok)):
        assert np.array_equal(hand_surface(rel, none_or_all), rel)
    with pytest.raises(ValueError, match="same shape"):
        hand_surface(rel, ok[:, :5])


@pytest.mark.parametrize("image, message", [
    (np.zeros((64, 64), np.uint8), "grayscale"),
    (np.zeros((64, 64, 4), np.uint8), "4-channel"),
    (np.zeros((64, 64, 3), np.uint16), "uint8"),
    (np.zeros((8, 8, 3), np.uint8), "too small"),
])
def test_predict_rejects_bad_images(image, message):
    with pytest.raises(ValueError, match=message):
        DepthNet(TINY).predict(image)


def test_bad_weight_files(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.pt"):
        DepthNet.load(bad)
    other = tmp_path / "other.pt"
    torch.save({"model": DepthNet(TINY).state_dict(), "config": replace(TINY, width=16).to_dict()}, other)
    with pytest.raises(ValueError, match="do not fit"):
        DepthNet.load(other)
    with pytest.raises(ValueError, match="not found"):
        DepthNet.load(tmp_path / "missing.pt")


def test_ablation_runs_and_resumes(tiny_data, tmp_path, monkeypatch):
    from experiments import ablation

    monkeypatch.setitem(ablation.SETTINGS, "tiny", dict(model=TINY, epochs=1, train_frames=8, test_frames=4))
    res = ablation.run(str(tiny_data), str(tiny_data), tmp_path, "tiny", variants=((0, 1), (1, 2)), progress=False)
    assert set(res) == {"0+1", "1+2"} and all(np.isfinite(r["depth_error_mm"]) for r in res.values())
    again = ablation.run(str(tiny_data), str(tiny_data), tmp_path, "tiny", variants=((0, 1), (1, 2)), progress=False)
    assert again == res  # finished variants are reused
    text = ablation.table(res)
    assert "24.64" in text and "0+1" in text


def test_loading_zeroes_dead_weights_without_changing_outputs(tmp_path):
    """Weights below DEAD_WEIGHT (weight decay's leftovers, slow on the CPU as subnormal products):
    loading zeroes them and the outputs stay bit for bit."""
    torch.set_flush_denormal(False)  # compare as computed, subnormal products included
    # the v3 weights as trained held 27% of such values; the shipped file, whose stages were copied
    # from them by loading, holds them zeroed. Made again here: a tenth of each convolution's weights
    # set to 1e-35
    shipped = torch.load(dm.pretrained_path("cpu"), map_location="cpu", weights_only=True)
    g = torch.Generator().manual_seed(0)
    stored = {k: torch.where(torch.rand(v.shape, generator=g) < 0.1, 1e-35, v) if v.dim() == 4 else v
              for k, v in shipped["model"].items()}
    path = tmp_path / "dead.pt"
    torch.save({"model": stored, "config": shipped["config"]}, path)
    dead = sum(int(((v.abs() < dm.DEAD_WEIGHT) & (v != 0)).sum()) for v in stored.values() if v.is_floating_point())
    assert dead > 1000
    loaded = DepthNet.load(path)
    assert all(int(((v.abs() < dm.DEAD_WEIGHT) & (v != 0)).sum()) == 0
               for v in loaded.state_dict().values() if v.is_floating_point())
    raw = DepthNet(loaded.config)
    raw.load_state_dict(stored)
    raw.eval()
    x = torch.rand(2, 3, loaded.config.input_size, loaded.config.input_size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(raw(x).stages, loaded(x).stages)
    # small but live weights and integer buffers stay as they are
    state = {"w": torch.tensor([1e-6, -1e-29, 1e-31, -1e-35, 0.0]), "n": torch.tensor(7)}
    out = dm.zero_dead_weights(state)
    assert out["w"].tolist() == [pytest.approx(1e-6), pytest.approx(-1e-29), 0.0, 0.0, 0.0]
    assert out["n"] is state["n"]


def test_pretrained_path_finds_exactly_one_file(tmp_path, monkeypatch):
    monkeypatch.setattr(dm, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="no shipped weights"):
        dm.pretrained_path("cpu")
    (tmp_path / "depthnet_cpu_aaaaaaaaaa.pt").write_bytes(b"x")
    assert dm.pretrained_path("cpu").name == "depthnet_cpu_aaaaaaaaaa.pt"
    (tmp_path / "depthnet_cpu_bbbbbbbbbb.pt").write_bytes(b"y")
    with pytest.raises(ValueError, match="several shipped weights"):
        dm.pretrained_path("cpu")


def test_tilt_error_against_analytic_planes():
    """Planes through a point 500 mm away, tilted about the x axis: the angle is the tilt difference."""
    from depthnet.evaluate import tilt_error_deg
    from handrgbd.camera import CameraIntrinsics

    cam = CameraIntrinsics(300.0, 310.0, 60.0, 50.0, 128, 96)
    uv = np.stack(np.meshgrid(np.arange(20.0, 100), np.arange(20.0, 80)), -1).reshape(-1, 2)
    ray = np.stack([(uv[:, 0] - cam.cx) / cam.fx, (uv[:, 1] - cam.cy) / cam.fy, np.ones(len(uv))], -1)

    def depth(tilt_deg):  # plane through (0, 0, 500) with normal (0, sin t, -cos t): z along each ray
        n = np.array([0.0, np.sin(np.radians(tilt_deg)), -np.cos(np.radians(tilt_deg))])
        return (n @ [0.0, 0.0, 500.0]) / (ray @ n)

    assert tilt_error_deg(uv, depth(25), depth(25), cam) == pytest.approx(0.0, abs=1e-5)
    assert tilt_error_deg(uv, depth(25), depth(-10), cam) == pytest.approx(35.0, abs=1e-6)
    assert tilt_error_deg(uv, depth(25), np.full(len(uv), 480.0), cam) == pytest.approx(25.0, abs=1e-6)
    # a constant offset is not a tilt
    assert tilt_error_deg(uv, depth(25), depth(25) + 40.0, cam) < 2.0


def test_output_pixels_map_to_the_frame_pixels_they_sample():
    """_output_uv against the evaluation path itself: a depth map that encodes each frame pixel's column and row."""
    from depthnet.data import Augmentation, _downsample_depth, augment_pair
    from depthnet.evaluate import _output_uv

    h, w, size = 90, 130, 64
    v, u = np.mgrid[:h, :w]
    code = (1000 + u + 1000 * v).astype(np.float32)  # column and row, exactly representable
    _, warped = augment_pair(np.zeros((h, w, 3), np.uint8), code, size, Augmentation(enabled=False),
                             np.random.default_rng(0))
    out = _downsample_depth(warped, 4)
    rows, cols = np.nonzero(out > 0)
    uv = _output_uv((w, h), size, 4, rows, cols)
    sampled = out[rows, cols] - 1000
    assert np.all(np.abs(uv[:, 0] - sampled % 1000) <= 0.5 + 1e-6)  # nearest neighbour: within half a pixel
    assert np.all(np.abs(uv[:, 1] - sampled // 1000) <= 0.5 + 1e-6)


def test_plane_normal_faces_the_camera_and_refuses_too_few_points():
    from depthnet.evaluate import plane_normal

    rng = np.random.default_rng(1)
    xy = rng.uniform(-50, 50, (40, 2))
    for sign in (1, -1):  # the points' order and the SVD's sign do not matter
        pts = np.column_stack([xy, 400 + 0.5 * xy[:, 0]])  # z = 400 + 0.5 x
        n = plane_normal(pts[::sign])
        assert n == pytest.approx(np.array([0.5, 0.0, -1.0]) / np.sqrt(1.25), abs=1e-9)
    with pytest.raises(ValueError, match="N >= 3"):
        plane_normal(np.zeros((2, 3)))


def test_evaluate_tilt_is_zero_for_the_truth(tiny_data, monkeypatch):
    """evaluate's tilt path end to end: an estimate equal to the truth has no tilt error (and E 0,
    IoU 1), while the flat-hand reference on the same frames does."""
    import depthnet.evaluate as ev
    from depthnet.targets import make_targets

    real_frames = ev._frames

    def perfect(net, rec, indices, batch=8, source="depth_gt", crop=None, jpeg=None, low_light=None):
        for f, rgb, depth, rel, mask, hand, heads in real_frames(net, rec, indices, batch, source, crop, jpeg, low_light):
            t = make_targets(depth)
            yield (f, rgb, depth, np.where(t.mask > 0, t.relative, 1.0).astype(np.float32), t.mask.astype(np.float32),
                   hand, heads)

    monkeypatch.setattr(ev, "_frames", perfect)
    m = ev.evaluate(DepthNet(TINY), tiny_data)
    assert m["depth_error_mm"] == pytest.approx(0.0, abs=1e-3) and m["iou"] == 1.0
    assert m["tilt_error_deg"] == pytest.approx(0.0, abs=1e-3)
    assert m["flat_tilt_error_deg"] > 1.0


def test_targets_from_a_labelled_mask():
    from depthnet.targets import targets_from_mask

    d = np.array([[0, 500, 520], [790, 801, 1500]], np.float32)
    hand = np.array([[1, 1, 0], [0, 1, 0]], bool)  # the 0 reading drops out; 520 is near but not hand
    t = targets_from_mask(d, hand)
    np.testing.assert_array_equal(t.mask, [[0, 1, 0], [0, 1, 0]])
    assert t.mean_depth_mm == pytest.approx((500 + 801) / 2)
    assert t.relative[0, 2] == 1.0 and t.relative[0, 1] == pytest.approx((500 - 650.5) / 200)
    assert np.isnan(targets_from_mask(d, np.zeros_like(hand)).mean_depth_mm)


def test_eval_takes_the_hand_from_mask_on_real_style_recordings(tmp_path, capsys):
    """Without depth_gt/ (a real recording) the true hand is mask/; with neither, a clear error
    unless --foreground eq1 asks for the paper's rule."""
    import shutil

    from depthnet.evaluate import eval_main, evaluate

    rec_dir = tmp_path / "real"
    shutil.copytree("data/embedded/test_sequence", rec_dir)
    shutil.rmtree(rec_dir / "depth_gt")
    net = DepthNet.from_pretrained()
    m = evaluate(net, rec_dir, max_frames=4)
    assert m["foreground"] == "mask" and m["frames"] == 4 and 0 < m["depth_error_mm"] < 100 and m["iou"] > 0.5
    shutil.rmtree(rec_dir / "mask")
    assert eval_main(["--data", str(rec_dir), "--frames", "2", "--json"]) == 2
    err = capsys.readouterr().err
    assert "no depth_gt/ and no mask/" in err and "--foreground eq1" in err
    assert eval_main(["--data", str(rec_dir), "--frames", "2", "--json", "--foreground", "eq1"]) == 0
    assert json.loads(capsys.readouterr().out)["foreground"] == "eq1"


@pytest.fixture(scope="module")
def forearm_data(tmp_path_factory):
    from synth.generator import SynthConfig, generate

    out = tmp_path_factory.mktemp("dn") / "forearm"
    generate(out, 4, seed=6, config=SynthConfig(size=64, scenario="forearm"), progress=False)
    return out


def test_hand_foreground_targets_are_the_labelled_hand(forearm_data):
    """A network of the labelled hand (foreground "hand") learns mask/ with its own mean as the
    zero of relative depth: the targets equal targets_from_mask on the frame's clean depth and
    mask/ at the output pixels, while eq. 1's also hold the arm."""
    from depthnet.targets import targets_from_mask
    from handrgbd.recording import Recording

    none = Augmentation(enabled=False)  # 64 px frames to a 64 px input: the warp is the identity
    eq1 = HandDepthDataset(forearm_data, 64, none)
    hand = HandDepthDataset(forearm_data, 64, none, foreground="hand")
    rec = Recording(forearm_data)
    arm = 0.0
    for i in range(len(rec)):
        f = rec[i]
        want = targets_from_mask(f.depth_gt_mm[2::4, 2::4], f.mask[2::4, 2::4] > 0)  # output pixel j: input 4j + 2
        got = hand[i]
        np.testing.assert_array_equal(got.mask[0].numpy(), want.mask)
        np.testing.assert_allclose(got.relative[0].numpy(), want.relative, atol=1e-6)
        arm += float(eq1[i].mask.sum() - got.mask.sum())
        assert ((eq1[i].mask > 0) | (got.mask == 0)).all()  # the hand is inside eq. 1's foreground
    assert arm > 10  # eq. 1 keeps the arm (labelled not-hand in mask/)
    with pytest.raises(ValueError, match="foreground must be one of"):
        HandDepthDataset(forearm_data, 64, none, foreground="arm")


def test_hand_foreground_needs_mask_for_every_frame(forearm_data, tmp_path):
    import shutil

    rec_dir = tmp_path / "nomask"
    shutil.copytree(forearm_data, rec_dir)
    first = sorted((rec_dir / "mask").iterdir())[0]
    first.unlink()
    with pytest.raises(ValueError, match=r"nomask: a network of the labelled hand .* needs mask/ for every frame \(3 of 4"):
        HandDepthDataset(rec_dir, 64, foreground="hand")
    HandDepthDataset(rec_dir, 64)  # eq. 1 does not need it


def test_sensor_mean_depth_over_eq1_or_the_hand_mask():
    from depthnet.targets import sensor_mean_depth

    d = np.zeros((4, 6), np.float32)
    d[0, :3] = [500, 510, 520]   # the hand
    d[1, :2] = [450, 460]        # an arm, nearer, not in the network's mask
    d[2, 0] = 1500               # the background, where the mask spills over the hand's outline
    hand = np.zeros(d.shape, bool)
    hand[0, :3] = hand[2, 0] = hand[3, 0] = True  # (3, 0) has no reading
    assert sensor_mean_depth(d) == pytest.approx(np.mean([500, 510, 520, 450, 460]))  # eq. 1: all within 300 mm
    assert sensor_mean_depth(d, hand) == pytest.approx(510)  # 1500 is more than 300 mm past the nearest, 500
    hand[0, 0] = False
    assert sensor_mean_depth(d, hand) == pytest.approx(515)
    assert np.isnan(sensor_mean_depth(d, np.zeros_like(hand)))


def test_a_hand_network_starts_from_eq1_weights_and_is_evaluated_on_mask(forearm_data, tmp_path):
    from depthnet.evaluate import evaluate, foreground_source
    from handrgbd.recording import Recording

    torch.set_num_threads(1)
    train(replace(_tiny_config(forearm_data, tmp_path / "eq1"), epochs=1), progress=False)
    start = tmp_path / "eq1" / "model.pt"
    hand_cfg = replace(TINY, foreground="hand")
    train(TrainConfig((str(forearm_data),), str(tmp_path / "hand"), model=hand_cfg, epochs=1, batch_size=2,
                      val_frames=None, lr=0.0, init=str(start)), progress=False)
    a, b = (torch.load(tmp_path / d / "model.pt", weights_only=True) for d in ("eq1", "hand"))
    assert b["config"]["foreground"] == "hand" and a["config"]["foreground"] == "eq1"
    for name, _ in DepthNet(TINY).named_parameters():  # lr 0: the eq. 1 weights, unchanged
        torch.testing.assert_close(a["model"][name], b["model"][name])
    net = DepthNet.load(tmp_path / "hand" / "model.pt")
    assert net.predict(np.zeros((64, 64, 3), np.uint8)).foreground == "hand"
    assert evaluate(net, forearm_data, max_frames=2)["foreground"] == "mask"
    assert evaluate(DepthNet.load(start), forearm_data, max_frames=2)["foreground"] == "depth_gt"
    rec = Recording(forearm_data)
    assert foreground_source(rec, "mask") == "mask" and foreground_source(rec, "eq1", "hand") == "depth_gt"
    with pytest.raises(ValueError, match="foreground must be one of"):
        DepthNetConfig(foreground="arm")


def test_the_prepared_gpu_run_works_end_to_end_on_a_few_frames(tmp_path):
    """depthnet/device_finetune.sh (docs/depthnet.md, "A prepared GPU run") in its SMOKE sizes on
    the CPU: every command it chains still exists with these options, and its candidate loads as
    a keypoint network trained from the shipped stages."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "out"
    env = dict(os.environ, SMOKE="1", PLAIN="4", SCEN="2", VAL="2", BATCH="2", PYTHON=sys.executable,
               DATA=str(tmp_path / "data"))
    p = subprocess.run(["bash", os.path.join(repo, "depthnet", "device_finetune.sh"), str(out)], env=env,
                       capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert sorted(f.name for f in out.iterdir()) == ["config.json", "env.txt", "log.txt", "metrics.csv", "model.pt"]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert len(rows) == 2 and "val2_depth_error_mm" in rows[0]  # one epoch, plain and scenario validation
    net = DepthNet.load(out / "model.pt")
    assert net.config.keypoint_head == "hourglass" and net.config.foreground == "eq1"
    augmentation = json.loads((out / "config.json").read_text())["augmentation"]
    assert augmentation["jpeg_prob"] == 0.5 and augmentation["low_light_prob"] == 0.3
    shipped = DepthNet.from_pretrained("cpu").state_dict()
    changed = [k for k, v in net.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, shipped[k])]
    assert any(k.startswith("stem.") for k in changed) and any("keypoint" in k for k in changed)  # stages and heads
    assert "torch" in (out / "env.txt").read_text() and "GL" in (out / "env.txt").read_text()


def test_jpeg_augmentation_compresses_before_the_warp_and_is_off_by_default():
    from depthnet.data import augment_frame, augment_matrix, jpeg_roundtrip

    rng0 = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:96]
    rgb = np.dstack([(xx * 2) % 256, (yy * 3) % 256, ((xx + yy) * 5) % 256]).astype(np.uint8)
    rgb[30:60, 30:60] = rng0.integers(0, 256, (30, 30, 3))  # texture: JPEG changes it
    depth = np.full((96, 96), 600, np.float32)
    plain = augment_frame(rgb, depth, 64, Augmentation(), np.random.default_rng(1))
    off = augment_frame(rgb, depth, 64, Augmentation(jpeg_prob=0.0), np.random.default_rng(1))
    for a, b in zip(plain[:3], off[:3]):  # no draw, no change: the paper's augmentation to the bit
        np.testing.assert_array_equal(a, b)
    aug = Augmentation(jpeg_prob=1.0, jpeg_quality=(40, 40), color_jitter=0.0)
    out, d, A, flipped = augment_frame(rgb, depth, 64, aug, np.random.default_rng(1))
    np.testing.assert_array_equal(A, plain[2])  # the same warp: drawn first, as before
    np.testing.assert_array_equal(d, plain[1])  # depth untouched
    # reference: compress the frame at its own resolution, then the same warp
    ok, buf = cv2.imencode(".jpg", rgb[..., ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 40])
    ref = cv2.warpAffine(cv2.imdecode(buf, 1)[..., ::-1].copy(), A[:2], (64, 64), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    np.testing.assert_array_equal(out, ref)
    assert np.abs(out.astype(int) - augment_frame(rgb, depth, 64, replace(aug, jpeg_prob=0.0),
                                                  np.random.default_rng(1))[0]).max() > 10
    q90 = np.abs(jpeg_roundtrip(rgb, 90).astype(int) - rgb).mean()
    q20 = np.abs(jpeg_roundtrip(rgb, 20).astype(int) - rgb).mean()
    assert 0 < q90 < q20  # lower quality, larger error
    with pytest.raises(ValueError, match="jpeg_prob"):
        Augmentation(jpeg_prob=1.5)
    with pytest.raises(ValueError, match="jpeg_quality"):
        Augmentation(jpeg_quality=(50, 20))


def test_low_light_noise_follows_the_photon_count_and_keeps_the_brightness():
    """depthnet.data.low_light against the model's own numbers: on flat patches the mean light
    stays (but in the darks at high gain, clipped at 0), the noise as shot and read noise predict (at mid-grey
    a little over sqrt(16) = 4 times from gain 1 to 16), the darks noisier than the lights at the
    same gain; gain 1 keeps it small; the same rng seed gives the same frame; bad gains refused.
    And as an augmentation: drawn before JPEG and the warp, off by default (no draw)."""
    from depthnet.data import FULL_WELL_E, READ_NOISE_E, augment_frame, low_light

    flat = {v: np.full((200, 200, 3), v, np.uint8) for v in (40, 128, 230)}
    std = {}
    for v, img in flat.items():
        for g in (1.0, 16.0):
            out = low_light(img, g, np.random.default_rng(5)).astype(float)
            # the light is kept (in linear light: 8-bit values lose a little to the gamma's curve),
            # but for the darks at high gain: 2 electrons against 3 of read noise, clipped at 0
            if g == 1.0 or v >= 128:
                assert np.mean((out / 255) ** 2.2) == pytest.approx((v / 255) ** 2.2, rel=0.05)
            std[v, g] = out.std()
    # predicted sRGB noise at mid-grey: linear x, electrons n = FULL_WELL_E x / g, relative
    # noise sqrt(n + r^2) / n (shot and read noise), through the gamma's slope (255 / 2.2) x^(1 / 2.2)
    x = (128 / 255) ** 2.2
    for g in (1.0, 16.0):
        n = FULL_WELL_E * x / g
        predicted = 255 / 2.2 * x ** (1 / 2.2) * np.sqrt(n + READ_NOISE_E ** 2) / n
        assert std[128, g] == pytest.approx(predicted, rel=0.05)
    assert 4.0 < std[128, 16.0] / std[128, 1.0] < 5.0  # sqrt(16), and the read noise on 16x fewer electrons
    assert std[40, 16.0] > std[128, 16.0] > std[230, 16.0]
    np.testing.assert_array_equal(low_light(flat[128], 4.0, np.random.default_rng(2)),
                                  low_light(flat[128], 4.0, np.random.default_rng(2)))
    for bad in (0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="gain"):
            low_light(flat[128], bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="low_light_prob"):
        Augmentation(low_light_prob=-0.1)
    with pytest.raises(ValueError, match="low_light_gain"):
        Augmentation(low_light_gain=(0.5, 2.0))
    depth = np.full((96, 96), 600, np.float32)
    rgb = np.full((96, 96, 3), 128, np.uint8)
    plain = augment_frame(rgb, depth, 64, Augmentation(color_jitter=0.0), np.random.default_rng(1))
    noisy = augment_frame(rgb, depth, 64, Augmentation(color_jitter=0.0, low_light_prob=1.0), np.random.default_rng(1))
    np.testing.assert_array_equal(noisy[2], plain[2])  # the same warp, drawn first
    np.testing.assert_array_equal(noisy[1], plain[1])  # depth untouched
    inside = (slice(16, 48), slice(16, 48))
    assert plain[0][inside].std() == 0 and noisy[0][inside].std() > 2


def test_a_run_from_before_the_jpeg_option_resumes(tiny_data, tmp_path, monkeypatch):
    torch.set_num_threads(1)
    cut = tmp_path / "old"
    calls = {"n": 0}
    original = HandDepthDataset.__getitem__

    def crash(self, i):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return original(self, i)

    monkeypatch.setattr(HandDepthDataset, "__getitem__", crash)
    with pytest.raises(KeyboardInterrupt):
        train(_tiny_config(tiny_data, cut), progress=False)
    monkeypatch.setattr(HandDepthDataset, "__getitem__", original)
    stored = json.loads((cut / "config.json").read_text())
    for k in ("jpeg_prob", "jpeg_quality", "low_light_prob", "low_light_gain"):  # what an older run's config.json holds
        del stored["augmentation"][k]
    (cut / "config.json").write_text(json.dumps(stored))
    assert train(_tiny_config(tiny_data, cut), resume=True, progress=False)["steps"] == 8
    with pytest.raises(ValueError, match="augmentation"):  # a changed augmentation still refuses
        train(_tiny_config(tiny_data, cut, augmentation=Augmentation(jpeg_prob=0.5)), resume=True, progress=False)


# ---- weight-space ensembles (depthnet.merge) ------------------------------------------------

def _weights_file(path, seed, config=TINY):
    torch.manual_seed(seed)
    net = DepthNet(config)
    for m in net.modules():  # running statistics that differ between the files, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.num_batches_tracked.fill_(seed + 1)
    torch.save({"model": net.state_dict(), "config": config.to_dict(), "epoch": 1, "global_step": 10}, path)
    return net.state_dict()


def test_merge_adds_shares_of_each_fine_tunes_change(tmp_path):
    from depthnet.merge import merge_weights

    a, b, c = (_weights_file(tmp_path / f"{n}.pt", s) for n, s in (("a", 0), ("b", 1), ("c", 2)))
    for shares in [(0.0, 0.0), (1.0, 0.0), (0.25, 0.5)]:
        out = merge_weights(tmp_path / "a.pt", [(tmp_path / "b.pt", shares[0]), (tmp_path / "c.pt", shares[1])],
                            tmp_path / "m.pt", overwrite=True)
        merged = DepthNet.load(out).state_dict()
        for name, t in a.items():
            if not t.is_floating_point():  # BatchNorm's step counter: the base's
                assert torch.equal(merged[name], t), name
                continue
            x, y, z = (d[name].numpy().astype(np.float64) for d in (a, b, c))
            want = x + shares[0] * (y - x) + shares[1] * (z - x)  # plain numpy reference
            np.testing.assert_allclose(merged[name].numpy(), want, rtol=1e-6, atol=1e-7, err_msg=name)
        if shares == (0.0, 0.0):
            assert all(torch.equal(merged[k], a[k]) for k in a)  # the base itself, bit for bit
        if shares == (1.0, 0.0):
            assert all(torch.equal(merged[k], b[k]) for k in a if a[k].is_floating_point())


def test_merge_refuses_networks_of_another_model(tmp_path, capsys):
    from depthnet.merge import merge_main, merge_weights

    _weights_file(tmp_path / "a.pt", 0)
    _weights_file(tmp_path / "wide.pt", 1, replace(TINY, width=16))
    with pytest.raises(ValueError, match="wide.pt: a network of .*merge networks of one model"):
        merge_weights(tmp_path / "a.pt", [(tmp_path / "wide.pt", 0.5)], tmp_path / "m.pt")
    assert not (tmp_path / "m.pt").exists()
    for add, why in [(["a.pt", "half"], "the share must be a number"), (["wide.pt", "0.5"], "merge networks of one model"),
                     (["missing.pt", "0.5"], "missing.pt: weights file not found")]:
        assert merge_main(["--base", str(tmp_path / "a.pt"), "--add", str(tmp_path / add[0]), add[1],
                           "--out", str(tmp_path / "m.pt")]) == 2
        assert why in capsys.readouterr().err
    assert not (tmp_path / "m.pt").exists()
    out = tmp_path / "new" / "m.pt"  # the folder is made; an existing file is kept without --overwrite
    assert merge_main(["--base", str(tmp_path / "a.pt"), "--add", str(tmp_path / "a.pt"), "1", "--out", str(out)]) == 0
    before = out.read_bytes()
    assert merge_main(["--base", str(tmp_path / "a.pt"), "--add", str(tmp_path / "a.pt"), "0", "--out", str(out)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err and out.read_bytes() == before


def _scores_as_a_copy(tiny_data, tmp_path, change, **degrade):
    """``evaluate(tiny_data, **degrade)`` against ``evaluate`` of a copy of the folder whose
    rgb/ frames went through ``change(rgb (H, W, 3) uint8 RGB, frame index)``: the same scores;
    and against the folder as it is: different ones. Returns the degraded run's result."""
    import shutil

    from depthnet.evaluate import evaluate

    copy = tmp_path / "copy"
    shutil.copytree(tiny_data, copy)
    for i, png in enumerate(sorted((copy / "rgb").glob("*.png"))):
        changed = change(cv2.imread(str(png))[..., ::-1].copy(), i)
        cv2.imwrite(str(png), np.ascontiguousarray(changed[..., ::-1]))
    torch.manual_seed(0)
    net = DepthNet(TINY).eval()
    degraded, copied, as_is = evaluate(net, tiny_data, **degrade), evaluate(net, copy), evaluate(net, tiny_data)
    for key in degrade:
        assert degraded[key] == degrade[key] and copied[key] is None
    for key in ("depth_error_mm", "iou", "surface_error_mm"):
        assert degraded[key] == copied[key], key
    assert degraded["depth_error_mm"] != as_is["depth_error_mm"]
    return degraded


def test_eval_jpeg_is_a_recompressed_copy_of_the_folder(tiny_data, tmp_path, capsys):
    """``evaluate(..., jpeg=Q)`` scores what a folder whose rgb/ went through JPEG at Q scores
    (the copy made with OpenCV here, independently), and compression does change the result."""
    from depthnet.evaluate import eval_main

    def recompress(rgb, i):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 30])
        return cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]

    _scores_as_a_copy(tiny_data, tmp_path, recompress, jpeg=30)
    with pytest.raises(SystemExit) as e:
        eval_main(["--data", str(tiny_data), "--jpeg", "0"])
    assert e.value.code == 2 and "--jpeg: must be an integer in [1, 100]" in capsys.readouterr().err


def test_eval_low_light_is_a_noisy_copy_of_the_folder(tiny_data, tmp_path, capsys):
    """``evaluate(..., low_light=G)`` scores what a folder whose rgb/ went through
    ``low_light(rgb, G, rng((LOW_LIGHT_SEED, frame index)))`` scores (then JPEG when both are
    given: the sensor's noise, then the stream's compression); the noise changes the result."""
    from depthnet.data import LOW_LIGHT_SEED, jpeg_roundtrip, low_light
    from depthnet.evaluate import eval_main

    def dim(rgb, i):
        return jpeg_roundtrip(low_light(rgb, 8.0, np.random.default_rng((LOW_LIGHT_SEED, i))), 60)

    _scores_as_a_copy(tiny_data, tmp_path, dim, low_light=8.0, jpeg=60)
    with pytest.raises(SystemExit) as e:
        eval_main(["--data", str(tiny_data), "--low-light", "0.5"])
    assert e.value.code == 2 and "--low-light" in capsys.readouterr().err
