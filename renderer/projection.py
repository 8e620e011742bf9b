"""The one K -> OpenGL projection, and regions of interest (the zoomed virtual camera).

Conventions (``docs/conventions.md``): OpenCV camera frame (x right, y down, z forward, mm);
pixel ``(u, v)`` of a ``W x H`` image has its centre at ``(u, v)``. The projection maps that
centre to GL window coordinates ``(u + 0.5, v + 0.5)``, i.e. image row ``v`` is framebuffer row
``v`` counted from GL's origin, so ``glReadPixels`` returns the image top row first: no flip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from handrgbd.camera import CameraIntrinsics

__all__ = ["gl_projection", "RegionOfInterest", "DEFAULT_NEAR_MM", "DEFAULT_FAR_MM"]

DEFAULT_NEAR_MM = 10.0
DEFAULT_FAR_MM = 10000.0


def gl_projection(camera: CameraIntrinsics, near_mm: float = DEFAULT_NEAR_MM,
                  far_mm: float = DEFAULT_FAR_MM) -> np.ndarray:
    """4x4 float64 matrix taking camera-frame points ``(X, Y, Z, 1)`` (mm) to GL clip space.

    Closed form (W, H image size)::

        x_clip = 2 fx / W * X + ((2 cx + 1) / W - 1) * Z
        y_clip = 2 fy / H * Y + ((2 cy + 1) / H - 1) * Z
        z_clip = (f + n) / (f - n) * Z - 2 f n / (f - n)
        w_clip = Z

    so NDC x = (2 (u + 0.5) / W) - 1 with u = fx X / Z + cx, and NDC z runs from -1 at
    ``near_mm`` to +1 at ``far_mm``.
    """
    if not (0.0 < near_mm < far_mm and math.isfinite(far_mm)):
        raise ValueError(f"need 0 < near_mm < far_mm < inf, got near={near_mm}, far={far_mm}")
    W, H = camera.width, camera.height
    n, f = float(near_mm), float(far_mm)
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * camera.fx / W
    P[0, 2] = (2.0 * camera.cx + 1.0) / W - 1.0
    P[1, 1] = 2.0 * camera.fy / H
    P[1, 2] = (2.0 * camera.cy + 1.0) / H - 1.0
    P[2, 2] = (f + n) / (f - n)
    P[2, 3] = -2.0 * f * n / (f - n)
    P[3, 2] = 1.0
    return P


@dataclass(frozen=True)
class RegionOfInterest:
    """A box of the full image, in edge coordinates: pixel ``u`` spans ``[u, u + 1)``.

    A mask whose pixels span columns ``a..b`` and rows ``c..d`` (inclusive) has the box
    ``(a, c, b + 1, d + 1)``. Zoomed to a ``T x T`` tile, tile pixel ``(i, j)``'s centre sees the
    full image at pixel-centre coordinates ``u = x0 + (j + 0.5) * (x1 - x0) / T - 0.5`` and
    ``v = y0 + (i + 0.5) * (y1 - y0) / T - 0.5``; :meth:`camera` gives the matching intrinsics
    and :meth:`sample` resamples an observed image the same way.
    """

    x0: float
    y0: float
    x1: float
    y1: float

    def __post_init__(self) -> None:
        vals = (self.x0, self.y0, self.x1, self.y1)
        if not all(math.isfinite(float(v)) for v in vals):
            raise ValueError(f"RegionOfInterest must be finite, got {vals}")
        if not (self.x1 > self.x0 and self.y1 > self.y0):
            raise ValueError(f"RegionOfInterest needs x1 > x0 and y1 > y0, got {vals}")
        for name, v in zip(("x0", "y0", "x1", "y1"), vals):
            object.__setattr__(self, name, float(v))

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x0, self.y0, self.x1, self.y1)

    @classmethod
    def full(cls, camera: CameraIntrinsics) -> "RegionOfInterest":
        """The whole image."""
        return cls(0.0, 0.0, float(camera.width), float(camera.height))

    @classmethod
    def from_mask(cls, mask: np.ndarray, margin: float = 0.1, square: bool = True) -> "RegionOfInterest":
        """Bounding box of a non-empty ``(H, W)`` mask, grown by ``margin`` x its size per side."""
        ys, xs = np.nonzero(np.asarray(mask))
        if xs.size == 0:
            raise ValueError("RegionOfInterest.from_mask: the mask is empty")
        return cls(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1).expanded(margin, square)

    @classmethod
    def from_points(cls, uv: np.ndarray, margin: float = 0.1, square: bool = True) -> "RegionOfInterest":
        """Box around ``(M, 2)`` pixel-centre coordinates (e.g. projected joints), grown by ``margin``."""
        uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
        if uv.shape[0] == 0 or not np.all(np.isfinite(uv)):
            raise ValueError("RegionOfInterest.from_points: need at least one finite point")
        lo, hi = uv.min(axis=0), uv.max(axis=0) + 1.0  # the pixels holding the extreme points
        return cls(lo[0], lo[1], hi[0], hi[1]).expanded(margin, square)

    def expanded(self, margin: float, square: bool = True) -> "RegionOfInterest":
        """Grow by ``margin`` x (width, height) on each side; ``square`` makes it square about its centre."""
        if not (margin >= 0 and math.isfinite(margin)):
            raise ValueError(f"margin must be finite and >= 0, got {margin}")
        cx, cy = 0.5 * (self.x0 + self.x1), 0.5 * (self.y0 + self.y1)
        hw, hh = 0.5 * (self.x1 - self.x0), 0.5 * (self.y1 - self.y0)
        if square:
            hw = hh = max(hw, hh)
        hw, hh = hw * (1 + 2 * margin), hh * (1 + 2 * margin)
        return RegionOfInterest(cx - hw, cy - hh, cx + hw, cy + hh)

    def camera(self, camera: CameraIntrinsics, tile_size: int) -> CameraIntrinsics:
        """Intrinsics of the virtual camera that sees this box as a ``tile_size``-square image."""
        return camera.crop_resize(self.box, tile_size, tile_size)

    def tile_indices(self, u: np.ndarray, v: np.ndarray, tile_size: int) -> tuple[np.ndarray, np.ndarray]:
        """The other way from :meth:`sample`: for full-image pixel columns ``u`` and rows ``v``
        (integer arrays, any shapes), the ``(i, j)`` of the ``T x T`` tile pixels whose footprints
        hold those pixels' centres, ``i = floor((v + 0.5 - y0) / (y1 - y0) * T)``, clipped to the
        tile (to read a rendered tile back at image pixels)."""
        i = np.floor((np.asarray(v) + 0.5 - self.y0) / (self.y1 - self.y0) * tile_size).astype(np.int64)
        j = np.floor((np.asarray(u) + 0.5 - self.x0) / (self.x1 - self.x0) * tile_size).astype(np.int64)
        return np.clip(i, 0, tile_size - 1), np.clip(j, 0, tile_size - 1)

    def sample(self, image: np.ndarray, tile_size: int, fill=0) -> np.ndarray:
        """Nearest-neighbour resample of ``image[:H, :W, ...]`` onto the ``T x T`` tile grid.

        Tile pixel ``(i, j)`` takes full-image pixel ``(floor(y0 + (i + 0.5) sy),
        floor(x0 + (j + 0.5) sx))`` with ``sx = (x1 - x0) / T``; pixels outside get ``fill``.
        """
        image = np.asarray(image)
        if image.ndim < 2:
            raise ValueError(f"image must be at least 2-D, got shape {image.shape}")
        H, W = image.shape[:2]
        t = (np.arange(tile_size) + 0.5) / tile_size
        cols = np.floor(self.x0 + t * (self.x1 - self.x0)).astype(np.int64)
        rows = np.floor(self.y0 + t * (self.y1 - self.y0)).astype(np.int64)
        col_ok = (cols >= 0) & (cols < W)
        row_ok = (rows >= 0) & (rows < H)
        out = image[np.clip(rows, 0, H - 1)[:, None], np.clip(cols, 0, W - 1)[None, :]]
        out = out.copy()
        out[~(row_ok[:, None] & col_ok[None, :])] = fill
        return out
