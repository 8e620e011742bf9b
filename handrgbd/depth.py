"""Depth encoding: float32 millimetres in memory (0 = no reading), uint16 PNG on disk.

On disk a depth value ``d`` (uint16) means ``d * depth_unit_mm`` millimetres; 0 is no reading.
These two functions are the only place the conversion happens.
"""

from __future__ import annotations

import numpy as np

__all__ = ["depth_mm_to_uint16", "uint16_to_depth_mm", "usable_depth", "MAX_UINT16", "DEPTH_UNIT_RANGE_MM",
           "MAX_RANGE_MM"]

MAX_UINT16 = np.iinfo(np.uint16).max
#: Plausible millimetres per stored unit: 0.01 (sub-micron steps would cap depth at 0.65 m) to
#: 100 (10 cm steps). Kinect-style data uses 1, the SR305 0.125.
DEPTH_UNIT_RANGE_MM = (0.01, 100.0)
#: Depth and joints farther than this (10 m) are not a hand seen by a depth camera: a saturated
#: reading, a wrong unit, or junk.
MAX_RANGE_MM = 10_000.0


def usable_depth(depth_mm: np.ndarray) -> np.ndarray:
    """``(H, W) bool``: readings a depth camera can give of a hand, ``0 < d <= MAX_RANGE_MM``."""
    d = np.asarray(depth_mm)
    return (d > 0) & (d <= MAX_RANGE_MM)


def uint16_to_depth_mm(raw: np.ndarray, depth_unit_mm: float = 1.0) -> np.ndarray:
    """``(H, W) uint16`` sensor units -> ``(H, W) float32`` mm, 0 stays 0 (no reading)."""
    raw = np.asarray(raw)
    if raw.dtype != np.uint16:
        raise ValueError(f"depth image must be uint16, got {raw.dtype}")
    if not (np.isfinite(depth_unit_mm) and depth_unit_mm > 0):
        raise ValueError(f"depth_unit_mm must be finite and > 0, got {depth_unit_mm}")
    return raw.astype(np.float32) * np.float32(depth_unit_mm)


def depth_mm_to_uint16(depth_mm: np.ndarray, depth_unit_mm: float = 1.0) -> np.ndarray:
    """``(H, W) float`` mm -> ``(H, W) uint16`` units of ``depth_unit_mm`` (rounded).

    Non-finite or non-positive values become 0 (no reading); values past the uint16 range raise,
    since silently clipping would corrupt geometry.
    """
    if not (np.isfinite(depth_unit_mm) and depth_unit_mm > 0):
        raise ValueError(f"depth_unit_mm must be finite and > 0, got {depth_unit_mm}")
    d = np.asarray(depth_mm, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    units = np.where(valid, np.rint(np.where(valid, d, 0.0) / depth_unit_mm), 0.0)
    if units.max(initial=0.0) > MAX_UINT16:
        raise ValueError(f"depth {d[valid].max():.1f} mm exceeds the uint16 range at "
                         f"{depth_unit_mm} mm per unit (max {MAX_UINT16 * depth_unit_mm:.1f} mm)")
    return units.astype(np.uint16)
