"""OpenGL rendering for handrgbd: headless or windowed contexts, mesh scenes, tiled hypotheses.

Serves the tracker (``HypothesisRenderer``: N hand hypotheses of geometric primitives into
T x T depth tiles, plus the objective's sums) and the synthetic-data generator
(``MeshRenderer``: textured meshes to RGB, depth and labels). Conventions: docs/conventions.md.
"""

from renderer.context import BACKENDS, GLBackendError, GLContext, create_context
from renderer.mesh import DirectionalLight, Lighting, Mesh, MeshRenderer, RenderOutput
from renderer.projection import RegionOfInterest, gl_projection
from renderer.tiled import HypothesisRenderer, PrimitiveKind, PrimitiveSet, TileSums, tile_sums

__all__ = [
    "BACKENDS", "GLBackendError", "GLContext", "create_context",
    "Mesh", "MeshRenderer", "Lighting", "DirectionalLight", "RenderOutput",
    "RegionOfInterest", "gl_projection",
    "HypothesisRenderer", "PrimitiveKind", "PrimitiveSet", "TileSums", "tile_sums",
]
