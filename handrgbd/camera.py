"""Pinhole camera intrinsics, in pixels, with OpenCV's frame and the pixel-centre convention.

Camera frame: x right, y down, z forward, millimetres. A point ``(X, Y, Z)`` projects to
``u = fx * X / Z + cx``, ``v = fy * Y / Z + cy``, where integer ``(u, v)`` is the *centre* of
pixel ``(column u, row v)``: pixel ``u`` covers ``[u - 0.5, u + 0.5)``. Equivalently, in *edge*
coordinates ``e = u + 0.5`` pixel ``u`` covers ``[u, u + 1)``; regions of interest are boxes in
edge coordinates (see ``docs/conventions.md``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["CameraIntrinsics", "FOCAL_RANGE_PX", "MAX_CENTRE_ANGLE_DEG", "crop_image"]

#: Focal lengths a real camera (or a crop or resize of its image) can have, in pixels: below 10 a
#: 64-pixel image would span over 145 degrees; above 1e5 a 4000-pixel one under 2.3 degrees.
FOCAL_RANGE_PX = (10.0, 1e5)
#: The image centre's ray lies at most this far from the optical axis: a crop of a wide-angle
#: view (the synthetic generator's hand crops reach about 45 degrees) stays well inside it, while a
#: principal point thousands of focal lengths away (a wrong unit) does not.
MAX_CENTRE_ANGLE_DEG = 80.0


def _finite_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value) and value > 0):
        raise ValueError(f"CameraIntrinsics.{name} must be a finite positive number, got {value!r}")


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an image of ``width x height`` pixels.

    fx, fy : focal lengths in pixels (> 0).
    cx, cy : principal point in pixel-centre coordinates (pixel (0, 0)'s centre is (0, 0)).
    width, height : image size in pixels (> 0).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        _finite_positive("fx", self.fx)
        _finite_positive("fy", self.fy)
        for name in ("cx", "cy"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)):
                raise ValueError(f"CameraIntrinsics.{name} must be a finite number, got {value!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"CameraIntrinsics.{name} must be a positive integer, got {value!r}")
        # Normalise numpy scalars to plain Python numbers so equality, hashing and JSON behave.
        for name in ("fx", "fy", "cx", "cy"):
            object.__setattr__(self, name, float(getattr(self, name)))
        for name in ("width", "height"):
            object.__setattr__(self, name, int(getattr(self, name)))

    # ---- views -------------------------------------------------------------------------
    @property
    def K(self) -> np.ndarray:
        """The 3x3 intrinsic matrix, float64."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return (self.width, self.height)

    @classmethod
    def from_K(cls, K: np.ndarray, width: int, height: int) -> "CameraIntrinsics":
        """Build from a 3x3 matrix ``[[fx, 0, cx], [0, fy, cy], [0, 0, 1]]`` (no skew)."""
        K = np.asarray(K, dtype=np.float64)
        if K.shape != (3, 3):
            raise ValueError(f"K must be 3x3, got shape {K.shape}")
        if K[0, 1] != 0 or K[1, 0] != 0 or not np.allclose(K[2], [0, 0, 1]):
            raise ValueError(f"K must have no skew and last row [0, 0, 1], got {K.tolist()}")
        return cls(float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), width, height)

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> "CameraIntrinsics":
        """Square pixels, principal point at the image centre, horizontal field of view in degrees."""
        if not (0.0 < hfov_deg < 180.0):
            raise ValueError(f"horizontal field of view must be in (0, 180) degrees, got {hfov_deg}")
        f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)

    def to_dict(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy,
                "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, d: dict) -> "CameraIntrinsics":
        missing = [k for k in ("fx", "fy", "cx", "cy", "width", "height") if k not in d]
        if missing:
            raise ValueError(f"camera intrinsics missing key(s) {missing}")
        return cls(float(d["fx"]), float(d["fy"]), float(d["cx"]), float(d["cy"]),
                   int(d["width"]), int(d["height"]))

    def implausible(self) -> list[tuple[str, str]]:
        """``[(key, why), ...]`` for the values no real camera has (empty when all are plausible):
        focal lengths outside :data:`FOCAL_RANGE_PX`, or an image centre whose ray lies more than
        :data:`MAX_CENTRE_ANGLE_DEG` off the optical axis. Recordings and ``--intrinsics`` files are
        checked with it; the class itself accepts any positive finite values (tests use odd ones)."""
        lo, hi = FOCAL_RANGE_PX
        problems = [(k, f"must be in [{lo:g}, {hi:g}] pixels, got {getattr(self, k)!r}")
                    for k in ("fx", "fy") if not lo <= getattr(self, k) <= hi]
        limit = math.tan(math.radians(MAX_CENTRE_ANGLE_DEG))
        for key, f, c, size in (("cx", self.fx, self.cx, self.width), ("cy", self.fy, self.cy, self.height)):
            if abs((size - 1) / 2.0 - c) > limit * f:
                problems.append((key, f"puts the image centre more than {MAX_CENTRE_ANGLE_DEG:g} degrees off the "
                                      f"optical axis (got {c!r} for a {size}-pixel side, focal length {f:g})"))
        return problems

    # ---- image transforms ---------------------------------------------------------------
    def crop_resize(self, box: tuple[float, float, float, float], out_width: int,
                    out_height: int) -> "CameraIntrinsics":
        """Intrinsics of the image obtained by taking ``box`` and resampling it to ``out`` size.

        box : ``(x0, y0, x1, y1)`` in edge coordinates of this image (pixel ``u`` spans
            ``[u, u + 1)``), so an integer crop of columns ``a..b`` inclusive is ``x0=a, x1=b+1``.
            The box may extend past the image.

        Output pixel ``j`` (centre) sees this image's pixel-centre coordinate
        ``u = x0 + (j + 0.5) / s - 0.5`` with ``s = out_width / (x1 - x0)``, hence
        ``fx' = s fx`` and ``cx' = s (cx + 0.5 - x0) - 0.5`` (same for y).
        """
        x0, y0, x1, y1 = (float(b) for b in box)
        if not all(math.isfinite(b) for b in (x0, y0, x1, y1)) or x1 <= x0 or y1 <= y0:
            raise ValueError(f"crop box must be finite with x1 > x0 and y1 > y0, got {box}")
        sx = out_width / (x1 - x0)
        sy = out_height / (y1 - y0)
        return CameraIntrinsics(self.fx * sx, self.fy * sy, sx * (self.cx + 0.5 - x0) - 0.5,
                                sy * (self.cy + 0.5 - y0) - 0.5, out_width, out_height)

    def padded_box(self, points_mm: np.ndarray, pad_mm: float) -> tuple[np.ndarray, np.ndarray]:
        """The pixel box ``(lo (2,), hi (2,))`` in edge coordinates around points ``(..., 3)`` mm
        (e.g. a hand's joints, bone centres), grown on every side by ``pad_mm`` seen at the
        nearest point's depth (the skin past them)."""
        p = np.asarray(points_mm).reshape(-1, 3)
        uv = self.project(p)
        pad = pad_mm * self.fx / p[:, 2].min()
        return uv.min(0) - pad, uv.max(0) + pad + 1

    def crop(self, x0: int, y0: int, width: int, height: int) -> "CameraIntrinsics":
        """Intrinsics of the pixel crop ``image[y0:y0 + height, x0:x0 + width]``."""
        return self.crop_resize((x0, y0, x0 + width, y0 + height), width, height)

    def resize(self, out_width: int, out_height: int) -> "CameraIntrinsics":
        """Intrinsics of the whole image resampled to ``out_width x out_height``."""
        return self.crop_resize((0, 0, self.width, self.height), out_width, out_height)

    # ---- geometry --------------------------------------------------------------------
    def project(self, points_mm: np.ndarray) -> np.ndarray:
        """``(..., 3)`` camera-frame points (mm, z > 0) -> ``(..., 2)`` pixel coordinates (u, v)."""
        p = np.asarray(points_mm, dtype=np.float64)
        if p.shape[-1] != 3:
            raise ValueError(f"points must have shape (..., 3), got {p.shape}")
        z = p[..., 2]
        return np.stack([self.fx * p[..., 0] / z + self.cx, self.fy * p[..., 1] / z + self.cy], axis=-1)

    def unproject(self, uv: np.ndarray, depth_mm: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``(..., 2)`` with depth ``(...)`` in mm -> camera points ``(..., 3)``."""
        uv = np.asarray(uv, dtype=np.float64)
        z = np.asarray(depth_mm, dtype=np.float64)
        return np.stack([(uv[..., 0] - self.cx) * z / self.fx, (uv[..., 1] - self.cy) * z / self.fy, z],
                        axis=-1)

    def depth_to_points(self, depth_mm: np.ndarray) -> np.ndarray:
        """Back-project a ``(height, width)`` depth map (mm, 0 = no reading) -> ``(M, 3)`` valid points."""
        depth = np.asarray(depth_mm)
        if depth.shape != (self.height, self.width):
            raise ValueError(f"depth map has shape {depth.shape}, intrinsics expect "
                             f"{(self.height, self.width)}")
        v, u = np.nonzero(depth > 0)
        return self.unproject(np.stack([u, v], axis=-1), depth[v, u])


def crop_image(image: np.ndarray, x0: int, y0: int, width: int, height: int) -> np.ndarray:
    """``image[y0:y0 + height, x0:x0 + width]`` of an ``(H, W, ...)`` array, where the box may reach
    past the image: pixels outside are 0 (black, no reading, not hand). The intrinsics of the
    result are ``CameraIntrinsics.crop``'s."""
    H, W = image.shape[:2]
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + width, W), min(y0 + height, H)
    out = np.zeros((height, width, *image.shape[2:]), image.dtype)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out
