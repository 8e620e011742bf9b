"""depthnet.runtime: ONNX Runtime inference against torch, the export cache, the torch fallback."""

from __future__ import annotations

import logging
import sys

import numpy as np
import pytest
import torch

import depthnet.runtime as rt
from depthnet.model import DepthNet, DepthNetConfig
from depthnet.runtime import Inference

TINY = DepthNetConfig(mask_stages=1, depth_stages=2, width=8, input_size=64, hourglass_depth=3, stem="light")


def _needs_onnxruntime():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def tiny_net() -> DepthNet:
    torch.manual_seed(3)
    net = DepthNet(TINY)
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding them in is exercised
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_onnxruntime_matches_torch_on_the_shipped_weights(tmp_path):
    """The default backend's maps are torch's within 1e-3, one frame and a batch alike."""
    _needs_onnxruntime()
    from handrgbd.recording import Recording

    net = DepthNet.from_pretrained()
    fast = Inference(net, cache=tmp_path)
    assert fast.backend == "onnxruntime"
    rec = Recording("data/embedded/test_sequence")
    for i in (0, 17):
        rgb = rec[i].rgb
        a, b = net.predict(rgb), fast.predict(rgb)
        assert np.abs(a.relative - b.relative).max() < 1e-3
        assert (a.mask != b.mask).mean() < 1e-3  # only pixels whose mask map sits at 0.5 may flip
    s = net.config.input_size
    x = np.random.default_rng(0).random((3, 3, s, s), dtype=np.float32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).stages.numpy()
    out = fast(x)
    assert out.shape == ref.shape == (3, net.config.stages, 1, s // 4, s // 4)
    assert np.abs(out - ref).max() < 1e-3
    with pytest.raises(ValueError, match=r"\(B, 3, 192, 192\)"):
        fast(x[:, :, :64, :64])


def test_the_export_is_cached_and_a_damaged_cache_replaced(tiny_net, tmp_path, monkeypatch):
    _needs_onnxruntime()
    rgb = np.random.default_rng(1).integers(0, 256, (80, 90, 3), dtype=np.uint8)
    want = tiny_net.predict(rgb).relative
    first = Inference(tiny_net, "onnxruntime", cache=tmp_path)
    files = list(tmp_path.glob("depthnet-*.onnx"))
    assert len(files) == 1 and not list(tmp_path.glob(".*tmp"))
    np.testing.assert_allclose(first.predict(rgb).relative, want, atol=1e-5)

    calls = []
    real_export = rt._export
    monkeypatch.setattr(rt, "_export", lambda net: calls.append(1) or real_export(net))
    Inference(tiny_net, "onnxruntime", cache=tmp_path)
    assert calls == []  # read from the cache
    files[0].write_bytes(b"damaged")
    again = Inference(tiny_net, "onnxruntime", cache=tmp_path)
    assert calls == [1] and files[0].read_bytes() != b"damaged"
    np.testing.assert_allclose(again.predict(rgb).relative, want, atol=1e-5)

    other = DepthNet(TINY).eval()  # other weights: another key, another file
    Inference(other, "onnxruntime", cache=tmp_path)
    assert len(list(tmp_path.glob("depthnet-*.onnx"))) == 2
    monkeypatch.setattr(rt, "_EXPORT_SOURCES", ("model.py",))  # other code, same weights: another file
    Inference(tiny_net, "onnxruntime", cache=tmp_path)
    assert len(list(tmp_path.glob("depthnet-*.onnx"))) == 3

    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")  # a cache that cannot be written: exported in memory
    ok = Inference(tiny_net, "onnxruntime", cache=blocked / "cache")
    np.testing.assert_allclose(ok.predict(rgb).relative, want, atol=1e-5)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("HANDRGBD_CACHE", str(tmp_path / "mine"))
    assert rt.cache_dir() == tmp_path / "mine"
    monkeypatch.delenv("HANDRGBD_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rt.cache_dir() == tmp_path / "xdg" / "handrgbd"


def test_without_onnxruntime_auto_falls_back_to_torch(tiny_net, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as when not installed
    with caplog.at_level(logging.WARNING, logger="depthnet.runtime"):
        slow = Inference(tiny_net)
    assert slow.backend == "torch" and "pip install onnxruntime onnx" in caplog.text
    rgb = np.full((64, 64, 3), 128, np.uint8)
    np.testing.assert_array_equal(slow.predict(rgb).relative, tiny_net.predict(rgb).relative)
    with pytest.raises(ValueError, match="onnxruntime is not usable here .*pip install onnxruntime onnx"):
        Inference(tiny_net, "onnxruntime")
    with pytest.raises(ValueError, match="unknown depthnet backend 'tensorrt'"):
        Inference(tiny_net, "tensorrt")
