"""Background and clutter textures: real photographs that ship with installed packages, plus
procedural textures. Each split (train / val / test) draws from its own disjoint subset.

Photographs: scikit-image's bundled sample images (``skimage/data``: astronaut, coffee, chelsea,
rocket, motorcycles, the Hubble deep field, ...) and matplotlib's sample photo of Grace
Hopper; grayscale ones (brick, grass, gravel, moon, ...) are used as tinted textures.
Procedural: fractal value noise, stripes, checkers, gradients, generated from a seed.
Collages: a "dead leaves" picture (opaque shapes of random size layered over a zoomed, rotated
crop of a base texture), filled with crops of the split's photographs, procedural textures or flat
shaded colours, many of them skin-like: round bright blobs, skin-coloured patches and hard edges
that a hand detector must learn to reject (a handful of whole photographs cannot teach that).
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

__all__ = ["collage_texture", "photo_textures", "procedural_texture", "SPLITS", "TEXTURE_SIZE"]

TEXTURE_SIZE = 512
SPLITS = ("train", "val", "test")

# file name -> split. Colour photographs and grayscale textures, split disjointly.
_PHOTOS = {
    "astronaut.png": "train", "coffee.png": "train", "rocket.jpg": "train", "motorcycle_left.png": "train",
    "brick.png": "train", "grass.png": "train", "camera.png": "train", "moon.png": "train", "ihc.png": "train",
    "chelsea.png": "val", "gravel.png": "val", "clock_motion.png": "val",
    "motorcycle_right.png": "test", "hubble_deep_field.jpg": "test", "coins.png": "test", "page.png": "test",
    "grace_hopper.jpg": "test",
}


def _photo_dirs() -> list[Path]:
    dirs = []
    try:
        import skimage

        dirs.append(Path(skimage.__file__).parent / "data")
    except ImportError:  # pragma: no cover - scikit-image is a dependency
        log.warning("scikit-image is not installed: no photographic backgrounds from it")
    import matplotlib

    dirs.append(Path(matplotlib.get_data_path()) / "sample_data")
    return dirs


@lru_cache(maxsize=4)
def photo_textures(split: str) -> tuple[np.ndarray, ...]:
    """The split's photographs as ``(TEXTURE_SIZE, TEXTURE_SIZE, 3) uint8`` RGB (centre-cropped)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    out = []
    for name, s in sorted(_PHOTOS.items()):
        if s != split:
            continue
        path = next((d / name for d in _photo_dirs() if (d / name).exists()), None)
        if path is None:
            continue
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grayscale becomes 3 equal channels
        if img is None:
            continue
        h, w = img.shape[:2]
        side = min(h, w)
        img = img[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        out.append(np.ascontiguousarray(cv2.resize(img, (TEXTURE_SIZE, TEXTURE_SIZE), interpolation=cv2.INTER_AREA)[..., ::-1]))
    if not out:
        log.warning("no photographs found for split %s: procedural backgrounds only", split)
    return tuple(out)


def procedural_texture(rng: np.random.Generator, size: int = TEXTURE_SIZE) -> np.ndarray:
    """A random procedural texture ``(size, size, 3) uint8``: noise, stripes, checkers or a gradient."""
    kind = rng.integers(4)
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    if kind == 0:  # fractal value noise
        t = np.zeros((size, size))
        for octave in range(1, 6):
            n = 2 ** (octave + 1)
            t += cv2.resize(rng.random((n, n)), (size, size), interpolation=cv2.INTER_CUBIC) / octave
        t = (t - t.min()) / max(np.ptp(t), 1e-9)
    elif kind == 1:  # stripes at a random angle
        y, x = np.mgrid[0:size, 0:size] / size
        a = rng.uniform(0, np.pi)
        t = 0.5 + 0.5 * np.sign(np.sin((x * np.cos(a) + y * np.sin(a)) * rng.uniform(4, 30) * np.pi))
    elif kind == 2:  # checkers
        n = rng.integers(3, 16)
        y, x = np.mgrid[0:size, 0:size] * n // size
        t = ((x + y) % 2).astype(float)
    else:  # gradient
        y, x = np.mgrid[0:size, 0:size] / size
        t = x * rng.uniform(-1, 1) + y * rng.uniform(-1, 1)
        t = (t - t.min()) / max(np.ptp(t), 1e-9)
    img = c0 + t[..., None] * (c1 - c0)
    return np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)


def _random_view(rng: np.random.Generator, texture: np.ndarray, size: int, max_zoom: float = 3.0) -> np.ndarray:
    """A ``(size, size, 3)`` view of ``texture``: random zoom (1 to ``max_zoom``), rotation, flip, shift."""
    h, w = texture.shape[:2]
    zoom = np.exp(rng.uniform(0.0, np.log(max_zoom))) * size / min(h, w)
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), rng.uniform(0, 360), zoom)
    m[:, 2] += (size - 1) / 2 - np.array([(w - 1) / 2, (h - 1) / 2]) + rng.uniform(-0.3, 0.3, 2) * size
    if rng.random() < 0.5:
        texture = texture[:, ::-1]
    return cv2.warpAffine(np.ascontiguousarray(texture), m, (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT_101)


def _skin_like_colour(rng: np.random.Generator) -> np.ndarray:
    """An RGB colour (0-255) in the broad range of human skin under varied light."""
    r = rng.uniform(90, 255)
    g = r * rng.uniform(0.55, 0.88)
    return np.array([r, g, g * rng.uniform(0.6, 0.95)])


def _shape_mask(rng: np.random.Generator, size: int, radius: float) -> np.ndarray:
    """``(size, size) uint8`` 0/255: a disk, ellipse, rotated rectangle or random polygon."""
    mask = np.zeros((size, size), np.uint8)
    c = rng.uniform(-0.1, 1.1, 2) * size
    kind = rng.integers(4)
    if kind == 0:
        cv2.circle(mask, (int(c[0]), int(c[1])), max(int(radius), 1), 255, -1, cv2.LINE_AA)
    elif kind == 1:
        axes = (max(int(radius), 1), max(int(radius * rng.uniform(0.2, 0.9)), 1))
        cv2.ellipse(mask, (int(c[0]), int(c[1])), axes, rng.uniform(0, 180), 0, 360, 255, -1, cv2.LINE_AA)
    elif kind == 2:
        box = ((float(c[0]), float(c[1])), (2 * radius, 2 * radius * rng.uniform(0.1, 1.0)), rng.uniform(0, 180))
        cv2.fillPoly(mask, [cv2.boxPoints(box).astype(np.int32)], 255, cv2.LINE_AA)
    else:
        n = rng.integers(3, 9)
        a = np.sort(rng.uniform(0, 2 * np.pi, n))
        r = radius * rng.uniform(0.4, 1.0, n)
        pts = np.stack([c[0] + r * np.cos(a), c[1] + r * np.sin(a)], 1)
        cv2.fillPoly(mask, [pts.astype(np.int32)], 255, cv2.LINE_AA)
    return mask


def collage_texture(rng: np.random.Generator, base: np.ndarray, photos: tuple[np.ndarray, ...],
                    size: int = 256) -> np.ndarray:
    """A dead-leaves collage ``(size, size, 3) uint8`` RGB over a random view of ``base`` (RGB uint8).

    4-40 shapes with radii log-uniform in 2-35% of the side; each is filled with a view of one of
    ``photos`` (randomly tinted), a procedural texture, or a flat colour (half of them skin-like)
    with a linear shading ramp. A third of collages are blurred as an out-of-focus background is.
    """
    out = _random_view(rng, base, size).astype(np.float32)
    for _ in range(rng.integers(4, 41)):
        radius = size * np.exp(rng.uniform(np.log(0.02), np.log(0.35)))
        mask = _shape_mask(rng, size, radius)
        ys, xs = np.nonzero(mask)
        fill = rng.random()  # drawn before any early exit: the stream does not depend on the shape
        tint, colour, slope = rng.uniform(0.6, 1.3, 3), _skin_like_colour(rng), rng.uniform(-0.5, 0.5, 2)
        if rng.random() < 0.5:
            colour = rng.uniform(0, 255, 3)
        if ys.size == 0:
            continue
        box = slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1)
        alpha = mask[box].astype(np.float32)[..., None] / 255.0
        if fill < 0.35 and photos:
            src = _random_view(rng, photos[rng.integers(len(photos))], size)[box].astype(np.float32) * tint
        elif fill < 0.55:
            src = procedural_texture(rng, size)[box].astype(np.float32)
        else:
            yy, xx = np.mgrid[box] / size
            ramp = 1.0 + slope[0] * (xx - 0.5) + slope[1] * (yy - 0.5)
            src = colour * ramp[..., None] + rng.normal(0, 3, alpha.shape[:2] + (3,))
        out[box] = out[box] * (1 - alpha) + src * alpha
    if rng.random() < 1 / 3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.8, 3.0))
    return np.clip(out, 0, 255).astype(np.uint8)
