"""A time-of-flight depth sensor model (Kinect v2-like) applied to clean rendered depth.

``SensorModel.apply(depth_mm, rgb, rng)`` turns noise-free depth into what such a sensor
delivers, in this order:

1. **Axial noise**, Gaussian with ``sigma(z, theta) = (sigma_0 + k z^2) / max(cos theta, 0.2)``
   (z in metres, theta the angle between the surface normal and the viewing ray). Defaults
   ``sigma_0 = 1.0 mm``, ``k = 1.5 mm/m^2``: 1.4 mm at 0.5 m, 2.5 mm at 1 m facing the camera.
   Kinect v2 measurements put the axial standard deviation at about 1-2 mm within 1 m, growing
   with distance and incidence angle (Fankhauser et al., "Kinect v2 for mobile robot navigation:
   evaluation and modeling", ICAR 2015; Sarbolandi et al., "Kinect range sensing: structured-light
   versus time-of-flight Kinect", CVIU 2015).
2. **Flying pixels**: at depth discontinuities larger than ``edge_jump_mm`` a ToF pixel sees both
   surfaces and reports a depth in between; with probability ``flying_prob`` an edge pixel
   gets ``z_near + u (z_far - z_near)``, u uniform (Sarbolandi et al. 2015, "mixed pixels").
3. **Dropouts**: a pixel is invalid (0) with probability rising from 0 at ``grazing_start_deg``
   to 1 at 88 deg incidence (little light returns at grazing angles), with probability
   ``dark_dropout`` scaled by how dark the pixel is in RGB (low near-infrared return from
   dark materials is approximated by low visible albedo), and outside ``range_mm``.
4. **Quantisation** to ``quantum_mm`` (1 mm: Kinect v2 reports integer millimetres).

Noise parameters are per instance, so a data generator can vary them; all randomness comes
from the caller's ``numpy.random.Generator``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from handrgbd.camera import CameraIntrinsics

__all__ = ["SensorModel", "surface_cosine"]


def surface_cosine(depth_mm: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    """``|cos|`` of the angle between the surface normal and the viewing ray, per pixel.

    Normals from the cross product of back-projected neighbour differences (central
    differences); 1 where undefined (background, borders, depth edges).
    """
    z = np.asarray(depth_mm, dtype=np.float64)
    H, W = z.shape
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    X = (u - camera.cx) * z / camera.fx
    Y = (v - camera.cy) * z / camera.fy
    P = np.stack([X, Y, z], -1)
    dx = np.zeros_like(P)
    dy = np.zeros_like(P)
    dx[:, 1:-1] = P[:, 2:] - P[:, :-2]
    dy[1:-1] = P[2:] - P[:-2]
    n = np.cross(dx, dy)
    norm = np.linalg.norm(n, axis=-1)
    ray = P / np.maximum(np.linalg.norm(P, axis=-1, keepdims=True), 1e-9)
    cos = np.abs((n * ray).sum(-1)) / np.maximum(norm, 1e-12)
    valid = (z > 0) & (norm > 0)
    valid[:, [0, -1]] = False
    valid[[0, -1], :] = False
    # neighbours across a depth edge give meaningless normals
    zz = np.pad(z, 1, mode="edge")
    jump = np.maximum.reduce([np.abs(zz[1:-1, 2:] - zz[1:-1, :-2]), np.abs(zz[2:, 1:-1] - zz[:-2, 1:-1])])
    valid &= jump < 0.1 * np.maximum(z, 1.0)
    return np.where(valid, cos, 1.0)


@dataclass(frozen=True)
class SensorModel:
    """Parameters of the ToF sensor model (see the module docstring for sources)."""

    sigma0_mm: float = 1.0
    sigma_k_mm_per_m2: float = 1.5
    edge_jump_mm: float = 30.0
    flying_prob: float = 0.5
    grazing_start_deg: float = 70.0
    dark_dropout: float = 0.3
    dark_threshold: float = 0.12
    range_mm: tuple[float, float] = (300.0, 4500.0)
    quantum_mm: float = 1.0

    def __post_init__(self) -> None:
        for name in ("sigma0_mm", "sigma_k_mm_per_m2", "edge_jump_mm", "quantum_mm"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise ValueError(f"SensorModel.{name} must be finite and >= 0")
        for name in ("flying_prob", "dark_dropout", "dark_threshold"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SensorModel.{name} must be in [0, 1]")
        if not 0 <= self.grazing_start_deg < 88:
            raise ValueError("SensorModel.grazing_start_deg must be in [0, 88)")
        if not 0 <= self.range_mm[0] < self.range_mm[1]:
            raise ValueError(f"SensorModel.range_mm must be (min, max) with 0 <= min < max, got {self.range_mm}")

    def sigma_mm(self, z_mm: np.ndarray, cos_incidence: np.ndarray | float = 1.0) -> np.ndarray:
        """Axial noise standard deviation (mm) at depth ``z_mm`` and incidence cosine."""
        z_m = np.asarray(z_mm, dtype=np.float64) / 1000.0
        return (self.sigma0_mm + self.sigma_k_mm_per_m2 * z_m ** 2) / np.maximum(cos_incidence, 0.2)

    def apply(self, depth_mm: np.ndarray, camera: CameraIntrinsics, rng: np.random.Generator,
              rgb: np.ndarray | None = None) -> np.ndarray:
        """Clean ``(H, W)`` depth (mm, 0 = nothing) -> sensor depth ``(H, W) float32`` mm, 0 = invalid."""
        z = np.asarray(depth_mm, dtype=np.float64)
        valid = z > 0
        cos = surface_cosine(z, camera)
        out = z + rng.standard_normal(z.shape) * self.sigma_mm(z, cos)
        # flying pixels between the two sides of a depth edge
        zz = np.pad(np.where(valid, z, np.inf), 1, mode="edge")
        neigh = np.stack([zz[1:-1, 2:], zz[1:-1, :-2], zz[2:, 1:-1], zz[:-2, 1:-1]])
        far = np.where(np.isfinite(neigh), neigh, 0.0).max(0)
        edge = valid & (far - z > self.edge_jump_mm) & np.isfinite(neigh).all(0)
        flying = edge & (rng.random(z.shape) < self.flying_prob)
        out = np.where(flying, z + rng.random(z.shape) * (far - z), out)
        # dropouts: grazing incidence, dark surfaces, range
        angle = np.degrees(np.arccos(np.clip(cos, 0.0, 1.0)))
        p_drop = np.clip((angle - self.grazing_start_deg) / (88.0 - self.grazing_start_deg), 0.0, 1.0)
        if rgb is not None and self.dark_dropout > 0:
            lum = np.asarray(rgb, dtype=np.float64).mean(-1) / 255.0
            p_drop = np.maximum(p_drop, self.dark_dropout * np.clip(1 - lum / self.dark_threshold, 0, 1))
        drop = rng.random(z.shape) < p_drop
        keep = valid & ~drop & (out >= self.range_mm[0]) & (out <= self.range_mm[1])
        if self.quantum_mm > 0:
            out = np.round(out / self.quantum_mm) * self.quantum_mm
        return np.where(keep, out, 0.0).astype(np.float32)
