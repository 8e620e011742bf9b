"""Triangle meshes of the unit primitives (for drawing hypotheses as shaded meshes, e.g. figures
and the live viewer's 3D view; the tracker's scoring ray-casts them exactly instead)."""

from __future__ import annotations

import numpy as np

from renderer.mesh import Mesh
from renderer.tiled import PrimitiveKind, PrimitiveSet

__all__ = ["unit_sphere", "unit_cone", "primitive_meshes"]


def unit_sphere(subdivisions: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Icosphere of radius 1: ``(vertices (V, 3), faces (F, 3))``, outward counter-clockwise."""
    t = (1.0 + 5 ** 0.5) / 2.0
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t), (0, 1, -t),
         (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
         (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
         (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]
    faces = f
    for _ in range(subdivisions):
        cache: dict[tuple[int, int], int] = {}

        def mid(a, b):
            key = (min(a, b), max(a, b))
            if key not in cache:
                m = verts[a] + verts[b]
                verts.append(m / np.linalg.norm(m))
                cache[key] = len(verts) - 1
            return cache[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b), mid(b, c), mid(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.array(verts), np.array(faces, dtype=np.int64)


def unit_cone(taper: float, segments: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """Truncated cone around +z, radius 1 at z = 0 and ``taper`` at z = 1, with caps."""
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    ring0 = np.stack([np.cos(a), np.sin(a), np.zeros_like(a)], 1)
    ring1 = np.stack([taper * np.cos(a), taper * np.sin(a), np.ones_like(a)], 1)
    verts = np.vstack([ring0, ring1, [[0, 0, 0], [0, 0, 1]]])
    faces = []
    c0, c1 = 2 * segments, 2 * segments + 1
    for i in range(segments):
        j = (i + 1) % segments
        faces += [(i, j, segments + j), (i, segments + j, segments + i), (c0, j, i), (c1, segments + i, segments + j)]
    return verts, np.array(faces, dtype=np.int64)


def primitive_meshes(primitives: PrimitiveSet, color=(0.75, 0.6, 0.5), label: int = 1) -> list[Mesh]:
    """One unit mesh per primitive of ``primitives`` (pose each with its 4x4 transform)."""
    sphere = unit_sphere(3)
    meshes = []
    for kind, taper in zip(primitives.kinds, primitives.taper):
        v, f = sphere if kind == PrimitiveKind.SPHERE else unit_cone(taper)
        meshes.append(Mesh(v, f, color=color, label=label))
    return meshes
