"""The paper's network: stacked hourglasses, the first stages supervised by the hand mask, the
later ones by relative depth; the last depth map is the output.

``DepthNet(config)``: ``(B, 3, S, S) float32 in [0, 1]`` -> ``DepthNetOutput`` with
``stages (B, S_M + S_D, 1, S/4, S/4)``: stage maps in order (mask stages first). Presets:

* ``paper``: 3 mask + 3 depth stages, width 128, 256 x 256 in, 64 x 64 out; the stem is a 7x7
  stride-2 convolution and a residual block at 128 x 128, then pooling and two residual blocks
  ("Init" in the paper).
* ``cpu``: the same 3 + 3 stages at width 64 with a lighter stem (a 5x5 stride-2 convolution to
  32 channels, a 3x3 stride-2 convolution, one residual block: no residual block at full
  resolution), 192 x 192 in, 48 x 48 out. Measured on 2 cores (benchmarks/depthnet_speed.py):
  paper 8.2 img/s inference / 3.7 training; this stem at 256 in: 42.8 / 13.9; at 192 in:
  60.8 / 23.1, the only variant tried that meets both CPU goals (25 / 15). The cost: a 48 x 48
  depth map instead of 64 x 64, and a quarter of the paper's parameters.
* ``cpu+keypoints``, ``paper+keypoints``: the same networks with two heads on the last stage's
  features (issue 21): 21 joint heatmaps ``(B, 21, S/4, S/4)`` (two residual blocks, then a 1x1
  convolution to one map per joint, ``handrgbd.Joint`` order; or, ``keypoint_head="hourglass"``,
  an hourglass of its own, ``KEYPOINT_HEADS``) and the hand's side (a residual
  block, two stride-2 convolutions, global average pooling and one linear unit: the logit of a
  right hand). The stages are unchanged: ``paper`` stays exactly
  the paper's network.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from depthnet.layers import Hourglass, Residual
from depthnet.targets import HEATMAP_SIGMA
from handrgbd.joints import NUM_JOINTS

log = logging.getLogger(__name__)

__all__ = ["DepthNetConfig", "DepthNet", "DepthNetOutput", "PRESETS", "Prediction", "WEIGHTS_DIR", "pretrained_path",
           "file_digest", "network_input", "prediction_from_stages", "keypoints_from_heatmaps", "heatmap_modes", "heads_only_difference",
           "FOREGROUNDS", "mask_has_arm", "KEYPOINT_MAPS", "KEYPOINT_HEADS", "SOFTMAX_PEAK", "output_to_image", "image_to_output", "OUTPUT_STRIDE"]

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
# Weight decay drives the weights of channels training no longer uses geometrically towards zero:
# 27% of the shipped file's values (weights and BatchNorm statistics) are below 1e-30. They add
# nothing a float32 sum of activations can hold, but their products are subnormal floats, on
# which the CPU takes a slow path (the shipped weights infer 3x slower as stored;
# benchmarks/depthnet_speed.py). Loading sets them to zero.
DEAD_WEIGHT = 1e-30


#: what a network's mask means (``DepthNetConfig.foreground``)
FOREGROUNDS = ("eq1", "hand")


def mask_has_arm(foreground: str) -> bool:
    """Whether a network of ``foreground`` (``FOREGROUNDS``) takes the arm into its mask: eq. 1's
    foreground does (and whatever lies within its 300 mm), the labelled hand's does not; the
    tracker's ``TrackerConfig.mask_has_arm``."""
    return foreground != "hand"

#: what a keypoint head's maps are (``DepthNetConfig.keypoint_maps``): ``"gaussian"``, maps
#: regressed to a Gaussian of peak 1 at each joint (heatmap MSE); ``"softmax"``, each map's logits
#: over its pixels, a distribution of where the joint is (cross-entropy against the normalised
#: Gaussian), output as ``softmax x SOFTMAX_PEAK``
KEYPOINT_MAPS = ("gaussian", "softmax")
#: the keypoint head's layers (``DepthNetConfig.keypoint_head``): ``"residual"``, two residual
#: blocks and a 1x1 convolution to the maps; ``"hourglass"``, a residual block, an hourglass of
#: its own, a residual block, a 1x1 convolution-BN-ReLU and the 1x1 convolution to the maps (the
#: depth stages' features say where the hand is, not where each joint is: on frozen stages this
#: head learnt the joints far faster than two residual blocks, docs/depthnet.md)
KEYPOINT_HEADS = ("residual", "hourglass")
#: a softmax map's scale: 2 pi sigma^2 of the targets' Gaussian (sigma ``HEATMAP_SIGMA`` output
#: pixels), so a distribution as sharp as the targets peaks at 1 as a Gaussian map does and the
#: peak reads as a confidence either way
SOFTMAX_PEAK = float(2.0 * np.pi * HEATMAP_SIGMA ** 2)


@dataclass(frozen=True)
class DepthNetConfig:
    """mask_stages (S_M), depth_stages (S_D), width (channels), input_size (square, divisible by
    64), hourglass_depth (4 halvings), stem ("paper" or "light"), keypoints (0, or 21: joint
    heatmaps on the last stage), handedness (a right-hand logit on the last stage), foreground:
    what the mask and the relative depth's mean were trained on (``FOREGROUNDS``: ``"eq1"``, the
    paper's eq. 1, everything within 300 mm of the nearest reading, arms and held objects too;
    ``"hand"``, the labelled hand of mask/ alone). It changes no weight: a network of either
    starts the other (``--init``). keypoint_maps (``KEYPOINT_MAPS``): how the keypoint head's
    maps are read (``"gaussian"``: the maps themselves; ``"softmax"``: a spatial softmax of them,
    scaled by ``SOFTMAX_PEAK``); set by the training loss. keypoint_head (``KEYPOINT_HEADS``):
    the keypoint head's layers."""

    mask_stages: int = 3
    depth_stages: int = 3
    width: int = 128
    input_size: int = 256
    hourglass_depth: int = 4
    stem: str = "paper"
    keypoints: int = 0
    handedness: bool = False
    foreground: str = "eq1"
    keypoint_maps: str = "gaussian"
    keypoint_head: str = "residual"

    def __post_init__(self) -> None:
        if self.foreground not in FOREGROUNDS:
            raise ValueError(f"foreground must be one of {FOREGROUNDS}, got {self.foreground!r}")
        if self.keypoint_maps not in KEYPOINT_MAPS:
            raise ValueError(f"keypoint_maps must be one of {KEYPOINT_MAPS}, got {self.keypoint_maps!r}")
        if self.keypoint_head not in KEYPOINT_HEADS:
            raise ValueError(f"keypoint_head must be one of {KEYPOINT_HEADS}, got {self.keypoint_head!r}")
        if self.keypoints not in (0, NUM_JOINTS):
            raise ValueError(f"keypoints must be 0 or {NUM_JOINTS}, got {self.keypoints}")
        if self.mask_stages < 0 or self.depth_stages < 1:
            raise ValueError(f"need mask_stages >= 0 and depth_stages >= 1, got {self.mask_stages}, {self.depth_stages}")
        if self.width < 8:
            raise ValueError(f"width must be >= 8, got {self.width}")
        if self.input_size % (4 * 2 ** self.hourglass_depth):
            raise ValueError(f"input_size must be divisible by {4 * 2 ** self.hourglass_depth}, got {self.input_size}")
        if self.stem not in ("paper", "light"):
            raise ValueError(f"stem must be 'paper' or 'light', got {self.stem!r}")

    @property
    def output_size(self) -> int:
        return self.input_size // 4

    @property
    def stages(self) -> int:
        return self.mask_stages + self.depth_stages

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, DepthNetConfig] = {
    "paper": DepthNetConfig(3, 3, 128, 256, 4, "paper"),
    "cpu": DepthNetConfig(3, 3, 64, 192, 4, "light"),
    "paper+keypoints": DepthNetConfig(3, 3, 128, 256, 4, "paper", NUM_JOINTS, True),
    "cpu+keypoints": DepthNetConfig(3, 3, 64, 192, 4, "light", NUM_JOINTS, True),
}


def heads_only_difference(a: DepthNetConfig, b: DepthNetConfig) -> bool:
    """Whether two configs differ only in their keypoint and handedness heads (their layers and how
    the keypoint maps are read) or their foreground (weights of one start the other: the stages load, new heads
    start from scratch)."""
    def bare(c: DepthNetConfig) -> DepthNetConfig:
        return replace(c, keypoints=0, handedness=False, foreground="eq1", keypoint_maps="gaussian",
                       keypoint_head="residual")
    return bare(a) == bare(b)


class DepthNetOutput(NamedTuple):
    """stages ``(B, S, 1, h, w)``: every stage's map, mask stages first; ``mask_stages`` S_M;
    heatmaps ``(B, 21, h, w)`` or None (read as ``DepthNetConfig.keypoint_maps`` says: a
    softmax network's are already ``softmax x SOFTMAX_PEAK``); handedness ``(B,)`` right-hand
    logits or None; keypoint_logits ``(B, 21, h, w)``: the head's raw maps (the training loss's
    input), or None without a keypoint head."""

    stages: torch.Tensor
    mask_stages: int
    heatmaps: torch.Tensor | None = None
    handedness: torch.Tensor | None = None
    keypoint_logits: torch.Tensor | None = None

    @property
    def depth(self) -> torch.Tensor:
        """``(B, 1, h, w)``: the last stage, the relative depth estimate."""
        return self.stages[:, -1]

    @property
    def mask(self) -> torch.Tensor | None:
        """``(B, 1, h, w)``: the last mask stage (None without mask stages)."""
        return self.stages[:, self.mask_stages - 1] if self.mask_stages else None


class Prediction(NamedTuple):
    """relative ``(H, W) float32`` (the paper's D_T; 1 = background), mask ``(H, W) bool``,
    both at the input image's resolution. With a keypoint network: keypoints_px ``(21, 2)``
    float64, the joints' pixel coordinates in the input image (sub-pixel peaks of the heatmaps,
    ``keypoints_from_heatmaps``), keypoint_confidence ``(21,)`` (each heatmap's peak value
    clipped to [0, 1], about 1 for a sure joint), right_prob (the probability of a right
    hand), and each heatmap's modes (``heatmap_modes``): keypoint_modes_px ``(21, M, 2)`` in the
    input image's pixels (mode 0 the peak, as keypoints_px) and keypoint_mode_ratio ``(21, M)``
    (each mode's value over the peak's; 0: no such mode); else None.
    foreground: what the mask means (``DepthNetConfig.foreground``: ``"eq1"`` or ``"hand"``)."""

    relative: np.ndarray
    mask: np.ndarray
    keypoints_px: np.ndarray | None = None
    keypoint_confidence: np.ndarray | None = None
    right_prob: float | None = None
    foreground: str = "eq1"
    keypoint_modes_px: np.ndarray | None = None
    keypoint_mode_ratio: np.ndarray | None = None


class DepthNet(nn.Module):
    def __init__(self, config: DepthNetConfig = PRESETS["paper"]):
        super().__init__()
        self.config = config
        w = config.width
        if config.stem == "paper":
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                Residual(64, 128), nn.MaxPool2d(2), Residual(128, 128), Residual(128, w))
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(3, 32, 5, stride=2, padding=2), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
                nn.Conv2d(32, w, 3, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                Residual(w, w))
        n = config.stages
        self.hourglasses = nn.ModuleList(Hourglass(config.hourglass_depth, w) for _ in range(n))
        self.features = nn.ModuleList(
            nn.Sequential(Residual(w, w), nn.Conv2d(w, w, 1), nn.BatchNorm2d(w), nn.ReLU(inplace=True))
            for _ in range(n))
        self.heads = nn.ModuleList(nn.Conv2d(w, 1, 1) for _ in range(n))
        # Link layers: stage i's features and prediction re-enter stage i + 1
        self.link_features = nn.ModuleList(nn.Conv2d(w, w, 1) for _ in range(n - 1))
        self.link_preds = nn.ModuleList(nn.Conv2d(1, w, 1) for _ in range(n - 1))
        if config.keypoints and config.keypoint_head == "hourglass":
            self.keypoint_head = nn.Sequential(
                Residual(w, w), Hourglass(config.hourglass_depth, w), Residual(w, w),
                nn.Conv2d(w, w, 1), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.Conv2d(w, config.keypoints, 1))
        elif config.keypoints:
            self.keypoint_head = nn.Sequential(Residual(w, w), Residual(w, w), nn.Conv2d(w, config.keypoints, 1))
        if config.keypoints:
            # empty maps at the start: a new head's first, random maps would send large gradients
            # into stages trained for depth
            nn.init.zeros_(self.keypoint_head[-1].weight)
            nn.init.zeros_(self.keypoint_head[-1].bias)
        if config.handedness:  # which side is a matter of layout (thumb, palm or back): strided layers, then pooling
            self.handedness_head = nn.Sequential(
                Residual(w, w), nn.Conv2d(w, w, 3, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, stride=2, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(w, 1))

    def forward(self, rgb: torch.Tensor) -> DepthNetOutput:
        """rgb ``(B, 3, S, S) float32 in [0, 1]`` -> ``DepthNetOutput``."""
        stages, features = self.trunk(rgb)
        return DepthNetOutput(stages, self.config.mask_stages, *self.heads_from_features(features))

    def trunk(self, rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """rgb ``(B, 3, S, S) float32 in [0, 1]`` -> the stages' maps ``(B, S_M + S_D, 1, S/4, S/4)``
        and the last stage's features ``(B, width, S/4, S/4)``, the heads' input."""
        x = self.stem(rgb - 0.5)
        outs = []
        for i, (hg, feat, head) in enumerate(zip(self.hourglasses, self.features, self.heads)):
            f = feat(hg(x))
            pred = head(f)
            outs.append(pred)
            if i + 1 < len(self.hourglasses):
                x = x + self.link_features[i](f) + self.link_preds[i](pred)
        return torch.stack(outs, dim=1), f

    def heads_from_features(self, f: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None,
                                                             torch.Tensor | None]:
        """The last stage's features ``(B, width, h, w)`` (``trunk``) -> the heads' heatmaps
        ``(B, 21, h, w)``, right-hand logits ``(B,)`` and keypoint logits ``(B, 21, h, w)``, as in
        ``DepthNetOutput`` (None for a head the network lacks)."""
        logits = heatmaps = self.keypoint_head(f) if self.config.keypoints else None
        if logits is not None and self.config.keypoint_maps == "softmax":
            heatmaps = SOFTMAX_PEAK * torch.softmax(logits.flatten(2), dim=-1).view_as(logits)
        handedness = self.handedness_head(f)[:, 0] if self.config.handedness else None
        return heatmaps, handedness, logits

    # ---- weights -------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path, map_location: str = "cpu") -> "DepthNet":
        """Load a checkpoint or weights file written by ``depthnet.train`` (any preset)."""
        path = Path(path)
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except FileNotFoundError:
            raise ValueError(f"{path}: weights file not found") from None
        except OSError as e:
            raise ValueError(f"{path}: cannot read ({e.strerror or e})") from e
        if head != b"PK\x03\x04":  # torch.save writes a zip archive
            raise ValueError(f"{path}: not a weights file (torch.save writes a zip archive; this file starts "
                             f"with {head!r}); re-train or re-download it (README: shipped weights)")
        try:
            blob = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as e:  # torch raises several types on corrupt files
            first = (str(e).strip().splitlines() or [""])[0]
            raise ValueError(f"{path}: not a readable weights file ({type(e).__name__}: {first}); "
                             f"re-train or re-download it (README: shipped weights)") from e
        if not isinstance(blob, dict) or "model" not in blob or "config" not in blob:
            raise ValueError(f"{path}: not a handrgbd depthnet weights file (needs 'model' and 'config')")
        try:
            config = DepthNetConfig(**blob["config"])
        except TypeError as e:
            raise ValueError(f"{path}: bad model config {blob['config']}: {e}") from e
        net = cls(config)
        try:
            net.load_state_dict(zero_dead_weights(blob["model"]))
        except RuntimeError as e:
            raise ValueError(f"{path}: weights do not fit the config {config}: {str(e).splitlines()[0]}") from e
        net.eval()
        return net

    @classmethod
    def from_pretrained(cls, name: str = "cpu") -> "DepthNet":
        """The shipped weights (``depthnet/weights/depthnet_<name>_*.pt``)."""
        return cls.load(pretrained_path(name))

    @torch.no_grad()
    def predict(self, rgb: np.ndarray) -> Prediction:
        """One RGB image ``(H, W, 3) uint8`` of any size -> relative depth and mask at ``(H, W)``.

        The image is resized (not cropped) to the network's input; give it a crop around the hand.
        Runs this module in torch; ``depthnet.runtime.Inference`` gives the same, faster.
        """
        x, size = network_input(rgb, self.config.input_size)
        was_training = self.training
        self.eval()
        out = self(torch.from_numpy(x))
        self.train(was_training)
        return prediction_from_stages(out.stages[0].numpy(), self.config.mask_stages, size,
                                      None if out.heatmaps is None else out.heatmaps[0].numpy(),
                                      None if out.handedness is None else float(out.handedness[0]),
                                      self.config.foreground)


def network_input(rgb: np.ndarray, input_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """``(H, W, 3) uint8`` -> the network's input ``(1, 3, S, S) float32 in [0, 1]`` (resized,
    not cropped) and ``(H, W)``."""
    import cv2

    img = _check_rgb(rgb)
    h, w = img.shape[:2]
    s = input_size
    x = cv2.resize(img, (s, s), interpolation=cv2.INTER_AREA if min(h, w) > s else cv2.INTER_LINEAR)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255.0), (h, w)


def prediction_from_stages(stages: np.ndarray, mask_stages: int, size: tuple[int, int],
                           heatmaps: np.ndarray | None = None, handedness_logit: float | None = None,
                           foreground: str = "eq1") -> Prediction:
    """One image's stage maps ``(S_M + S_D, 1, h, w)`` -> ``Prediction`` at ``size`` ``(H, W)``:
    the last depth stage, and the last mask stage above 0.5 (without mask stages: relative
    depth below 0.5); with ``heatmaps (21, h, w)`` the keypoints in the image's pixels, with
    ``handedness_logit`` the probability of a right hand; ``foreground``: the network's
    ``DepthNetConfig.foreground``, passed on."""
    import cv2

    h, w = size
    rel = np.asarray(stages[-1, 0], dtype=np.float32)
    mask_map = stages[mask_stages - 1, 0] if mask_stages else (rel < 0.5).astype(np.float32)
    out_h, out_w = rel.shape
    rel = cv2.resize(rel, (w, h), interpolation=cv2.INTER_LINEAR)
    mask = cv2.resize(np.asarray(mask_map, np.float32), (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
    keypoints = confidence = modes = ratio = None
    if heatmaps is not None:
        uv, peak = keypoints_from_heatmaps(heatmaps)
        keypoints, confidence = output_to_image(uv, (out_w, out_h), (w, h)), np.clip(peak, 0.0, 1.0)
        modes, ratio = heatmap_modes(heatmaps, peaks=(uv, peak))  # mode 0: the same peak
        modes = output_to_image(modes, (out_w, out_h), (w, h))
    right = None if handedness_logit is None else float(1.0 / (1.0 + np.exp(-handedness_logit)))
    return Prediction(rel.astype(np.float32), mask, keypoints, confidence, right, foreground, modes, ratio)


#: the network's input side over its output side; output pixel j holds input pixel
#: ``OUTPUT_STRIDE * j + OUTPUT_STRIDE // 2`` (the targets keep every 4th pixel from the 3rd)
OUTPUT_STRIDE = 4


def output_to_image(uv: np.ndarray, out_size: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    """Output-map coordinates ``(..., 2)`` (column, row; pixel centres at integers) -> pixel
    coordinates of the image that was resized whole to the network's input: output pixel j is
    input pixel ``4 j + 2``, and input pixel x sees image pixel ``(x + 0.5) W / S - 0.5``."""
    uv = np.asarray(uv, dtype=np.float64)
    out = np.asarray(out_size, np.float64)
    scale = np.asarray(image_size, np.float64) / (OUTPUT_STRIDE * out)
    return (OUTPUT_STRIDE * uv + OUTPUT_STRIDE // 2 + 0.5) * scale - 0.5


def image_to_output(uv: np.ndarray, out_size: tuple[int, int], image_size: tuple[int, int]) -> np.ndarray:
    """The inverse of :func:`output_to_image`."""
    uv = np.asarray(uv, dtype=np.float64)
    scale = np.asarray(image_size, np.float64) / (OUTPUT_STRIDE * np.asarray(out_size, np.float64))
    return ((uv + 0.5) / scale - 0.5 - OUTPUT_STRIDE // 2) / OUTPUT_STRIDE


def keypoints_from_heatmaps(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(K, h, w)`` heatmaps -> each map's peak ``(K, 2)`` as (column, row) in heatmap pixels,
    refined to sub-pixel by a parabola through the peak and its neighbours along each axis, and
    its value ``(K,)`` (the confidence)."""
    hm = np.asarray(heatmaps, dtype=np.float64)
    k, h, w = hm.shape
    rows, cols = np.divmod(hm.reshape(k, -1).argmax(1), w)
    ix = np.arange(k)
    return _sub_pixel(hm, ix, rows, cols), hm[ix, rows, cols]


def _sub_pixel(hm: np.ndarray, maps: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Local maxima ``(maps, rows, cols)`` (index arrays ``(N,)``) of heatmaps ``hm (K, h, w)``
    refined to sub-pixel: a parabola through each and its neighbours along each axis (half a
    pixel at most; one on the border stays put there) -> ``(N, 2)`` (column, row)."""
    _, h, w = hm.shape
    peak = hm[maps, rows, cols]

    def offset(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        denom = left - 2 * peak + right
        return np.where(denom < 0, np.clip(0.5 * (left - right) / np.where(denom < 0, denom, -1.0), -0.5, 0.5), 0.0)

    inner_x, inner_y = (cols > 0) & (cols < w - 1), (rows > 0) & (rows < h - 1)
    dx = np.where(inner_x, offset(hm[maps, rows, np.maximum(cols - 1, 0)], hm[maps, rows, np.minimum(cols + 1, w - 1)]), 0.0)
    dy = np.where(inner_y, offset(hm[maps, np.maximum(rows - 1, 0), cols], hm[maps, np.minimum(rows + 1, h - 1), cols]), 0.0)
    return np.stack([cols + dx, rows + dy], axis=-1)


#: ``heatmap_modes``' defaults: at most this many modes per map, each at least ``MODE_RATIO`` of
#: the map's peak and more than ``MODE_SEPARATION`` output pixels from every higher one
MAX_MODES = 3
MODE_RATIO = 0.25
MODE_SEPARATION = 2.0


def heatmap_modes(heatmaps: np.ndarray, max_modes: int = MAX_MODES, min_ratio: float = MODE_RATIO,
                  separation: float = MODE_SEPARATION,
                  peaks: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(K, h, w)`` heatmaps -> each map's modes ``(K, M, 2)`` (column, row in heatmap pixels,
    sub-pixel as ``keypoints_from_heatmaps``; ``M = max_modes``) and their values over the map's
    peak ``(K, M)``, highest first: mode 0 is the peak (ratio 1). A mode is a local maximum of
    its 3 x 3 neighbourhood with at least ``min_ratio`` of the peak's value, more than
    ``separation`` pixels from every higher mode kept; missing modes have ratio 0 and repeat the
    peak's position. ``peaks``: ``keypoints_from_heatmaps(heatmaps)`` when the caller has it.
    Where the peak is wrong the true joint is often a lower mode of the same map
    (docs/tracker.md, "Heatmap modes")."""
    hm = np.asarray(heatmaps, dtype=np.float64)
    k, h, w = hm.shape
    peaks, peak_value = keypoints_from_heatmaps(hm) if peaks is None else peaks
    modes = np.repeat(peaks[:, None], max_modes, axis=1)
    ratio = np.zeros((k, max_modes))
    ratio[:, 0] = 1.0
    padded = np.pad(hm, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    neighbours = np.stack([padded[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
                           for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx])
    local = (hm >= neighbours.max(0)) & (hm > 0)
    for j in range(k):
        if not peak_value[j] > 0:
            continue
        rows, cols = np.nonzero(local[j] & (hm[j] >= min_ratio * peak_value[j]))
        if len(rows) < 2:
            continue
        order = np.argsort(-hm[j, rows, cols], kind="stable")
        rows, cols = rows[order], cols[order]
        refined = _sub_pixel(hm, np.full(len(rows), j), rows, cols).tolist()
        kept = [(float(peaks[j, 0]), float(peaks[j, 1]))]
        for (u, v), r, c in zip(refined, rows, cols):
            if all((u - a) ** 2 + (v - b) ** 2 > separation ** 2 for a, b in kept):
                modes[j, len(kept)] = u, v
                ratio[j, len(kept)] = hm[j, r, c] / peak_value[j]
                kept.append((u, v))
                if len(kept) == max_modes:
                    break
    return modes, ratio


def zero_dead_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` with every floating-point value below ``DEAD_WEIGHT`` in magnitude set to 0.
    For the shipped weights the outputs stay bit-identical (tested); in general a change is far
    below float32 resolution of any output that is not itself that tiny. The CPU speed changes."""
    return {k: v.masked_fill(v.abs() < DEAD_WEIGHT, 0.0)
            if isinstance(v, torch.Tensor) and v.is_floating_point() else v for k, v in state.items()}


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    img = np.asarray(rgb)
    if img.dtype != np.uint8:
        raise ValueError(f"RGB image must be uint8, got {img.dtype} (16-bit or float images: convert to 8-bit RGB)")
    if img.ndim != 3 or img.shape[2] != 3:
        what = "grayscale" if img.ndim == 2 else (f"{img.shape[2]}-channel" if img.ndim == 3 else f"{img.ndim}-D")
        raise ValueError(f"RGB image must be (H, W, 3), got {what} {img.shape} (convert RGBA/grayscale to RGB)")
    if min(img.shape[:2]) < 16:
        raise ValueError(f"image {img.shape[1]}x{img.shape[0]} is too small (min 16 px per side)")
    return img


def hash_tensors(h, items) -> None:
    """Feed ``(name, tensor)`` pairs (a state dict's items, in the caller's order) into ``h``, a
    ``hashlib`` hash: each name, then the tensor's bytes (on the CPU, contiguous)."""
    for name, value in items:
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())


def file_digest(path: str | Path) -> str:
    """First 10 hex digits of the file's SHA-256 (shipped weights carry it in their name)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:10]


def pretrained_path(name: str = "cpu") -> Path:
    """The one shipped weights file of preset ``name``: ``depthnet/weights/depthnet_<name>_<digest>.pt``."""
    files = sorted(WEIGHTS_DIR.glob(f"depthnet_{name}_*.pt"))
    if not files:
        raise ValueError(f"no shipped weights for preset {name!r} in {WEIGHTS_DIR}; train them with the "
                         f"command in the README (section: shipped weights)")
    if len(files) > 1:
        raise ValueError(f"several shipped weights for preset {name!r} in {WEIGHTS_DIR}: "
                         f"{[f.name for f in files]}; keep one")
    return files[0]
