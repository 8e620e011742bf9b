"""numba kernels of the renderer: pure functions over arrays (wrappers check inputs).

Flags are set here once. Each kernel has a plain reference twin in tests/.
"""

from __future__ import annotations

import numba
import numpy as np

JIT = dict(nogil=True, cache=True, fastmath=False)


@numba.njit(parallel=True, **JIT)
def tile_sums_kernel(rendered: np.ndarray, observed: np.ndarray, mask: np.ndarray, d_max: float,
                     out: np.ndarray) -> None:
    """rendered (N, M) float32, observed (M,) float32, mask (M,) bool -> out (N, 3) float64:
    sum over the union of min(|o - r|, d_max), union count, intersection count."""
    n, m = rendered.shape
    for h in numba.prange(n):
        diff = 0.0
        union = 0
        inter = 0
        for k in range(m):
            r = rendered[h, k]
            rm = r > 0.0
            om = mask[k]
            if rm or om:
                union += 1
                d = abs(observed[k] - r)
                diff += d if d < d_max else d_max
                if rm and om:
                    inter += 1
        out[h, 0] = diff
        out[h, 1] = union
        out[h, 2] = inter
