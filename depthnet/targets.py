"""Training targets and metric conversion, the paper's equations (1) and (2).

Given a depth map ``D`` in mm (0 = no reading):

* (1) foreground ``H = D < D_min + t`` over valid pixels, ``D_min`` the smallest valid depth,
  ``t = 300 mm``;
* (2) relative depth ``D_T = (D - mean(D[H])) / 200 mm`` on ``H``, and ``1`` on the background.

The network predicts ``D_T``; ``relative_to_metric`` turns it back into millimetres given the
hand's mean depth (from a sensor, as the paper's C2 setting, or estimated otherwise).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = ["Targets", "make_targets", "targets_from_mask", "relative_to_metric", "sensor_targets", "sensor_mean_depth",
           "keypoint_targets", "FOREGROUND_MM", "DEPTH_SCALE_MM", "BACKGROUND", "HEATMAP_SIGMA", "HIDDEN_JOINT_WEIGHT",
           "HIDDEN_JOINT_MM"]

FOREGROUND_MM = 300.0
DEPTH_SCALE_MM = 200.0
BACKGROUND = 1.0


class Targets(NamedTuple):
    """mask ``(H, W) float32`` in {0, 1}; relative ``(H, W) float32``; mean_depth_mm (nan if no hand)."""

    mask: np.ndarray
    relative: np.ndarray
    mean_depth_mm: float


def make_targets(depth_mm: np.ndarray, threshold_mm: float = FOREGROUND_MM) -> Targets:
    """Equations (1) and (2) on one ``(H, W)`` depth map (mm, 0 = no reading)."""
    d = np.asarray(depth_mm, dtype=np.float32)
    valid = d > 0
    if not valid.any():
        return Targets(np.zeros_like(d), np.full_like(d, BACKGROUND), float("nan"))
    fg = valid & (d < d[valid].min() + threshold_mm)
    mean = float(d[fg].mean())
    rel = np.where(fg, (d - mean) / DEPTH_SCALE_MM, BACKGROUND).astype(np.float32)
    return Targets(fg.astype(np.float32), rel, mean)


def targets_from_mask(depth_mm: np.ndarray, hand: np.ndarray) -> Targets:
    """Equation (2) on a labelled hand mask instead of equation (1): foreground = ``hand`` where
    the depth has a reading (real recordings, where the nearest 300 mm also hold arms, held
    objects and tables)."""
    d = np.asarray(depth_mm, dtype=np.float32)
    fg = np.asarray(hand, bool) & (d > 0)
    if not fg.any():
        return Targets(np.zeros_like(d), np.full_like(d, BACKGROUND), float("nan"))
    mean = float(d[fg].mean())
    rel = np.where(fg, (d - mean) / DEPTH_SCALE_MM, BACKGROUND).astype(np.float32)
    return Targets(fg.astype(np.float32), rel, mean)


def sensor_targets(depth_mm: np.ndarray, hand: np.ndarray | None = None) -> Targets:
    """Eq. 1 and 2 on a sensor's ``(H, W)`` depth map, or, given ``hand`` (a ``"hand"`` network's
    mask at the map's size), eq. 1 taken inside the mask: its readings within 300 mm of the
    nearest of them (where the mask spills over the hand's outline onto a far background, that
    background is not the hand)."""
    if hand is None:
        return make_targets(depth_mm)
    return make_targets(np.where(np.asarray(hand, bool), np.asarray(depth_mm, np.float32), 0.0))


def sensor_mean_depth(depth_mm: np.ndarray, hand: np.ndarray | None = None) -> float:
    """The zero of relative depth read from a sensor's ``(H, W)`` depth map (mm; nan without a
    hand): the mean over eq. 1's foreground (the paper's C2, for an ``"eq1"`` network), or over
    eq. 1 inside a ``"hand"`` network's mask ``hand`` (``sensor_targets``)."""
    return sensor_targets(depth_mm, hand).mean_depth_mm


def relative_to_metric(relative: np.ndarray, mask: np.ndarray, mean_depth_mm: float) -> np.ndarray:
    """Relative depth ``D_T`` -> millimetres on ``mask`` (0 elsewhere): ``mean + 200 D_T``."""
    if not np.isfinite(mean_depth_mm) or mean_depth_mm <= 0:
        raise ValueError(f"mean_depth_mm must be finite and > 0, got {mean_depth_mm}")
    rel = np.asarray(relative, dtype=np.float32)
    return np.where(np.asarray(mask, bool), mean_depth_mm + DEPTH_SCALE_MM * rel, 0.0).astype(np.float32)


#: keypoint heatmaps: a Gaussian of this standard deviation (output pixels) at each joint
HEATMAP_SIGMA = 1.5
#: a joint is hidden by the hand when the surface at its pixel is more than this in front of it
#: (joints are bone centres: a visible joint lies a finger's radius, 6-11 mm, behind the skin)
HIDDEN_JOINT_MM = 25.0
#: the loss weight of a hidden joint (a visible one weighs 1; one outside the image 0)
HIDDEN_JOINT_WEIGHT = 0.3


def keypoint_targets(uv: np.ndarray, z_mm: np.ndarray, depth_mm: np.ndarray,
                     sigma: float = HEATMAP_SIGMA) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps and loss weights for joints at output-map coordinates ``uv (K, 2)`` (column, row)
    and depths ``z_mm (K,)``, given the true depth ``depth_mm (h, w)`` at the output's resolution.

    Returns heatmaps ``(K, h, w) float32`` (a Gaussian of peak 1 at each joint inside the map,
    zeros for one outside) and weights ``(K,) float32``: 1 for a visible joint, ``HIDDEN_JOINT_WEIGHT``
    for one the hand hides (the surface at its pixel more than ``HIDDEN_JOINT_MM`` nearer, or no
    surface there), 0 outside the map."""
    uv = np.asarray(uv, np.float64)
    h, w = depth_mm.shape
    rows, cols = np.arange(h)[None, :, None], np.arange(w)[None, None, :]
    maps = np.exp(-((cols - uv[:, 0, None, None]) ** 2 + (rows - uv[:, 1, None, None]) ** 2) / (2 * sigma ** 2))
    inside = (uv[:, 0] > -0.5) & (uv[:, 0] < w - 0.5) & (uv[:, 1] > -0.5) & (uv[:, 1] < h - 0.5) & np.isfinite(uv).all(1)
    maps[~inside] = 0.0
    c = np.clip(np.round(uv[:, 0]), 0, w - 1).astype(int)
    r = np.clip(np.round(uv[:, 1]), 0, h - 1).astype(int)
    surface = depth_mm[r, c]
    visible = (surface > 0) & (np.asarray(z_mm) - surface <= HIDDEN_JOINT_MM)
    weights = np.where(inside, np.where(visible, 1.0, HIDDEN_JOINT_WEIGHT), 0.0)
    return maps.astype(np.float32), weights.astype(np.float32)
