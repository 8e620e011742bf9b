"""numba kernels of the renderer: pure functions over arrays (wrappers check inputs).

Flags are set here once. Each kernel has a plain reference twin in tests/.
"""

from __future__ import annotations

import numba
import numpy as np

JIT = dict(nogil=True, cache=True, fastmath=False)

#: an observed surface that is not the hand (given as negative depth outside the mask) hides a
#: rendered pixel that lies more than this behind it: the pixel is not scored (an occluder, as a
#: held object in front of the fingers); ``tracker._kernels.OCCLUDER_MARGIN_MM`` is the same
OCCLUDER_MARGIN_MM = 10.0


@numba.njit(parallel=True, **JIT)
def tile_sums_kernel(rendered: np.ndarray, observed: np.ndarray, mask: np.ndarray, d_max: float,
                     free_offset: bool, out: np.ndarray) -> None:
    """rendered (N, M) float32, observed (M,) float32, mask (M,) bool -> out (N, 3) float64:
    sum over the union of min(|o + delta - r|, d_max), union count, intersection count.

    delta = 0, or with ``free_offset`` the mean of r - o over the pixels where both have depth
    and the mask is set (observed depth known only up to a constant), added inside the mask.
    Outside the mask a negative observation -s is a surface at depth s that is not the hand: a
    rendered pixel more than ``OCCLUDER_MARGIN_MM`` behind it is hidden and not scored (neither
    in the union nor the sum); otherwise it counts as no reading (0).
    The tracker's CPU kernel (``tracker._kernels.score_tiles_kernel``) fuses the same sums into
    its ray casting; the two are kept in their own modules because numba's on-disk cache does
    not notice a change in a callee from another file, and a test pins one to the other."""
    n, m = rendered.shape
    for h in numba.prange(n):
        delta = 0.0
        if free_offset:
            acc = 0.0
            cnt = 0
            for k in range(m):
                r = rendered[h, k]
                if r > 0.0 and mask[k] and observed[k] > 0.0:
                    acc += r - observed[k]
                    cnt += 1
            if cnt > 0:
                delta = acc / cnt
        diff = 0.0
        union = 0
        inter = 0
        for k in range(m):
            r = rendered[h, k]
            rm = r > 0.0
            om = mask[k]
            ob = observed[k]
            if rm and not om and ob < 0.0 and r + ob > OCCLUDER_MARGIN_MM:
                continue  # behind a surface that is not the hand
            if rm or om:
                union += 1
                o = ob + delta if om else max(ob, 0.0)
                d = abs(o - r)
                diff += d if d < d_max else d_max
                if rm and om:
                    inter += 1
        out[h, 0] = diff
        out[h, 1] = union
        out[h, 2] = inter
