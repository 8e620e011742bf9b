"""``handrgbd train``: train the depth network on recording folders, resumable, DDP-ready.

Optimiser as the paper: Adam (lr 1e-3, weight decay 1e-5), StepLR halving every 30 of 100
epochs, scaled to the epoch count (``step = round(30 * epochs / 100)``). Loss: the sum over
stages of the per-pixel MSE (mask stages against the mask, depth stages against the relative
depth); a network with keypoint heads (``cpu+keypoints``) adds ``head_losses``: the heatmaps'
weighted MSE times ``KEYPOINT_LOSS_WEIGHT`` (or, ``--keypoint-loss softmax``, each map's spatial
softmax against the normalised Gaussian) and the side's cross-entropy times
``SIDE_LOSS_WEIGHT``. ``--init`` with weights of the same network without those heads (the
shipped ``cpu`` weights) starts the stages from them and the heads from scratch. Every epoch: validation metrics (if ``--val``) appended to ``RUN/metrics.csv``;
``RUN/config.json`` holds the resolved configuration.

Checkpoints (``RUN/checkpoint.pt``: model, optimizer, scheduler, epoch, step, config) are
written atomically (temporary file, then rename) every ``checkpoint_every`` steps and at each
epoch end. ``--resume`` continues from it after any interruption (``kill -9`` included): the
data order and augmentation of an epoch are a function of ``(seed, epoch)``, and the batches
already done are skipped, so a resumed run takes exactly the steps of an uninterrupted one.
``--init WEIGHTS`` starts from trained weights instead of a random initialisation (fine-tuning
on new data); the optimiser and schedule start fresh, and config.json records the file's digest.

``--freeze-stages`` (with ``--init``) trains the keypoint and side heads alone on the stages of
the starting weights, which stay exactly as they were (the depth and mask do not change). The
stages' last features are computed once per augmented pass of the training frames, in
evaluation mode, and kept in ``RUN/features/`` (float16; 3.5 GB for 12,000 frames of the cpu
preset), so a step costs the heads alone: 4-6 times less than a step of the whole network.
``--feature-passes P`` caches P differently augmented passes (epoch e trains on pass e mod P).
A pass is written in chunks and an interrupted one continues where it stopped. Hand-free squares
(``--hand-free``, ``--hand-free-mined``) are cached with the frames: on frozen stages they teach
the keypoint head alone to answer a square without a hand with flat maps.

Under ``torchrun --nproc_per_node K`` every process trains on its shard of each epoch's order
(DistributedDataParallel; gloo on CPU, nccl on GPUs); rank 0 writes the files.

``--device auto`` trains on the GPU when torch sees one (process ``LOCAL_RANK``'s GPU under
torchrun), else on the CPU; ``--workers N`` decodes and augments batches in N loader processes.
Neither changes what is trained on: a sample's augmentation is a function of ``(seed, epoch,
index)`` wherever it is computed, and checkpoints resume on either device.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import MISSING, asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn import functional as F
from torch.utils.data import DataLoader

from depthnet.data import Augmentation, HandDepthDataset, collate
from depthnet.model import (FOREGROUNDS, KEYPOINT_HEADS, PRESETS, DepthNet, DepthNetConfig, file_digest,
                            hash_tensors, heads_only_difference)
from depthnet.targets import HEATMAP_SIGMA
from handrgbd.args import MAX_WORKERS, SEED_MAX, CommandParser, existing_file, integer, number, out_path
from handrgbd.joints import NUM_JOINTS
from handrgbd.outputs import check_outputs, make_folder, save_torch, write_csv, write_json
from handrgbd.recording import Recording

log = logging.getLogger(__name__)

__all__ = ["TrainConfig", "train", "train_main", "stage_losses", "head_losses", "NonFiniteLossError", "export_weights",
           "build_parser", "TRAIN_OUTPUTS", "KEYPOINT_LOSS_WEIGHT", "SIDE_LOSS_WEIGHT", "softmax_divergence",
           "gaussian_heatmaps", "HEAD_MODULES"]


DEVICES = ("auto", "cpu", "cuda")  # auto: cuda when torch sees a GPU
#: what a run folder holds; a new run (no --resume) refuses a folder that has any of them
TRAIN_OUTPUTS = ("checkpoint.pt", "model.pt", "metrics.csv")
#: most mask or depth stages --stages accepts (the paper stacks 6 in all)
MAX_STAGES = 16
#: the network's modules that are heads (``--freeze-stages`` trains these alone; ``--stage-lr-scale``
#: scales the rest)
HEAD_MODULES = ("keypoint_head", "handedness_head")
#: a feature pass (``--freeze-stages``) records its progress every this many batches
FEATURE_FLUSH_BATCHES = 25


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite (message names the batch's frames)."""


@dataclass(frozen=True)
class TrainConfig:
    data: tuple[str, ...]
    out: str
    val: tuple[str, ...] = ()
    preset: str = "cpu"
    model: DepthNetConfig | None = None
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-5
    lr_step_epochs: int | None = None   # None: 30 of 100 epochs, scaled to ``epochs``
    lr_gamma: float = 0.5
    seed: int = 0
    max_frames: int | None = None      # use only the first N frames of the training data
    val_frames: int | None = 200
    checkpoint_every: int = 200
    threads: int | None = None
    stop_after_epoch: int | None = None  # end early; the learning-rate schedule still follows ``epochs``
    augmentation: Augmentation = field(default_factory=Augmentation)
    init: str | None = None             # weights file to start from (fine-tuning); ignored on resume
    device: str = "auto"                # "auto" (cuda when available), "cpu" or "cuda"
    workers: int = 0                    # data-loader processes (0: load in the training process)
    hand_weight: float = 1.0            # depth stages: squared error on true hand pixels x this (1: the paper)
    #: the stages' learning rate over ``lr`` when new heads start from scratch on trained stages
    #: (``init`` without the heads): 1 trains all alike; fine-tuning at 5e-4 for all moved the
    #: validation E from 21.6 to 28.0 mm in one epoch
    stage_lr_scale: float = 1.0
    plane_weight: float = 0.0           # depth stages: + this x the planar part of the hand's error (0: off)
    #: KEYPOINT_LOSSES: the heatmaps' MSE, with the soft-argmax L1 too, or a spatial softmax's
    #: divergence from the normalised Gaussian (the network's ``keypoint_maps`` follow: "softmax"
    #: for the last, else "gaussian")
    keypoint_loss: str = "heatmap"
    #: full-frame folders to cut hand-free squares from, and their share of each epoch's samples
    #: (``depthnet.data.HandDepthDataset``; 0: none, the paper's data)
    hand_free: tuple[str, ...] = ()
    hand_free_share: float = 0.0
    #: HAND_FREE_LOSSES: what a hand-free square trains: ``all`` its mask, depth and keypoint
    #: targets; ``keypoints`` its flat keypoint maps alone (the stages' mask and depth losses
    #: leave it out: the localiser reads the keypoints' confidence, the tracker the mask and depth)
    hand_free_losses: str = "all"
    #: mined squares files (``handrgbd mine --out``: squares without a hand the live localiser was
    #: sure of) and the share of the hand-free samples cut from them instead of random squares
    hand_free_mined: tuple[str, ...] = ()
    hand_free_mined_share: float = 0.0
    #: train the heads alone on cached features of the (``init``) stages, which stay unchanged
    freeze_stages: bool = False
    feature_passes: int = 1             # with freeze_stages: differently augmented passes cached

    def __post_init__(self) -> None:
        if self.preset not in PRESETS and self.model is None:
            raise ValueError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        if self.device not in DEVICES:
            raise ValueError(f"device must be auto, cpu or cuda, not {self.device!r}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0, not {self.workers}")
        if not (self.hand_weight >= 1.0 and math.isfinite(self.hand_weight)):
            raise ValueError(f"hand_weight must be finite and >= 1, not {self.hand_weight}")
        if not (self.plane_weight >= 0.0 and math.isfinite(self.plane_weight)):
            raise ValueError(f"plane_weight must be finite and >= 0, not {self.plane_weight}")
        if self.keypoint_loss not in KEYPOINT_LOSSES:
            raise ValueError(f"keypoint_loss must be one of {KEYPOINT_LOSSES}, not {self.keypoint_loss!r}")
        if self.keypoint_loss != "heatmap" and not self.model_config.keypoints:
            raise ValueError(f"keypoint_loss {self.keypoint_loss!r} needs a network with keypoint heads "
                             f"(--preset cpu+keypoints or paper+keypoints)")
        if not 0.0 <= self.hand_free_share < 1.0:
            raise ValueError(f"hand_free_share must be in [0, 1), not {self.hand_free_share}")
        if self.hand_free and self.hand_free_share == 0:
            raise ValueError("--hand-free needs --hand-free-share S > 0 (the share of samples cut from those folders)")
        if not 0.0 <= self.hand_free_mined_share <= 1.0:
            raise ValueError(f"hand_free_mined_share must be in [0, 1], not {self.hand_free_mined_share}")
        if bool(self.hand_free_mined) != (self.hand_free_mined_share > 0):
            raise ValueError("--hand-free-mined FILES and --hand-free-mined-share M > 0 go together")
        if self.hand_free_mined and self.hand_free_share == 0:
            raise ValueError("--hand-free-mined: the mined squares are a share of the hand-free samples; give "
                             "--hand-free-share S > 0 too")
        if self.hand_free_share > 0 and not self.hand_free and self.hand_free_mined_share < 1:
            raise ValueError("--hand-free-share needs --hand-free FOLDERS (full frames to cut hand-free squares from)")
        if self.hand_free_losses not in HAND_FREE_LOSSES:
            raise ValueError(f"hand_free_losses must be one of {HAND_FREE_LOSSES}, not {self.hand_free_losses!r}")
        if self.hand_free_losses == "keypoints" and self.hand_free_share > 0 and not self.model_config.keypoints:
            raise ValueError("--hand-free-losses keypoints needs a network with keypoint heads")
        if self.feature_passes < 1:
            raise ValueError(f"feature_passes must be >= 1, not {self.feature_passes}")
        if self.freeze_stages and not (self.model_config.keypoints or self.model_config.handedness):
            raise ValueError("--freeze-stages trains the heads alone: it needs a network with heads "
                             "(--preset cpu+keypoints or paper+keypoints)")

    @property
    def model_config(self) -> DepthNetConfig:
        model = self.model if self.model is not None else PRESETS[self.preset]
        if model.keypoints:  # the loss decides how the maps are read
            model = replace(model, keypoint_maps="softmax" if self.keypoint_loss == "softmax" else "gaussian")
        return model

    @property
    def step_size(self) -> int:
        return self.lr_step_epochs or max(1, round(30 * self.epochs / 100))

    def to_json(self) -> dict:
        d = asdict(self)
        d["model"] = self.model_config.to_dict()
        d["lr_step_epochs"] = self.step_size
        if self.init is not None:
            d["init_sha256_10"] = file_digest(self.init) if Path(self.init).is_file() else None
        return d


MIN_PLANE_PIXELS = 20  # a frame's hand needs this many output pixels for its plane to count


def planar_error(error: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean square of the planar part of ``error (B, 1, h, w)`` over the hand
    (``mask (B, 1, h, w)``, 1 on hand pixels): the least-squares fit ``a + b u + c v`` to the
    error on the hand, u and v the output pixel's column and row scaled to [-1, 1], is the
    part of the error that is a wrong level and tilt of the whole hand. Frames with fewer than
    ``MIN_PLANE_PIXELS`` hand pixels give 0 (and count as 0 in a batch mean). The fit's mean
    square does not depend on how u and v are scaled or centred; it includes the level ``a``.

    For the fit ``p = phi . k`` with ``G k = r`` (``G = sum phi phi^T``, ``r = sum phi e`` over the
    hand), the fit's mean square over the hand's n pixels is ``r . k / n``."""
    b, _, h, w = error.shape
    v, u = torch.meshgrid(torch.linspace(-1, 1, h, dtype=error.dtype, device=error.device),
                          torch.linspace(-1, 1, w, dtype=error.dtype, device=error.device), indexing="ij")
    phi = torch.stack([torch.ones_like(u), u, v]).reshape(3, h * w)
    m = mask.reshape(b, h * w)
    gram = torch.einsum("bn,in,jn->bij", m, phi, phi)
    r = torch.einsum("bn,in->bi", m * error.reshape(b, h * w), phi)
    n = m.sum(1)
    ok = n >= MIN_PLANE_PIXELS
    eye = torch.eye(3, dtype=error.dtype, device=error.device)
    # A hand whose pixels lie on one line (a strip at the crop's edge) makes the system singular:
    # a ridge of 1e-6 per pixel keeps it solvable and changes a regular fit by about 1e-6.
    gram = gram + 1e-6 * n.clamp(min=1.0)[:, None, None] * eye
    gram = torch.where(ok[:, None, None], gram, eye)  # frames without a hand: any solvable system, zeroed below
    k = torch.linalg.solve(gram, torch.where(ok[:, None], r, 0.0))
    return torch.where(ok, (r * k).sum(1) / n.clamp(min=1.0), 0.0)


def stage_samples(joint_uv: torch.Tensor, hand_free_losses: str = "all") -> torch.Tensor:
    """``(B,) bool``: the samples the stages' mask and depth losses take, given the batch's
    ``joint_uv (B, K, 2)``: all of them, or with ``hand_free_losses="keypoints"`` all but the
    hand-free squares (no joint anywhere: every position NaN)."""
    every = torch.ones(joint_uv.shape[0], dtype=torch.bool)
    return every if hand_free_losses == "all" else ~torch.isnan(joint_uv).flatten(1).all(1)


def stage_losses(stages: torch.Tensor, mask_stages: int, mask: torch.Tensor, relative: torch.Tensor,
                 hand_weight: float = 1.0, plane_weight: float = 0.0) -> torch.Tensor:
    """``(S,)`` per-stage MSE: stages ``(B, S, 1, h, w)``; the first ``mask_stages`` against
    ``mask (B, 1, h, w)``, the rest against ``relative``. With ``hand_weight`` w > 1 a depth
    stage's loss is the mean of ``(1 + (w - 1) mask) (pred - relative)^2``: the hand's shape
    weighs more against the background (w = 1 is the paper's plain MSE). With ``plane_weight``
    P > 0 a depth stage adds P times the batch mean of :func:`planar_error`: the hand's level
    and tilt, what the tracker needs most from the depth, weigh more than its local shape."""
    weight = 1.0 + (hand_weight - 1.0) * mask if hand_weight != 1.0 else None
    losses = []
    for s in range(stages.shape[1]):
        if s < mask_stages:
            losses.append(F.mse_loss(stages[:, s], mask))
            continue
        if weight is None:
            loss = F.mse_loss(stages[:, s], relative)
        else:
            loss = (weight * (stages[:, s] - relative) ** 2).mean()
        if plane_weight:
            loss = loss + plane_weight * planar_error(stages[:, s] - relative, mask).mean()
        losses.append(loss)
    return torch.stack(losses)


#: the heatmaps' MSE (peak 1, sigma 1.5 output pixels: about 0.3% of a 48 x 48 map is a joint's)
#: times this weighs about as much as one depth stage at the start of fine-tuning
KEYPOINT_LOSS_WEIGHT = 20.0
#: the side's binary cross-entropy (0.69 untrained) times this
SIDE_LOSS_WEIGHT = 0.2


#: ``--keypoint-loss``: ``heatmap`` (the MSE above) or ``integral``: the MSE plus the soft-argmax
#: coordinates' L1 error (integral regression, Sun et al., ECCV 2018), a gradient on where each
#: joint is from the first step, where the MSE of a near-empty map says little
#: ``softmax``: each map's logits through a softmax over its pixels, and the Kullback-Leibler
#: divergence of that from the Gaussian target normalised to sum 1 (the cross-entropy less the
#: target's entropy: 0 at a perfect map), the spatial cross-entropy of Mask R-CNN's keypoint
#: head. The heatmap MSE's gradient is tiny while the maps are near empty: empty maps score
#: 0.049, and heads on frozen stages still scored 0.044 after 1,500 steps (depthnet.md)
KEYPOINT_LOSSES = ("heatmap", "integral", "softmax")
#: what a hand-free sample trains (``TrainConfig.hand_free_losses``)
HAND_FREE_LOSSES = ("all", "keypoints")
#: soft-argmax sharpness: ``softmax(INTEGRAL_BETA * heatmap)`` over the map (heatmaps peak at 1)
INTEGRAL_BETA = 20.0
#: the integral term: L1 of the soft-argmax coordinates in map widths, times this
INTEGRAL_LOSS_WEIGHT = 1.0


def soft_argmax(heatmaps: torch.Tensor, beta: float = INTEGRAL_BETA) -> torch.Tensor:
    """``(B, K, h, w)`` heatmaps -> ``(B, K, 2)`` expected (column, row) in map pixels under
    ``softmax(beta * heatmap)`` over each map."""
    b, k, h, w = heatmaps.shape
    p = torch.softmax(beta * heatmaps.reshape(b, k, h * w), dim=-1).reshape(b, k, h, w)
    cols = torch.arange(w, dtype=p.dtype, device=p.device)
    rows = torch.arange(h, dtype=p.dtype, device=p.device)
    return torch.stack([(p.sum(2) * cols).sum(-1), (p.sum(3) * rows).sum(-1)], dim=-1)


def softmax_divergence(logits: torch.Tensor, target_heatmaps: torch.Tensor) -> torch.Tensor:
    """``(B, K, h, w)`` logits and Gaussian targets -> ``(B, K)``: KL(target || softmax(logits))
    over each map's pixels, the target normalised to sum 1; an empty target (a joint outside
    the map, weighed 0; or no joint anywhere, a hand-free sample) is a flat map: the network's
    answer where there is no joint to find."""
    t = target_heatmaps.flatten(2)
    total = t.sum(-1, keepdim=True)
    t = torch.where(total > 0, t / total.clamp_min(1e-12), 1.0 / t.shape[-1])
    log_p = torch.log_softmax(logits.flatten(2), dim=-1)
    return (t * (torch.log(t.clamp_min(1e-12)) - log_p)).sum(-1)


def gaussian_heatmaps(uv: torch.Tensor, size: tuple[int, int], sigma: float = HEATMAP_SIGMA) -> torch.Tensor:
    """Joints at output-map coordinates ``uv (B, K, 2)`` (column, row) -> ``(B, K, h, w)``
    heatmaps as ``depthnet.targets.keypoint_targets`` makes them: a Gaussian of peak 1 and
    standard deviation ``sigma`` at each joint inside the map, zeros for one outside."""
    h, w = size
    cols = torch.arange(w, dtype=uv.dtype, device=uv.device)
    rows = torch.arange(h, dtype=uv.dtype, device=uv.device)[:, None]
    u, v = uv[..., 0, None, None], uv[..., 1, None, None]
    maps = torch.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2.0 * sigma ** 2))
    inside = ((uv[..., 0] > -0.5) & (uv[..., 0] < w - 0.5) & (uv[..., 1] > -0.5) & (uv[..., 1] < h - 0.5)
              & torch.isfinite(uv).all(-1))
    return torch.where(inside[..., None, None], maps, 0.0)


def head_losses(heatmaps: torch.Tensor | None, handedness: torch.Tensor | None, target_heatmaps: torch.Tensor,
                joint_weights: torch.Tensor, right: torch.Tensor, joint_uv: torch.Tensor | None = None,
                keypoint_loss: str = "heatmap") -> torch.Tensor:
    """``(2,)``: the keypoint loss (each joint's heatmap MSE times its weight, ``(B, 21)``: 1
    visible, less hidden, 0 outside the image or without joints; averaged over the batch's
    joints and pixels, times ``KEYPOINT_LOSS_WEIGHT``; with ``keypoint_loss="integral"`` plus
    the weighted L1 distance of ``soft_argmax`` to ``joint_uv (B, 21, 2)`` in map widths, times
    ``INTEGRAL_LOSS_WEIGHT`` (none for a joint without ``joint_uv``, NaN: a hand-free sample's);
    with ``keypoint_loss="softmax"`` ``heatmaps`` are the head's logits and the loss is each
    map's ``softmax_divergence`` from its normalised target (flat where it is empty), times its
    weight, averaged over the batch's joints) and the side loss (binary cross-entropy of the
    right-hand logits ``(B,)`` against ``right`` in {0, 1}, samples with -1 left out, times
    ``SIDE_LOSS_WEIGHT``).
    A head that is None gives 0."""
    if keypoint_loss not in KEYPOINT_LOSSES:
        raise ValueError(f"keypoint_loss must be one of {KEYPOINT_LOSSES}, got {keypoint_loss!r}")
    zero = target_heatmaps.new_zeros(())
    kp = zero
    if heatmaps is not None and keypoint_loss == "softmax":
        kp = (joint_weights * softmax_divergence(heatmaps, target_heatmaps)).sum() / joint_weights.numel()
    elif heatmaps is not None:
        per_joint = ((heatmaps - target_heatmaps) ** 2).mean(dim=(2, 3))
        kp = KEYPOINT_LOSS_WEIGHT * (joint_weights * per_joint).sum() / joint_weights.numel()
        if keypoint_loss == "integral":
            if joint_uv is None:
                raise ValueError("the integral keypoint loss needs joint_uv")
            l1 = (soft_argmax(heatmaps) - joint_uv).abs().sum(-1) / heatmaps.shape[-1]
            l1 = torch.where(torch.isfinite(l1), l1, 0.0)  # no joint anywhere (a hand-free sample): no place to be
            kp = kp + INTEGRAL_LOSS_WEIGHT * (joint_weights * l1).sum() / joint_weights.numel()
    side = zero
    known = right >= 0
    if handedness is not None and bool(known.any()):
        side = SIDE_LOSS_WEIGHT * F.binary_cross_entropy_with_logits(handedness[known], right[known].to(handedness.dtype))
    return torch.stack([kp, side])


#: TrainConfig fields a resumed run may change: where and how it runs, not what it learns
RESUMABLE_CHANGES = ("out", "val", "val_frames", "checkpoint_every", "threads", "stop_after_epoch", "init",
                     "init_sha256_10", "device", "workers")


def _load_checkpoint(path: Path, config: TrainConfig, run_dir: Path) -> dict:
    """The checkpoint to resume, checked against ``config`` and the run's config.json: a resumed
    run learns what the run it continues learned (``RESUMABLE_CHANGES`` may differ)."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types on corrupt files
        first = (str(e).strip().splitlines() or [""])[0]
        raise ValueError(f"{path}: not a readable checkpoint ({type(e).__name__}: {first}); remove it to start "
                         f"afresh, or resume from a copy") from e
    if not isinstance(ck, dict) or not {"model", "optimizer", "scheduler", "epoch", "config"} <= set(ck):
        raise ValueError(f"{path}: not a training checkpoint (written by handrgbd train)")
    if _model_dict(ck["config"]) != config.model_config.to_dict():  # fields added since take their defaults
        raise ValueError(f"{path}: checkpoint is of model {ck['config']}, not {config.model_config}")
    stored = run_dir / "config.json"
    if stored.exists():
        try:
            before = json.loads(stored.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{stored}: cannot read ({e})") from e
        now = json.loads(json.dumps(config.to_json(), default=str))
        if isinstance(before.get("model"), dict):  # model fields added since (the heads) take their defaults
            before["model"] = _model_dict(before["model"])
        if isinstance(before.get("augmentation"), dict):  # augmentation fields added since (JPEG) too
            before["augmentation"] = {**json.loads(json.dumps(asdict(Augmentation()))), **before["augmentation"]}
        # keys an older run's config.json lacks (added to TrainConfig since) had their defaults
        fields = TrainConfig.__dataclass_fields__
        for k in set(now) - set(before):
            if k in fields and fields[k].default is not MISSING:
                before[k] = json.loads(json.dumps(fields[k].default, default=str))
        changed = sorted(k for k in before if k not in RESUMABLE_CHANGES and before[k] != now.get(k))
        if changed:
            raise ValueError(f"--resume: the run in {run_dir} was made with other settings ({', '.join(changed)}: "
                             f"{', '.join(f'{before.get(k)!r} now {now.get(k)!r}' for k in changed)}); resume with "
                             f"the same ones, or train into a new --out")
    return ck


def _model_dict(d: dict) -> dict:
    """A stored model config as ``DepthNetConfig.to_dict()`` gives it now: fields added since it
    was written take their defaults (a run from before the keypoint heads has none). Unreadable
    configs are returned as they are (they then differ)."""
    try:
        return DepthNetConfig(**d).to_dict()
    except (TypeError, ValueError):
        return d


def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng(np.random.SeedSequence([seed, epoch, 7919])).permutation(n)


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if world > 1 else (0, 1)


def _training_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    torch.cuda.set_device(device)
    return device


def _feature_pass(net: DepthNet, data: HandDepthDataset, samples: np.ndarray, p: int, folder: Path, batch_size: int,
                  workers: int, device: torch.device, progress: bool | str) -> tuple[np.ndarray, np.ndarray]:
    """Pass ``p`` of the feature cache (``--freeze-stages``): the last stage's features of the
    dataset's ``samples`` (``(n,)`` indices: hand frames, then hand-free squares) augmented as in
    epoch p, ``(n, width, h, w) float16`` (row k: sample ``samples[k]``), and their labels
    ``(n, 3 K + 1) float32``: joint_uv ``(K, 2)`` flattened (NaN for a hand-free square),
    joint_weights ``(K,)`` and right (K = 21). Kept in ``folder`` as ``pass{p}.npy`` and
    ``pass{p}_labels.npy`` (memory-mapped); ``pass{p}.json`` counts the samples done, so an
    interrupted pass continues where it stopped, and records the stages' digest
    (``_stage_digest``): a pass cached by other stages is refused (a resumed run's samples are its
    settings', which ``--resume`` checks)."""
    from numpy.lib.format import open_memmap

    from handrgbd.progress import Progress

    c = net.config
    feature_path, label_path, state_path = folder / f"pass{p}.npy", folder / f"pass{p}_labels.npy", folder / f"pass{p}.json"
    n = len(samples)
    shapes = {feature_path: (n, c.width, c.output_size, c.output_size), label_path: (n, 3 * NUM_JOINTS + 1)}
    done, digest = 0, _stage_digest(net)
    if state_path.exists() and feature_path.exists() and label_path.exists():
        try:
            state = json.loads(state_path.read_text())
            done = int(state["frames"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{state_path}: unreadable ({e}); remove {folder} to compute the features again") from e
        if done and state.get("stages_sha256_10") != digest:
            raise ValueError(f"{state_path}: these features were cached by other stage weights (another --init); "
                             f"remove {folder} to compute them again")
    if done:
        arrays = [open_memmap(path, "r+") for path in shapes]
        for path, a in zip(shapes, arrays):
            if a.shape != shapes[path]:
                raise ValueError(f"{path}: cached of shape {a.shape}, the run needs {shapes[path]}; remove {folder} "
                                 f"to compute the features again")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        need = 2 * math.prod(shapes[feature_path]) + 4 * math.prod(shapes[label_path])
        free = shutil.disk_usage(folder).free
        if need > free:
            raise ValueError(f"--freeze-stages: a pass of cached features needs {need / 1e9:.1f} GB in {folder}, "
                             f"{free / 1e9:.1f} GB are free (--max-frames uses fewer frames)")
        arrays = [open_memmap(feature_path, "w+", np.float16, shapes[feature_path]),
                  open_memmap(label_path, "w+", np.float32, shapes[label_path])]
    features, labels = arrays
    if done < n:
        log.info("caching the stages' features of %d frames (pass %d) in %s", n - done, p, folder)
        data.set_epoch(p)
        net.eval()
        batches = [[int(k) for k in samples[i:i + batch_size]] for i in range(done, n, batch_size)]
        loader = DataLoader(data, batch_sampler=batches, collate_fn=collate, num_workers=workers,
                            pin_memory=device.type == "cuda")
        bar = Progress(len(batches), f"features, pass {p + 1}", "batch", progress)
        for k, batch in enumerate(loader):
            with torch.no_grad():
                f = net.trunk(batch.rgb.to(device, non_blocking=True))[1]
            m = len(f)
            features[done:done + m] = f.cpu().numpy()
            labels[done:done + m] = torch.cat([batch.joint_uv.flatten(1), batch.joint_weights, batch.right[:, None]],
                                              dim=1).numpy()
            done += m
            if (k + 1) % FEATURE_FLUSH_BATCHES == 0 or done == n:
                features.flush()
                labels.flush()
                write_json(state_path, {"frames": done, "of": n, "stages_sha256_10": digest})
            bar.update()
        bar.close()
    del features, labels  # flushed; read back read-only
    return np.load(feature_path, mmap_mode="r"), np.load(label_path, mmap_mode="r")


def _stage_digest(net: DepthNet) -> str:
    """First 10 hex digits of the SHA-256 of the stages' weights and statistics (not the heads')."""
    h = hashlib.sha256()
    hash_tensors(h, ((name, value) for name, value in net.state_dict().items()
                     if name.split(".")[0] not in HEAD_MODULES))
    return h.hexdigest()[:10]


def train(config: TrainConfig, resume: bool = False, progress: bool | str = True) -> dict:
    """Train; returns the final metrics. Files go to ``config.out`` (rank 0 only)."""
    from handrgbd.progress import Progress

    device = _training_device(config.device)  # before the process group: nccl wants the GPU set
    rank, world = _distributed()
    if config.threads:
        torch.set_num_threads(config.threads)
    run_dir = Path(config.out)
    ckpt_path = run_dir / "checkpoint.pt"
    if rank == 0:  # a previous run is only ever continued (--resume), never replaced
        check_outputs(run_dir, TRAIN_OUTPUTS, overwrite=resume, remedy="pass --resume to continue that run")
    torch.manual_seed(config.seed)
    data = HandDepthDataset(config.data, config.model_config.input_size, config.augmentation, config.seed,
                            foreground=config.model_config.foreground, hand_free=config.hand_free,
                            hand_free_share=config.hand_free_share, hand_free_mined=config.hand_free_mined,
                            hand_free_mined_share=config.hand_free_mined_share)
    for folder in config.val:  # validation folders fail now, not after the first epoch
        Recording(folder)
    n = data.n_hand if config.max_frames is None else min(data.n_hand, config.max_frames)
    # the samples an epoch draws from: hand frames 0..n-1 (``max_frames``), then the hand-free
    # squares' share of them (the dataset's samples from n_hand on)
    samples = np.concatenate([np.arange(n), data.n_hand + np.arange(data.hand_free_count(n))])
    n = len(samples)
    steps_per_epoch = (n // world) // config.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"--batch-size: {n} training frames (--data, --max-frames) over {world} process(es) do not "
                         f"fill one batch (got {config.batch_size})")
    net = DepthNet(config.model_config)
    if config.freeze_stages and world > 1:
        raise ValueError("--freeze-stages trains in one process: run it without torchrun")
    if config.freeze_stages and config.init is None and not (resume and ckpt_path.exists()):
        raise ValueError("--freeze-stages trains the heads on trained stages: give them with --init WEIGHTS")
    if config.init is not None and not (resume and ckpt_path.exists()):
        start = DepthNet.load(config.init)  # clear errors for missing/corrupt files
        if start.config == config.model_config:
            net.load_state_dict(start.state_dict())
        elif heads_only_difference(start.config, config.model_config):  # new heads start from scratch
            missing, unexpected = net.load_state_dict(start.state_dict(), strict=False)
            if missing:
                log.info("%s has no weights for %s: they start from scratch", config.init,
                         sorted({k.split(".")[0] for k in missing}))
            if unexpected:  # heads the new network drops
                log.info("%s: not used: %s", config.init, sorted({k.split(".")[0] for k in unexpected}))
        else:
            raise ValueError(f"{config.init}: weights are of model {start.config}, not {config.model_config}")
        log.info("starting from %s", config.init)
    ck = _load_checkpoint(ckpt_path, config, run_dir) if resume and ckpt_path.exists() else None
    if rank == 0:  # the run folder appears once data, weights and checkpoint are accepted
        make_folder(run_dir)
        write_json(run_dir / "config.json", config.to_json(), default=str)
    net.to(device)
    heads, stages = [], []
    for name, param in net.named_parameters():
        (heads if name.split(".")[0] in HEAD_MODULES else stages).append(param)
    if config.freeze_stages:  # the stages stay as --init gave them
        for param in stages:
            param.requires_grad_(False)
        groups = [{"params": heads}]
    else:
        groups = [{"params": stages, "lr": config.lr * config.stage_lr_scale}] + ([{"params": heads}] if heads else [])
    opt = torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=config.step_size, gamma=config.lr_gamma)
    start_epoch, start_step, global_step = 0, 0, 0
    if ck is not None:
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        start_epoch, start_step, global_step = ck["epoch"], ck["step_in_epoch"], ck["global_step"]
        if start_step >= steps_per_epoch:
            start_epoch, start_step = start_epoch + 1, 0
        log.info("resuming %s at epoch %d step %d", ckpt_path, start_epoch, start_step)
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    else:
        model = net

    def save(epoch: int, step_in_epoch: int) -> None:
        if rank == 0:
            save_torch({"model": net.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                        "epoch": epoch, "step_in_epoch": step_in_epoch, "global_step": global_step,
                        "config": config.model_config.to_dict()},
                       ckpt_path)

    metrics = {}
    last_epoch = config.epochs if config.stop_after_epoch is None else min(config.epochs, config.stop_after_epoch)
    for epoch in range(start_epoch, last_epoch):
        if config.freeze_stages:  # this epoch's pass of features, cached first (not timed as training)
            cached = _feature_pass(net, data, samples, epoch % config.feature_passes, run_dir / "features",
                                   config.batch_size, config.workers, device, progress if rank == 0 else False)
        data.set_epoch(epoch)
        order = _epoch_order(n, config.seed, epoch)  # positions in ``samples``, shuffled per epoch
        shard = order[rank::world][: steps_per_epoch * config.batch_size]
        model.train()
        first = start_step if epoch == start_epoch else 0
        bar = Progress(steps_per_epoch, f"epoch {epoch + 1}/{config.epochs}", "batch", progress if rank == 0 else False,
                       initial=first)
        running, running_heads, t0 = 0.0, np.zeros(2), time.perf_counter()
        batches = [[int(i) for i in shard[k * config.batch_size:(k + 1) * config.batch_size]]
                   for k in range(first, steps_per_epoch)]
        if config.freeze_stages:  # the cache's rows are the positions
            loader = (_cached_batch(*cached, sorted(b), device) for b in batches)
        else:
            loader = DataLoader(data, batch_sampler=[[int(samples[k]) for k in b] for b in batches], collate_fn=collate,
                                num_workers=config.workers, pin_memory=device.type == "cuda")
        for step, batch in enumerate(loader, start=first):
            if config.freeze_stages:  # batch: cached features, labels, frame numbers
                features, uv, weights, right, names = batch
                heatmaps, handedness, logits = net.heads_from_features(features)
                heads = head_losses(logits, handedness, gaussian_heatmaps(uv, features.shape[-2:]), weights, right,
                                    uv, config.keypoint_loss)
                loss = heads.sum()
            else:
                pred = model(batch.rgb.to(device, non_blocking=True))
                kept = stage_samples(batch.joint_uv, config.hand_free_losses).to(device)
                if not bool(kept.any()):  # hand-free squares alone, left out of the stages' losses
                    losses = pred.stages.new_zeros(pred.stages.shape[1])
                else:
                    losses = stage_losses(pred.stages[kept], config.model_config.mask_stages,
                                          batch.mask.to(device, non_blocking=True)[kept],
                                          batch.relative.to(device, non_blocking=True)[kept], config.hand_weight,
                                          config.plane_weight)
                heads = head_losses(pred.keypoint_logits, pred.handedness, batch.heatmaps.to(device, non_blocking=True),
                                    batch.joint_weights.to(device, non_blocking=True),
                                    batch.right.to(device, non_blocking=True),
                                    batch.joint_uv.to(device, non_blocking=True), config.keypoint_loss)
                loss = losses.sum() + heads.sum()
                heatmaps, names = pred.heatmaps, batch.name
            if not torch.isfinite(loss):
                save(epoch, step)
                raise NonFiniteLossError(f"loss is {loss.item()} at epoch {epoch} step {step}; batch frames: "
                                         f"{', '.join(names)}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.item()
            running_heads += heads.detach().cpu().numpy()
            global_step += 1
            done = step - first + 1
            bar.update(loss=f"{running / done:.4f}", **({"keypoints": f"{running_heads[0] / done:.4f}",
                                                        "side": f"{running_heads[1] / done:.4f}"}
                                                       if heatmaps is not None else {}))
            if (step + 1) % config.checkpoint_every == 0:
                save(epoch, step + 1)
        bar.close()
        sched.step()
        save(epoch + 1, 0)
        metrics = {"epoch": epoch + 1, "train_loss": running / max(1, steps_per_epoch - first),
                   **({"train_keypoint_loss": float(running_heads[0]) / max(1, steps_per_epoch - first),
                       "train_side_loss": float(running_heads[1]) / max(1, steps_per_epoch - first)}
                      if config.model_config.keypoints else {}),
                   "lr": opt.param_groups[-1]["lr"], "seconds": time.perf_counter() - t0,
                   "train_img_per_s": (steps_per_epoch - first) * config.batch_size * world / (time.perf_counter() - t0)}
        if config.val and rank == 0:
            from depthnet.evaluate import evaluate

            net.eval()
            for k, folder in enumerate(config.val):  # val_*: the first folder, val2_*: the second, ...
                m = evaluate(net, folder, max_frames=config.val_frames)
                pre = "val" if k == 0 else f"val{k + 1}"
                metrics.update({f"{pre}_depth_error_mm": m["depth_error_mm"], f"{pre}_iou": m["iou"]})
                metrics.update({f"{pre}_{key}": m[key] for key in ("keypoint_error_px", "pck_0_2", "side_accuracy")
                                if m.get(key) is not None})
        if rank == 0:
            _append_csv(run_dir / "metrics.csv", metrics)
            log.info("epoch %d: %s", epoch + 1, {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()})
    if rank == 0:
        export = export_weights(ckpt_path, run_dir / "model.pt")
        metrics["weights"] = str(export)
        metrics["weights_sha256_10"] = file_digest(export)
    if world > 1:
        dist.barrier()
    metrics["steps"] = global_step  # over all (resumed) invocations
    return metrics


def _cached_batch(features: np.ndarray, labels: np.ndarray, index: list[int], device: torch.device) -> tuple:
    """Rows ``index`` of a feature pass (``_feature_pass``) -> features ``(B, width, h, w)``,
    joint_uv ``(B, K, 2)``, joint_weights ``(B, K)``, right ``(B,)`` (float32 tensors on
    ``device``) and the rows' names (their numbers in the pass)."""
    k = NUM_JOINTS
    lab = torch.from_numpy(np.asarray(labels[index], np.float32)).to(device)
    f = torch.from_numpy(np.asarray(features[index], np.float32)).to(device)
    return f, lab[:, :2 * k].reshape(-1, k, 2), lab[:, 2 * k:3 * k], lab[:, 3 * k], [f"cached sample {i}" for i in index]


def export_weights(checkpoint: str | Path, out: str | Path) -> Path:
    """Weights-only file (model + config, float32) from a training checkpoint."""
    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    out = Path(out)
    save_torch({"model": ck["model"], "config": ck["config"], "epoch": ck["epoch"],
                "global_step": ck["global_step"]}, out)
    return out


def _append_csv(path: Path, row: dict) -> None:
    """Add ``row`` to the CSV ``path``, rewriting the whole (small) file atomically."""
    rows = []
    if path.exists():
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    fields = list(dict.fromkeys([*(rows[0] if rows else {}), *row]))
    write_csv(path, [*rows, row], fields)


def build_parser() -> CommandParser:
    p = CommandParser(prog="handrgbd train", description=train_main.__doc__)
    p.add_argument("--data", nargs="+", required=True, help="training recording folder(s)")
    p.add_argument("--val", nargs="*", default=[], help="validation recording folder(s)")
    p.add_argument("--out", type=out_path, required=True, help="run folder (config, metrics, checkpoints, model.pt)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="model preset")
    p.add_argument("--stages", type=integer(0, MAX_STAGES), nargs=2, metavar=("S_M", "S_D"), default=None,
                   help="override the preset's mask and depth stage counts (the ablation)")
    p.add_argument("--width", type=integer(8, 1024), default=None, help="override the preset's channel width")
    p.add_argument("--input-size", type=integer(32, 4096), default=None, help="override the preset's input size")
    p.add_argument("--foreground", choices=FOREGROUNDS, default=None,
                   help="what the mask is trained on: eq1 (the paper's eq. 1: everything within 300 mm of the "
                        "nearest reading, the preset's default) or hand (the labelled hand of mask/ alone, "
                        "not the arm or a held object)")
    p.add_argument("--epochs", type=integer(1, 100_000), default=10, help="epochs (learning-rate steps scale with it)")
    p.add_argument("--batch-size", type=integer(1, 4096), default=8, help="batch size per process")
    p.add_argument("--lr", type=number(0, 1, lo_open=True), default=1e-3, help="Adam learning rate")
    p.add_argument("--seed", type=integer(0, SEED_MAX), default=0, help="seed of data order and augmentation")
    p.add_argument("--max-frames", type=integer(1), default=None, help="train on the first N frames only")
    p.add_argument("--val-frames", type=integer(1), default=200, help="validation frames per epoch")
    p.add_argument("--checkpoint-every", type=integer(1), default=200, help="steps between checkpoints")
    p.add_argument("--threads", type=integer(1, 1024), default=None, help="torch CPU threads")
    p.add_argument("--device", choices=DEVICES, default="auto",
                   help="train on the GPU when there is one (auto), or force cpu / cuda")
    p.add_argument("--workers", type=integer(0, MAX_WORKERS), default=0, help="data-loader processes (0: none)")
    p.add_argument("--hand-weight", type=number(1, 1e6), default=1.0,
                   help="weight of true hand pixels in the depth stages' squared error (1: the paper's MSE)")
    p.add_argument("--plane-weight", type=number(0, 1e6), default=0.0,
                   help="weight of the planar part (level and tilt) of the hand's depth error (0: off)")
    p.add_argument("--stage-lr-scale", type=number(0, 1), default=1.0,
                   help="the stages' learning rate over --lr (keypoint and side heads train at --lr): below 1 when "
                        "new heads start on trained stages (--init)")
    p.add_argument("--keypoint-loss", choices=KEYPOINT_LOSSES, default=None,
                   help="keypoint heads: softmax (the default: each map's spatial softmax against the normalised "
                        "Gaussian), heatmap (the heatmaps' MSE), or integral (that and the soft-argmax's L1)")
    p.add_argument("--keypoint-head", choices=KEYPOINT_HEADS, default=None,
                   help="the keypoint head's layers: residual (two residual blocks, the preset's) or hourglass "
                        "(an hourglass of its own; learns the joints far faster on frozen stages)")
    p.add_argument("--freeze-stages", action="store_true",
                   help="train the heads alone on the stages of --init, which stay unchanged (their features "
                        "are cached in RUN/features/, float16, per augmented pass)")
    p.add_argument("--feature-passes", type=integer(1, 1000), default=1, metavar="P",
                   help="with --freeze-stages: differently augmented passes of cached features (epoch e uses "
                        "pass e mod P)")
    p.add_argument("--lr-step", type=integer(1, 100_000), default=None, metavar="EPOCHS",
                   help="halve the learning rate every EPOCHS epochs (default: 30 of 100, scaled to --epochs)")
    p.add_argument("--no-augment", action="store_true", help="disable the paper's augmentation")
    p.add_argument("--jpeg-prob", type=number(0, 1), default=0.0, metavar="P",
                   help="also JPEG-compress this share of samples, at a quality drawn from 30-95 (webcam MJPEG, "
                        "video files and photographs are lossy; the renders are not); 0: off, the paper's augmentation")
    p.add_argument("--low-light-prob", type=number(0, 1), default=0.0, metavar="P",
                   help="also take this share of samples as in a dim scene, at a gain drawn from 2-16 (shot and "
                        "read noise, depthnet.data.low_light; before JPEG); 0: off")
    p.add_argument("--hand-free", nargs="+", default=[], metavar="DIR",
                   help="full-frame recordings (handrgbd synth --full-frame) to cut hand-free squares from: samples "
                        "whose answer is no hand (mask 0, flat keypoint maps), which teach the network to be unsure "
                        "of faces, skin-coloured objects and clutter (the live localiser trusts its surest crop)")
    p.add_argument("--hand-free-share", type=number(0, 0.9), default=0.0, metavar="S",
                   help="the hand-free squares' share of each epoch's samples (0: none)")
    p.add_argument("--hand-free-losses", choices=HAND_FREE_LOSSES, default="all",
                   help="what the hand-free squares train: all (no mask, background depth, flat keypoint maps) "
                        "or keypoints (the flat maps alone; the mask and depth losses leave them out)")
    p.add_argument("--hand-free-mined", nargs="+", default=[], metavar="FILE",
                   help="mined squares files (handrgbd mine --out: squares without a hand that the live localiser "
                        "was sure of): a share of the hand-free samples is cut from them (hard negatives)")
    p.add_argument("--hand-free-mined-share", type=number(0, 1), default=None, metavar="M",
                   help="the mined squares' share of the hand-free samples (default 0.5 with --hand-free-mined; "
                        "1: all, --hand-free may then be left out)")
    p.add_argument("--resume", action="store_true", help="continue RUN/checkpoint.pt")
    p.add_argument("--init", type=existing_file, default=None, metavar="WEIGHTS",
                   help="start from these weights (fine-tuning; same model config); a resume ignores it")
    p.add_argument("--stop-after", type=integer(1), default=None, metavar="EPOCH",
                   help="stop after this epoch (the learning-rate schedule still follows --epochs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar: a log line every few seconds instead")
    return p


def train_main(argv: list[str] | None = None) -> int:
    """Train the hand depth network on recording folders."""
    p = build_parser()
    args = p.parse_args(argv)
    # Weights that weight decay shrinks towards zero make subnormal products, on which the CPU is
    # many times slower (a step of 8 from the shipped weights as stored: 2.6 s without this, 0.9 s
    # with it). Flushing subnormals to zero changes only values below 1.2e-38. Set before torch's
    # thread pool exists: threads copy the mode when they are created.
    torch.set_flush_denormal(True)
    model = PRESETS[args.preset]
    overrides = {k: v for k, v in (("width", args.width), ("input_size", args.input_size),
                                   ("foreground", args.foreground), ("keypoint_head", args.keypoint_head))
                 if v is not None}
    if args.stages:
        overrides.update(mask_stages=args.stages[0], depth_stages=args.stages[1])
    if args.keypoint_head and not PRESETS[args.preset].keypoints:
        p.error(f"--keypoint-head: preset {args.preset} has no keypoint head (use cpu+keypoints or paper+keypoints)")
    if args.stages and args.stages[1] < 1:
        p.error(f"--stages: the depth stages (S_D) must be at least 1 (got {args.stages[0]} {args.stages[1]})")
    try:
        model = replace(model, **overrides) if overrides else None
        config = TrainConfig(tuple(args.data), args.out, tuple(args.val), args.preset, model, args.epochs,
                             args.batch_size, args.lr, seed=args.seed, max_frames=args.max_frames,
                             val_frames=args.val_frames, checkpoint_every=args.checkpoint_every, threads=args.threads,
                             stop_after_epoch=args.stop_after,
                             augmentation=Augmentation(enabled=not args.no_augment, jpeg_prob=args.jpeg_prob,
                                                       low_light_prob=args.low_light_prob),
                             init=args.init, device=args.device, workers=args.workers, hand_weight=args.hand_weight,
                             plane_weight=args.plane_weight, stage_lr_scale=args.stage_lr_scale,
                             lr_step_epochs=args.lr_step, freeze_stages=args.freeze_stages,
                             feature_passes=args.feature_passes, hand_free=tuple(args.hand_free),
                             hand_free_share=args.hand_free_share, hand_free_losses=args.hand_free_losses,
                             hand_free_mined=tuple(args.hand_free_mined),
                             hand_free_mined_share=(args.hand_free_mined_share if args.hand_free_mined_share is not None
                                                    else 0.5 if args.hand_free_mined else 0.0),
                             keypoint_loss=args.keypoint_loss or ("softmax" if (model or PRESETS[args.preset]).keypoints
                                                                  else "heatmap"))
        metrics = train(config, resume=args.resume, progress="log" if args.no_progress else True)
    except (ValueError, OSError, NonFiniteLossError) as e:
        return p.fail(e)
    log.info("done: %s", metrics)
    return 0


if __name__ == "__main__":
    sys.exit(train_main())
