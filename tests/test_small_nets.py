"""What the tracker's small networks share (tracker/small_nets.py): training interrupted after an
epoch resumes from its atomic checkpoint and writes weights the network's loader takes; a missing
or foreign weights file, and a recording without the labels a training needs, are errors naming
the file."""

from __future__ import annotations

import numpy as np
import pytest

EMBEDDED = "data/embedded/test_sequence"


def _start_net():
    import tracker.start_net as sn

    def check(data, out):
        assert sn.StartPredictor(out).predict(data["x"][0].astype(np.float32))[0].shape == (len(sn.rotation_bins()),)

    return sn, check


def _hand_split():
    import tracker.hand_split as hs

    S = hs.SPLIT_SIZE

    def check(data, out):
        assert data["x"].shape[1:] == (3, S, S) and data["y"].shape[1:] == (S, S)
        assert hs.HandSplitter(out).probability(data["x"][0].astype(np.float32)).shape == (S, S)

    return hs, check


@pytest.mark.parametrize("network", [_start_net, _hand_split], ids=["start_net", "hand_split"])
def test_training_checkpoints_resume_and_write_loadable_weights(network, tmp_path, monkeypatch):
    """Two epochs on the embedded sequence's frames, interrupted after the first: the second run
    resumes from the checkpoint, writes weights the network's loader takes, and removes the
    checkpoint."""
    pytest.importorskip("torch")
    import tracker.small_nets as small_nets

    module, check = network()
    data = {k: v[:24] for k, v in module.prepare([EMBEDDED]).items()}
    out = tmp_path / "w.pt"
    real_save, calls = small_nets.save_torch, []

    def crash_after_first(obj, path):
        real_save(obj, path)
        calls.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(small_nets, "save_torch", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        module.train(data, out, epochs=2, batch=8, val=4)
    assert calls == [tmp_path / "w.pt.ckpt"] and not out.exists()
    monkeypatch.setattr(small_nets, "save_torch", real_save)
    metrics = module.train(data, out, epochs=2, batch=8, val=4)
    assert metrics["epoch"] == 2 and not (tmp_path / "w.pt.ckpt").exists()
    check(data, out)


#: each network's loader, and what its training's error names in a recording without its labels
LOADERS = {"start_net": ("tracker.start_net", "StartPredictor", "sr305.*poses.npy"),
           "hand_split": ("tracker.hand_split", "HandSplitter", "sr305.*mask/")}


@pytest.mark.parametrize("name", list(LOADERS))
def test_bad_weights_and_recordings_name_the_file(name, tmp_path):
    pytest.importorskip("torch")
    import importlib

    module_name, loader_name, unlabelled = LOADERS[name]
    module = importlib.import_module(module_name)
    loader = getattr(module, loader_name)
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        loader(tmp_path / "nothing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not weights")
    with pytest.raises(ValueError, match="bad.pt"):
        loader(bad)
    assert module.default_weights().is_file()
    with pytest.raises(ValueError, match=unlabelled):
        module.prepare(["tests/data/sr305"])
