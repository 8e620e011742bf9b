"""Drawing helpers shared by every package's figures: depth colour maps and skeletons.

Both draw on ``(H, W, 3) uint8`` RGB images with OpenCV; nothing else is imported, so any
package (depthnet, tracker, synth, live, experiments) may use them.
"""

from __future__ import annotations

import cv2
import numpy as np

from handrgbd.joints import BONES

__all__ = ["colorize_depth", "grey_depth", "draw_skeleton", "fit_width", "tile_images"]


def _depth_scale(depth_mm: np.ndarray, lo: float | None, hi: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Valid pixels ``(H, W) bool`` and depth scaled to ``[0, 1]`` between ``lo`` and ``hi``
    (default: the 1st and 99th percentiles of valid depth); call only when some pixel is valid."""
    valid = depth_mm > 0
    lo = np.percentile(depth_mm[valid], 1) if lo is None else lo
    hi = np.percentile(depth_mm[valid], 99) if hi is None else hi
    return valid, np.clip((depth_mm - lo) / max(hi - lo, 1e-6), 0, 1)


def colorize_depth(depth_mm: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``(H, W)`` mm -> ``(H, W, 3) uint8`` RGB (turbo colour map near = red ... far = blue; 0 black)."""
    if not (depth_mm > 0).any():
        return np.zeros((*depth_mm.shape, 3), np.uint8)
    valid, t = _depth_scale(depth_mm, lo, hi)
    img = np.ascontiguousarray(cv2.applyColorMap((255 * (1 - t)).astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1])
    img[~valid] = 0
    return img


def grey_depth(depth_mm: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """``(H, W)`` mm -> ``(H, W, 3) uint8`` grey (near = light, far = dark; 0 black), for
    drawing coloured overlays on depth-only recordings."""
    img = np.zeros((*depth_mm.shape, 3), np.uint8)
    if not (depth_mm > 0).any():
        return img
    valid, t = _depth_scale(depth_mm, lo, hi)
    img[valid] = (40 + 200 * (1 - t[valid]))[:, None].astype(np.uint8)
    return img


def fit_width(image: np.ndarray, width: int) -> np.ndarray:
    """``image`` scaled to ``width`` px wide, aspect kept (area interpolation); itself when it is
    that wide already."""
    if image.shape[1] == width:
        return image
    return cv2.resize(image, (width, max(1, round(image.shape[0] * width / image.shape[1]))),
                      interpolation=cv2.INTER_AREA)


def tile_images(images: list[np.ndarray], columns: int, width: int) -> np.ndarray:
    """Images ``(H_i, W_i, 3) uint8`` scaled to ``width`` px wide (aspect kept) and laid out
    row by row, ``columns`` per row, on black: one ``(H, W, 3) uint8`` sheet."""
    if not images or columns < 1 or width < 1:
        raise ValueError(f"tile_images needs images, columns >= 1 and width >= 1 (got {len(images)}, {columns}, {width})")
    tiles = [fit_width(im, width) for im in images]
    cell = max(t.shape[0] for t in tiles)
    rows = -(-len(tiles) // columns)
    sheet = np.zeros((rows * cell, columns * width, 3), np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, columns)
        sheet[r * cell:r * cell + t.shape[0], c * width:(c + 1) * width] = t
    return sheet


def draw_skeleton(image: np.ndarray, uv: np.ndarray, colour=(40, 230, 40), thickness: int = 1,
                  dot_radius: int = 0, dot_colour=(255, 60, 40)) -> None:
    """Draw the 20 bones of ``uv (21, 2)`` pixel coordinates on ``image`` in place; with
    ``dot_radius`` > 0 also a dot on every joint."""
    pts = [tuple(p) for p in np.round(uv).astype(int)]
    for a, b in BONES:
        cv2.line(image, pts[a], pts[b], colour, thickness, cv2.LINE_AA)
    if dot_radius > 0:
        for p in pts:
            cv2.circle(image, p, dot_radius, dot_colour, -1, cv2.LINE_AA)
