"""3D hand pose metrics (mm): MPJPE, root-relative MPJPE, PA-MPJPE, 3D PCK curve and AUC.

All take ``pred, gt (N, 21, 3)`` in mm; frames where ``pred`` has NaN (no hand) are excluded
and counted separately by the caller.
"""

from __future__ import annotations

import numpy as np

__all__ = ["mpjpe", "root_relative_mpjpe", "pa_mpjpe", "pck_curve", "auc", "procrustes_align", "pose_metrics",
           "PCK_THRESHOLDS_MM"]

PCK_THRESHOLDS_MM = np.arange(0, 51)


def _valid(pred: np.ndarray, gt: np.ndarray):
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.shape[-2:] != (21, 3):
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (N, 21, 3)")
    ok = np.isfinite(pred).all(axis=(1, 2)) & np.isfinite(gt).all(axis=(1, 2))
    return pred[ok], gt[ok]


def _errors(pred, gt):
    return np.linalg.norm(pred - gt, axis=-1)


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    p, g = _valid(pred, gt)
    return float(_errors(p, g).mean()) if len(p) else float("nan")


def root_relative_mpjpe(pred: np.ndarray, gt: np.ndarray, root: int = 0) -> float:
    p, g = _valid(pred, gt)
    return float(_errors(p - p[:, root:root + 1], g - g[:, root:root + 1]).mean()) if len(p) else float("nan")


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """``pred (21, 3)`` aligned to ``gt`` by the best similarity (rotation, scale, translation)."""
    mp, mg = pred.mean(0), gt.mean(0)
    p, g = pred - mp, gt - mg
    U, S, Vt = np.linalg.svd(p.T @ g)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.diag([1.0, 1.0, d])
    R = U @ D @ Vt
    scale = (S * np.diag(D)).sum() / max((p ** 2).sum(), 1e-12)
    return scale * p @ R + mg


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    p, g = _valid(pred, gt)
    if not len(p):
        return float("nan")
    return float(np.mean([_errors(procrustes_align(a, b), b).mean() for a, b in zip(p, g)]))


def pck_curve(pred: np.ndarray, gt: np.ndarray, thresholds=PCK_THRESHOLDS_MM) -> np.ndarray:
    """Fraction of joints within each threshold (mm); ``(len(thresholds),)``."""
    p, g = _valid(pred, gt)
    if not len(p):
        return np.full(len(thresholds), np.nan)
    e = _errors(p, g).ravel()
    return np.array([(e <= t).mean() for t in thresholds])


def auc(curve: np.ndarray, thresholds=PCK_THRESHOLDS_MM) -> float:
    """Area under the PCK curve, normalised to [0, 1] over the threshold range."""
    t = np.asarray(thresholds, np.float64)
    c = np.asarray(curve, np.float64)
    return float(np.sum((c[1:] + c[:-1]) / 2 * np.diff(t)) / (t[-1] - t[0]))


def pose_metrics(pred: np.ndarray, gt: np.ndarray) -> dict:
    curve = pck_curve(pred, gt)
    return {"mpjpe_mm": mpjpe(pred, gt), "rr_mpjpe_mm": root_relative_mpjpe(pred, gt), "pa_mpjpe_mm": pa_mpjpe(pred, gt),
            "pck_auc_0_50": auc(curve), "pck_curve": curve.tolist()}
