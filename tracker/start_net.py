"""The learned start: a small CNN that proposes hand poses from the detected hand's depth.

Hybrid trackers start their generative search from a discriminative guess (Sharp et al., CHI 2015:
a classifier over global rotations, then the finger pose). Here the guess comes from the depth
crop around ``tracker.detect``'s hand: three channels, ``(3, 64, 64) float32``:

0. the detection's region (1 inside, 0 outside);
1. the region's depth relative to the palm, ``(d - palm_z) / (0.5 x 180 mm)`` clipped to +-1.5
   (0 outside the region and where there is no reading);
2. the same for every reading in the crop (the arm, a held object, the table: context), +1.5 where
   there is none.

The crop is centred on the detection's palm and ``2 x CROP_HALF x 180 mm`` wide at the palm's
depth, so the network sees the hand's size as the sensor does. Poses are predicted in the *ray
frame* of the palm's pixel (the camera rotated by the smallest rotation that takes its z axis onto
the ray through the palm), where a hand looks the same wherever it is in the image. A left hand is
predicted as the mirror image of a right one: its crop flipped left-right, its pose mirrored back
(``HandPose.mirrored``'s rule in the ray frame).

Outputs (``StartNet``): logits over ``ROTATION_BINS`` rotations (a fixed random sample of SO(3),
trained against a Gaussian of ``BIN_SIGMA_DEG`` around the true rotation), the 20 finger angles (rad)
and the model's root position relative to the palm on the surface (ray frame, in units of 180 mm).
``StartPredictor.poses`` turns them into the ``k`` best distinct rotations (at least
``DISTINCT_DEG`` apart), each with the predicted angles and position: the tracker's start
candidates (``TrackerConfig.learned_start``, docs/tracker.md "The learned start").

Training (``python -m tracker.start_net --data DIR [DIR ...] --out PATH``): recordings with
``poses.npy`` and ``joints.npy`` (the synthetic generator's); each frame's hand is found as the
tracker's start finds it (the support plane left out, the region split by ``tracker.hand_split``:
train that first), frames whose detected palm is more than ``MAX_PALM_ERROR_MM`` from the true one
are skipped, and each frame's side is the one whose model
reproduces its joints. The shipped weights' recipe is in docs/tracker.md.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from handrgbd.camera import CameraIntrinsics
from tracker.pose import (HandPose, axis_angle_quaternion, matrix_to_quaternion, mirror_quaternion,
                          quaternion_to_matrix)
from tracker.small_nets import Checkpoint, fit, held_out, load_network, one_cycle, training_main

log = logging.getLogger(__name__)

__all__ = ["INPUT_SIZE", "ray_rotation", "crop_matrix", "start_input", "rotation_bins", "quaternion_angle",
           "pose_targets", "poses_from_prediction", "turn_crops", "StartPredictor", "default_weights", "prepare",
           "train"]

#: the network's input side, pixels
INPUT_SIZE = 64
#: the crop's half width at the palm's depth, in units of ``REFERENCE_LENGTH_MM``
CROP_HALF = 0.9
#: the length the crop and the position are scaled by (a typical adult hand, wrist to middle tip)
REFERENCE_LENGTH_MM = 180.0
#: relative depth unit (half the reference length) and its clip
DEPTH_SCALE_MM = 0.5 * REFERENCE_LENGTH_MM
DEPTH_CLIP = 1.5
#: rotation classes: a fixed random sample of unit quaternions (seed 0)
ROTATION_BINS = 1000
#: the target's spread over the bins (Gaussian of the geodesic angle)
BIN_SIGMA_DEG = 15.0
#: the proposed rotations are at least this far apart (non-maximum suppression over the bins)
DISTINCT_DEG = 30.0
#: training frames whose detected palm lies further than this from the true palm are skipped
MAX_PALM_ERROR_MM = 100.0
#: the shipped weights (docs/tracker.md "The learned start" has the command that makes them)
WEIGHTS_NAME = "start_net.pt"


# ---- geometry (pure functions) -----------------------------------------------------------------
def ray_rotation(camera: CameraIntrinsics, uv: np.ndarray) -> np.ndarray:
    """``(3, 3)`` rotation taking the camera's z axis onto the unit ray through pixel ``uv (2,)``
    (the smallest such rotation; the identity at the principal point)."""
    r = np.array([(uv[0] - camera.cx) / camera.fx, (uv[1] - camera.cy) / camera.fy, 1.0])
    r /= np.linalg.norm(r)
    axis = np.cross([0.0, 0.0, 1.0], r)
    s = float(np.linalg.norm(axis))
    if s < 1e-12:
        return np.eye(3)
    return quaternion_to_matrix(axis_angle_quaternion(axis, math.atan2(s, float(r[2]))))


def rotation_bins(n: int = ROTATION_BINS, seed: int = 0) -> np.ndarray:
    """``(n, 4)`` unit quaternions, uniform on SO(3) (normalised Gaussian 4-vectors)."""
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def quaternion_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle (rad) between the rotations of unit quaternions ``a`` and ``b`` (broadcast)."""
    return 2.0 * np.arccos(np.clip(np.abs(np.sum(a * b, axis=-1)), 0.0, 1.0))


def crop_matrix(camera: CameraIntrinsics, palm_uv: np.ndarray, palm_z_mm: float, half: float = CROP_HALF,
                size: int = INPUT_SIZE, mirror: bool = False) -> np.ndarray:
    """``(2, 3)`` affine map from the frame's pixels to the crop's: ``size`` px square centred on
    ``palm_uv``, ``2 x half x REFERENCE_LENGTH_MM`` wide at ``palm_z_mm`` (``camera.fx``'s scale;
    pixels are taken square), flipped left-right about the palm with ``mirror``."""
    sc = size / (2.0 * half * REFERENCE_LENGTH_MM * camera.fx / palm_z_mm)
    sx = -sc if mirror else sc
    return np.array([[sx, 0.0, size / 2 - sx * palm_uv[0]], [0.0, sc, size / 2 - sc * palm_uv[1]]], np.float32)


def start_input(region: np.ndarray, depth_mm: np.ndarray, context_mm: np.ndarray, camera: CameraIntrinsics,
                palm_uv: np.ndarray, palm_z_mm: float, mirror: bool = False, half: float = CROP_HALF,
                size: int = INPUT_SIZE) -> np.ndarray:
    """The network's input ``(3, size, size) float32`` (module docstring; ``crop_matrix``'s crop).

    region ``(H, W) bool``: the detected hand; depth_mm ``(H, W)``: the depth the detection saw
    (0 = no reading); context_mm ``(H, W)``: every reading (e.g. with the support plane); palm_uv
    px and palm_z_mm: the detection's palm; mirror: flip left-right about the palm (left hands)."""
    S = size
    M = crop_matrix(camera, palm_uv, palm_z_mm, half, size, mirror)

    def warp(image: np.ndarray) -> np.ndarray:
        return cv2.warpAffine(np.ascontiguousarray(image, np.float32), M, (S, S), flags=cv2.INTER_NEAREST,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)

    m = warp(region.astype(np.float32)) > 0.5
    d, c = warp(depth_mm), warp(np.where(np.isfinite(context_mm), context_mm, 0.0))
    x = np.empty((3, S, S), np.float32)
    x[0] = m
    x[1] = np.where(m & (d > 0), np.clip((d - palm_z_mm) / DEPTH_SCALE_MM, -DEPTH_CLIP, DEPTH_CLIP), 0.0)
    x[2] = np.where(c > 0, np.clip((c - palm_z_mm) / DEPTH_SCALE_MM, -DEPTH_CLIP, DEPTH_CLIP), DEPTH_CLIP)
    return x


def pose_targets(params: np.ndarray, side: str, camera: CameraIntrinsics, palm_uv: np.ndarray,
                 palm_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A pose ``params (27,)`` of ``side`` as the network predicts it: (quaternion (4,) in the
    ray frame, mirrored for a left hand; finger angles (20,) rad; root offset (3,) from the palm in
    the ray frame, units of ``REFERENCE_LENGTH_MM``, x negated for a left hand)."""
    R_ray = ray_rotation(camera, palm_uv)
    q = matrix_to_quaternion(R_ray.T @ quaternion_to_matrix(params[3:7] / np.linalg.norm(params[3:7])))
    offset = R_ray.T @ (np.asarray(params[:3], np.float64) - palm_mm) / REFERENCE_LENGTH_MM
    if side == "left":
        q, offset = mirror_quaternion(q), offset * [-1.0, 1.0, 1.0]
    return q, np.asarray(params[7:27], np.float64), offset


def poses_from_prediction(quaternions: np.ndarray, angles: np.ndarray, offset: np.ndarray, side: str,
                          camera: CameraIntrinsics, palm_uv: np.ndarray, palm_mm: np.ndarray) -> np.ndarray:
    """``pose_targets``' inverse for ``k`` rotations sharing angles and offset: ``(k, 27)`` model
    parameters of ``side`` in the camera frame, angles clamped to the joint limits."""
    R_ray = ray_rotation(camera, palm_uv)
    flip = np.array([-1.0, 1.0, 1.0]) if side == "left" else np.ones(3)
    position = np.asarray(palm_mm, np.float64) + R_ray @ (np.asarray(offset, np.float64) * flip * REFERENCE_LENGTH_MM)
    out = []
    for q in quaternions:
        q = mirror_quaternion(q) if side == "left" else q
        orientation = matrix_to_quaternion(R_ray @ quaternion_to_matrix(q))
        out.append(HandPose(position, orientation, np.reshape(angles, (5, 4)), side).clamped().to_array())
    return np.array(out)


def distinct_best(logits: np.ndarray, bins: np.ndarray, k: int, min_deg: float = DISTINCT_DEG) -> np.ndarray:
    """Indices of the ``k`` highest ``logits (K,)`` whose bins are pairwise ``min_deg`` apart."""
    picked: list[int] = []
    for i in np.argsort(-logits):
        if all(quaternion_angle(bins[i], bins[j]) > math.radians(min_deg) for j in picked):
            picked.append(int(i))
            if len(picked) == k:
                break
    return np.array(picked, int)


# ---- the network --------------------------------------------------------------------------------
def _network(n_bins: int = ROTATION_BINS):
    """64 x 64 x 3 -> four conv stages (16, 32, 64, 128 channels, each halving) -> 256 -> the
    bins' logits, 20 angles, 3 offsets (1.08 M parameters)."""
    import torch.nn as nn

    def stage(i: int, o: int):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.Conv2d(o, o, 3, padding=1),
                nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]

    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                         *stage(16, 32), *stage(32, 64), *stage(64, 128), nn.Flatten(), nn.Dropout(0.3),
                         nn.Linear(128 * (INPUT_SIZE // 16) ** 2, 256), nn.ReLU(), nn.Linear(256, n_bins + 23))


def default_weights() -> Path:
    """The shipped weights file."""
    return Path(__file__).resolve().parent / "data" / WEIGHTS_NAME


class StartPredictor:
    """The trained network, loaded once (13 ms; a crop's forward pass about 2 ms on 2 CPU cores)."""

    def __init__(self, weights: str | os.PathLike | None = None):
        path = Path(weights) if weights is not None else default_weights()
        self.net, saved = load_network(path, lambda saved: _network(int(saved["bins"])), "the learned start",
                                       "docs/tracker.md, 'The learned start',")
        self.bins = rotation_bins(int(saved["bins"]))
        self.path = path

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``x (3, 64, 64)`` -> (bin logits (K,), angles (20,), offset (3,))."""
        import torch

        with torch.no_grad():
            y = self.net(torch.from_numpy(np.ascontiguousarray(x, np.float32))[None])[0].numpy().astype(np.float64)
        K = len(self.bins)
        return y[:K], y[K:K + 20], y[K + 20:]

    def poses(self, region: np.ndarray, depth_mm: np.ndarray, context_mm: np.ndarray, camera: CameraIntrinsics,
              palm_uv: np.ndarray, palm_mm: np.ndarray, side: str, k: int = 3) -> np.ndarray:
        """``(k, 27)`` start poses of ``side`` for the hand detected at ``palm_uv`` / ``palm_mm``
        (``start_input``'s arguments): the ``k`` best distinct rotations, each with the predicted
        finger angles and position."""
        x = start_input(region, depth_mm, context_mm, camera, palm_uv, float(palm_mm[2]), mirror=side == "left")
        logits, angles, offset = self.predict(x)
        quats = self.bins[distinct_best(logits, self.bins, k)]
        return poses_from_prediction(quats, angles, offset, side, camera, palm_uv, palm_mm)


# ---- training -----------------------------------------------------------------------------------
def frame_side(params: np.ndarray, joints_mm: np.ndarray) -> str:
    """The side whose model, posed by ``params (27,)``, reproduces ``joints_mm (21, 3)`` (up to scale)."""
    from tracker.kinematics import HandModel

    best = None
    for side in ("right", "left"):
        J = HandModel(side, REFERENCE_LENGTH_MM).joints(np.asarray(params, np.float64)[None])[0]
        a, b = J - J[0], joints_mm - joints_mm[0]
        residual = np.linalg.norm((a * b).sum() / (a * a).sum() * a - b)
        if best is None or residual < best[0]:
            best = (residual, side)
    return best[1]


def prepare(folders: Sequence[str | os.PathLike], hand_split: bool = True,
            hand_split_weights: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """Inputs and targets from recordings (module docstring): ``x (N, 3, 64, 64) float16``,
    ``q (N, 4)``, ``angles (N, 20)``, ``offset (N, 3)``. The hand is found as the tracker's start
    finds it (``tracker.hand_split.find_hand``: split by the hand split's network unless
    ``hand_split`` is False; ``hand_split_weights``: its weights, default the shipped ones)."""
    from handrgbd.recording import Recording
    from tracker.detect import without_support_plane
    from tracker.hand_split import HandSplitter, find_hand

    splitter = HandSplitter(hand_split_weights) if hand_split else None

    xs, qs, angles, offsets = [], [], [], []
    for folder in folders:
        rec = Recording(folder)
        if not (rec.has_poses and rec.has_joints):
            raise ValueError(f"{rec.path}: the learned start trains on poses.npy and joints.npy; this recording "
                             f"lacks {'poses.npy' if not rec.has_poses else 'joints.npy'}")
        kept, t0 = 0, time.perf_counter()
        for i in range(len(rec.names)):
            fr = rec[i]
            raw = np.where(np.isfinite(fr.depth_mm), fr.depth_mm, 0.0).astype(np.float32)
            depth = without_support_plane(raw, fr.camera)
            found, depth = find_hand(depth, raw, fr.camera, splitter=splitter)
            palm_true = fr.joints_mm[[0, 5, 9, 13, 17]].mean(0)
            if found is None or found.mask is None or np.linalg.norm(found.palm_mm - palm_true) > MAX_PALM_ERROR_MM:
                continue
            side = frame_side(fr.pose, fr.joints_mm)
            xs.append(start_input(found.mask, depth, raw, fr.camera, found.palm_uv, float(found.palm_mm[2]),
                                  mirror=side == "left").astype(np.float16))
            q, a, o = pose_targets(fr.pose, side, fr.camera, found.palm_uv, found.palm_mm)
            qs.append(q), angles.append(a), offsets.append(o)
            kept += 1
        log.info("start_net: %s: %d of %d frames kept (%.0f s)", rec.path, kept, len(rec.names), time.perf_counter() - t0)
    if not xs:
        raise ValueError(f"no usable frame in {', '.join(map(str, folders))} (no hand detected near the true palm)")
    return {"x": np.array(xs), "q": np.array(qs, np.float32), "angles": np.array(angles, np.float32),
            "offset": np.array(offsets, np.float32)}


def turn_about_view(q, offset, angle):
    """Targets of a crop turned by ``angle (n,)`` rad in the image (x right, y down): the
    rotations ``q (n, 4)`` and offsets ``(n, 3)`` turned about the view axis (torch tensors)."""
    import torch

    w, x, y, z = q.unbind(1)  # Rz(angle) composed on the left
    hc, hs = torch.cos(angle / 2), torch.sin(angle / 2)
    q = torch.stack([hc * w - hs * z, hc * x - hs * y, hc * y + hs * x, hc * z + hs * w], 1)
    c, s = torch.cos(angle), torch.sin(angle)
    return q, torch.stack([c * offset[:, 0] - s * offset[:, 1], s * offset[:, 0] + c * offset[:, 1], offset[:, 2]], 1)


def turn_crops(x, angle, labels=None):
    """Inputs ``x (n, 3, S, S)`` (``start_input``'s channels) turned in the image by ``angle (n,)``
    rad, and ``labels (n, 1, S, S)`` with them if given (torch tensors, nearest sampling); what
    comes in from beyond the crop has no reading. Returns (x, labels)."""
    import torch
    import torch.nn.functional as F

    c, s, z = torch.cos(angle), torch.sin(angle), torch.zeros(len(angle))
    theta = torch.stack([torch.stack([c, s, z], 1), torch.stack([-s, c, z], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    if labels is not None:
        labels = F.grid_sample(labels, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    outside = F.grid_sample(torch.ones_like(x[:, :1]), grid, mode="nearest", padding_mode="zeros",
                            align_corners=False) == 0
    x[:, 2:3][outside] = DEPTH_CLIP  # beyond the crop: no reading
    return x, labels


def train(data: dict[str, np.ndarray], out: str | os.PathLike, epochs: int = 40, batch: int = 64, lr: float = 2e-3,
          rotate_deg: float = 180.0, seed: int = 0, val: int = 500) -> dict:
    """Train on ``prepare``'s arrays; the last ``val`` shuffled samples are held out. In-plane
    rotations of the crop up to +-``rotate_deg`` (the rotation and offset turned with it) and a
    shift of the relative depth (+-0.1) augment the data. A checkpoint ``OUT.ckpt`` is written atomically after every epoch and resumed from;
    ``out`` gets the float16 weights and the held-out metrics. Returns the metrics."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    va, tr = held_out(len(data["x"]), val, rng)
    X = torch.from_numpy(data["x"].astype(np.float32))
    Q, A, O = (torch.from_numpy(data[k].astype(np.float32)) for k in ("q", "angles", "offset"))
    bins = rotation_bins()
    Bt = torch.from_numpy(bins.astype(np.float32))
    sigma = math.radians(BIN_SIGMA_DEG)
    net = _network(len(bins))
    opt, sched = one_cycle(net, lr, epochs, math.ceil(len(tr) / batch))
    ckpt = Checkpoint(out, "start_net")
    start, rng = ckpt.resume(net, opt, sched, rng)

    def soft(q):
        d = 2.0 * torch.arccos((q @ Bt.T).abs().clamp(0.0, 1.0 - 1e-7))
        t = torch.exp(-0.5 * (d / sigma) ** 2)
        return t / t.sum(1, keepdim=True)

    def evaluate() -> dict:
        net.eval()
        with torch.no_grad():
            y = net(X[va]).numpy()
        net.train()
        K = len(bins)
        top1 = np.degrees(quaternion_angle(bins[y[:, :K].argmax(1)], data["q"][va]))
        return {"val_frames": int(len(va)), "rotation_median_deg": float(np.median(top1)),
                "rotation_within_30deg": float((top1 < 30).mean()),
                "angles_mae_deg": float(np.degrees(np.abs(y[:, K:K + 20] - data["angles"][va]).mean())),
                "position_error_mm": float(np.linalg.norm(y[:, K + 20:] - data["offset"][va], axis=1).mean()
                                           * REFERENCE_LENGTH_MM)}

    def loss_of(b):
        x, q, a_t, o_t = X[b].clone(), Q[b], A[b], O[b]
        # the palm's depth known to +-9 mm: the relative depths shift together
        x[:, 1:] += (torch.rand(len(b), 1, 1, 1) - 0.5) * 0.2 * (x[:, 1:] != 0)
        if rotate_deg > 0:
            ang = (torch.rand(len(b)) * 2 - 1) * math.radians(rotate_deg)
            x, _ = turn_crops(x, ang)
            q, o_t = turn_about_view(q, o_t, ang)
        y = net(x)
        K = len(bins)
        return -(soft(q) * torch.log_softmax(y[:, :K], 1)).sum(1).mean() \
            + 2.0 * F.smooth_l1_loss(y[:, K:K + 20], a_t, beta=0.1) \
            + 5.0 * F.smooth_l1_loss(y[:, K + 20:], o_t, beta=0.05)

    metrics = fit(net, opt, sched, ckpt, rng, tr, batch, epochs, start, loss_of, evaluate, lambda m: (
        f"rotation median {m['rotation_median_deg']:.1f} deg ({100 * m['rotation_within_30deg']:.0f}% within 30), "
        f"angles {m['angles_mae_deg']:.1f} deg, position {m['position_error_mm']:.1f} mm"))
    ckpt.finish(net, bins=len(bins), metrics=metrics)
    return metrics


def main(argv: list[str] | None = None) -> int:
    return training_main(argv, "Train the learned start (tracker/start_net.py) on synthetic recordings.",
                         "recording folders with poses.npy and joints.npy", default_weights(), 40, prepare, train)


if __name__ == "__main__":
    raise SystemExit(main())
