"""What a benchmark ran on, so that figures from different machines compare.

Every benchmark prints :func:`describe`'s line next to its figures: the CPU model, its core count,
the widest SIMD extension numba can use (machines here differ by 2.5x on the same numba kernel
between AVX2 and AVX-512), and a same-run reference: the throughput of a fixed numba kernel (a
ray-sphere test over a 64 x 64 tile, the tracker's innermost work) measured in the same process.
A figure divided by the reference moves with the code, not with the machine.
"""

from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path

import numba
import numpy as np

__all__ = ["simd_level", "cpu_model", "reference_rate", "describe"]


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return []


def simd_level() -> str:
    """The widest x86 vector extension the CPU reports (numba uses it): AVX-512, AVX2 or older."""
    flags = next((line.split(":", 1)[1].split() for line in _cpuinfo() if line.startswith("flags")), [])
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2" if flags else "unknown"


def cpu_model() -> str:
    name = next((line.split(":", 1)[1].strip() for line in _cpuinfo() if line.startswith("model name")), "")
    return name or platform.processor() or platform.machine()


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _sphere_tiles(n: int, size: int, out: np.ndarray) -> None:
    """n tiles of a unit sphere at z = 3 seen through a pinhole: nearest hit per pixel."""
    f = 0.5 * size
    for h in range(n):
        oz = -3.0 - 1e-3 * h
        c = oz * oz - 1.0
        for i in range(size):
            ry = (i - 0.5 * size) / f
            for j in range(size):
                rx = (j - 0.5 * size) / f
                a = rx * rx + ry * ry + 1.0
                b = oz
                disc = b * b - a * c
                t = (-b - math.sqrt(max(disc, 0.0))) / a
                out[i, j] = t if disc >= 0.0 else 0.0


def reference_rate(seconds: float = 0.3) -> float:
    """Tiles per second of the fixed reference kernel (one thread, after a warm-up)."""
    out = np.empty((64, 64))
    _sphere_tiles(1, 64, out)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        _sphere_tiles(200, 64, out)
        n += 200
    return n / (time.perf_counter() - t0)


def describe() -> dict:
    """``{"cpu", "cores", "simd", "reference_tiles_per_s"}`` of this machine, measured now."""
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "simd": simd_level(),
            "reference_tiles_per_s": reference_rate()}


def line(info: dict) -> str:
    """One line for a benchmark's header."""
    return (f"machine: {info['cpu']}, {info['cores']} cores, {info['simd']}; same-run reference "
            f"{info['reference_tiles_per_s']:.0f} tiles/s (benchmarks/machine.py)")
