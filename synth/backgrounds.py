"""Background and clutter textures: real photographs that ship with installed packages, plus
procedural textures. Each split (train / val / test) draws from its own disjoint subset.

Photographs: scikit-image's bundled sample images (``skimage/data``: astronaut, coffee, chelsea,
rocket, motorcycles, the Hubble deep field, ...) and matplotlib's sample photo of Grace
Hopper; grayscale ones (brick, grass, gravel, moon, ...) are used as tinted textures.
Procedural: fractal value noise, stripes, checkers, gradients, generated from a seed.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

log = logging.getLogger(__name__)

__all__ = ["photo_textures", "procedural_texture", "SPLITS", "TEXTURE_SIZE"]

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
