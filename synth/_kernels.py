"""numba kernels of the synthetic-data side: linear blend skinning. Twins in tests/."""

from __future__ import annotations

import math

import numba
import numpy as np

JIT = dict(nogil=True, cache=True, fastmath=False)


@numba.njit(parallel=True, **JIT)
def lbs_kernel(bone_index, bone_weight, matrices, rest_vertices, rest_normals, out_vertices, out_normals):
    """Linear blend skinning.

    bone_index, bone_weight : (V, K) the K most influential frames of each vertex and their
        weights (summing to 1; unused slots have weight 0).
    matrices : (F, 3, 4) rest -> posed affine transforms of the frames.
    rest_vertices, rest_normals : (V, 3). Outputs (V, 3); normals renormalised.
    """
    nv, nk = bone_index.shape
    for v in numba.prange(nv):
        m = np.zeros((3, 4))
        for k in range(nk):
            w = bone_weight[v, k]
            if w != 0.0:
                m += w * matrices[bone_index[v, k]]
        x, y, z = rest_vertices[v, 0], rest_vertices[v, 1], rest_vertices[v, 2]
        a, b, c = rest_normals[v, 0], rest_normals[v, 1], rest_normals[v, 2]
        norm = 0.0
        for r in range(3):
            out_vertices[v, r] = m[r, 0] * x + m[r, 1] * y + m[r, 2] * z + m[r, 3]
            out_normals[v, r] = m[r, 0] * a + m[r, 1] * b + m[r, 2] * c
            norm += out_normals[v, r] * out_normals[v, r]
        norm = math.sqrt(norm) if norm > 0.0 else 1.0
        for r in range(3):
            out_normals[v, r] /= norm
