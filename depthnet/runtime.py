"""depthnet inference, one frame at a time on the CPU: ONNX Runtime when installed, torch otherwise.

``Inference(net)`` runs a trained ``DepthNet`` for prediction only: ``(B, 3, S, S) float32 in
[0, 1]`` -> stage maps ``(B, S_M + S_D, 1, S/4, S/4) float32``, and ``predict(rgb)`` gives the
same ``Prediction`` as ``DepthNet.predict``. Backends (``BACKENDS``):

* ``onnxruntime``: the network exported to ONNX (torch's TorchScript-based exporter, opset 18)
  and run by ONNX Runtime's CPU provider. Measured one frame at a time on 2 AVX2 cores
  (benchmarks/depthnet_speed.py): about 4x torch eager for the cpu preset, outputs within 1e-6.
* ``torch``: the module itself, eager, under ``torch.no_grad()``.

``backend="auto"`` (the default) is ``onnxruntime`` when ``onnxruntime`` and ``onnx`` import and
the export succeeds, else ``torch`` with one warning saying why.

The export takes seconds, so the ONNX model is cached: ``$HANDRGBD_CACHE`` or
``$XDG_CACHE_HOME/handrgbd`` or ``~/.cache/handrgbd``, file ``depthnet-<key>.onnx`` where the
key hashes the weights, the config, torch's version and the opset. A cache that cannot be
written is skipped (the model is exported in memory each time); a damaged file is replaced.

ONNX Runtime's threads do not spin-wait between runs (``allow_spinning`` 0): the tracker's
numba threads run on the same cores right after, and spinning threads would take their time
(measured: numba kernel + depthnet alternating, 39 ms spinning off against 50 ms on).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from depthnet.model import DepthNet, Prediction, hash_tensors, network_input, prediction_from_stages
from handrgbd.cache import cache_dir

log = logging.getLogger(__name__)

__all__ = ["Inference", "BACKENDS", "cache_dir", "onnx_model"]

BACKENDS = ("onnxruntime", "torch")
OPSET = 18


class _Stages(torch.nn.Module):
    """The network with plain tensors out (the exporter takes no NamedTuple): the stages, then
    the heatmaps and the side's logits when the network has those heads."""

    def __init__(self, net: DepthNet):
        super().__init__()
        self.net = net

    def forward(self, rgb: torch.Tensor):
        out = self.net(rgb)
        return tuple(t for t in (out.stages, out.heatmaps, out.handedness) if t is not None)


def _output_names(net: DepthNet) -> list[str]:
    return ["stages"] + (["heatmaps"] if net.config.keypoints else []) + (["handedness"] if net.config.handedness else [])


#: what the export depends on besides the weights: the network's code and the export's settings
_EXPORT_SOURCES = ("model.py", "layers.py", "runtime.py")


def _key(net: DepthNet) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([net.config.to_dict(), torch.__version__, OPSET], sort_keys=True).encode())
    here = Path(__file__).resolve().parent
    for name in _EXPORT_SOURCES:  # a change to the network's code (same config, same weights) is a new model
        h.update((here / name).read_bytes())
    hash_tensors(h, sorted(net.state_dict().items()))
    return h.hexdigest()[:16]


def _export(net: DepthNet) -> bytes:
    s = net.config.input_size
    buf = io.BytesIO()
    was_training = net.training
    net.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            names = _output_names(net)
            torch.onnx.export(_Stages(net), (torch.zeros(1, 3, s, s),), buf, input_names=["rgb"],
                              output_names=names, opset_version=OPSET, dynamo=False,
                              dynamic_axes={"rgb": {0: "batch"}, **{n: {0: "batch"} for n in names}})
    finally:
        net.train(was_training)
    return buf.getvalue()


def onnx_model(net: DepthNet, cache: Path | None = None) -> tuple[bytes, Path | None, bool]:
    """The network as an ONNX model (bytes), its cache file (None when the cache could not be
    written) and whether it was read from there (else exported now)."""
    from handrgbd.outputs import atomic_write_bytes

    path = (cache_dir() if cache is None else Path(cache)) / f"depthnet-{_key(net)}.onnx"
    try:
        if path.is_file():
            return path.read_bytes(), path, True
    except OSError as e:
        log.debug("cannot read %s (%s): exporting again", path, e)
    model = _export(net)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, model)
    except OSError as e:
        log.info("cannot cache the exported depthnet in %s (%s); it is exported on every start", path.parent, e)
        return model, None, False
    return model, path, False


def _session(model: bytes, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


class Inference:
    """A trained ``DepthNet`` for prediction only (see the module docstring).

    net : the network (its weights are read once, at construction: later changes are not seen).
    backend : ``"auto"``, ``"onnxruntime"`` or ``"torch"``.
    threads : CPU threads (default: torch's, the machine's cores).
    cache : folder for the exported model (default ``cache_dir()``).
    """

    def __init__(self, net: DepthNet, backend: str = "auto", threads: int | None = None, cache: Path | None = None):
        if backend not in ("auto", *BACKENDS):
            raise ValueError(f"unknown depthnet backend {backend!r}; choose from {['auto', *BACKENDS]}")
        self.net = net
        self.config = net.config
        self.threads = int(threads or torch.get_num_threads())
        self._session = None
        if backend in ("auto", "onnxruntime"):
            try:
                self._session = self._open(cache)
            except Exception as e:  # missing package, exporter or runtime failure: torch serves
                why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
                if isinstance(e, ImportError):
                    why += "; pip install onnxruntime onnx"
                if backend == "onnxruntime":
                    raise ValueError(f"depthnet backend onnxruntime is not usable here ({why})") from e
                log.warning("depthnet runs on torch, several times slower one frame at a time: onnxruntime is not "
                            "usable (%s)", why)
        self.backend = "onnxruntime" if self._session is not None else "torch"

    def _open(self, cache: Path | None):
        import onnxruntime  # noqa: F401  (fail before the export when the runtime is missing)

        model, path, cached = onnx_model(self.net, cache)
        try:
            return _session(model, self.threads)
        except Exception:
            if not cached:
                raise
            log.info("damaged cached model %s: exporting again", path)
            path.unlink(missing_ok=True)
            return _session(onnx_model(self.net, cache)[0], self.threads)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``(B, 3, S, S) float32 in [0, 1]`` -> ``(B, S_M + S_D, 1, S/4, S/4) float32``."""
        return self.outputs(x)[0]

    def outputs(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(B, 3, S, S) float32 in [0, 1]`` -> stages ``(B, S_M + S_D, 1, S/4, S/4)``, heatmaps
        ``(B, 21, S/4, S/4)`` or None, right-hand logits ``(B,)`` or None (networks without the
        heads)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        s = self.config.input_size
        if x.ndim != 4 or x.shape[1:] != (3, s, s):
            raise ValueError(f"depthnet input must be (B, 3, {s}, {s}), got {x.shape}")
        if self._session is not None:
            out = dict(zip(_output_names(self.net), self._session.run(None, {"rgb": x})))
            return out["stages"], out.get("heatmaps"), out.get("handedness")
        with torch.no_grad():
            was_training = self.net.training
            self.net.eval()
            try:
                out = self.net(torch.from_numpy(x))
            finally:
                self.net.train(was_training)
        return (out.stages.numpy(), None if out.heatmaps is None else out.heatmaps.numpy(),
                None if out.handedness is None else out.handedness.numpy())

    def predict(self, rgb: np.ndarray) -> Prediction:
        """As ``DepthNet.predict``: ``(H, W, 3) uint8`` -> relative depth and mask at ``(H, W)``
        (and keypoints and side with a keypoint network)."""
        x, size = network_input(rgb, self.config.input_size)
        stages, heatmaps, sides = self.outputs(x)
        return prediction_from_stages(stages[0], self.config.mask_stages, size,
                                      None if heatmaps is None else heatmaps[0],
                                      None if sides is None else float(sides[0]), self.config.foreground)
