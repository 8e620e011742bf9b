"""Hand detection in depth: find the hand among the body, the arm and the background.

The paper's eq. (1) takes everything within 300 mm of the nearest pixel as the hand. A real
person holds the hand near the body, so that foreground is hand + forearm + torso, and the
nearest pixel can be the torso or a chair. Depth trackers of this kind look for the hand at the
end of the arm instead; this module does that on the depth surface:

1. **Surface graph.** The depth map is sampled on a grid whose cells are about ``cell_mm`` wide
   at the near end of the scene (the 5th percentile of valid depth; the palm's depth for
   ``hand_region``), so the work follows the scene's size in millimetres, not the image's in
   pixels (at most ``max_grid_cells`` cells along the long side). Each cell is the median of
   the valid depths among 3 x 3 pixels spread over its block (holes and flying pixels do not
   cut it) and a 3D point; neighbouring cells (8-connected) are joined when their depths differ
   by less than ``max(jump_mm, jump_pitches x the grid's pitch)`` (x sqrt 2 for diagonal
   neighbours), with the 3D distance as the edge's length. Depth edges (hand in front of the
   body) cut the graph; a body part reaching out stays connected to the body through the arm.
2. **Geodesic extrema** (Plagemann et al., ICRA 2010, "AGEX"): per connected surface, start at
   its thickest point (largest 2D distance to its outline), repeatedly take the point with the
   largest geodesic distance to all points taken so far and add it, up to ``max_extrema`` times
   or until the farthest point is nearer than ``0.3`` hand lengths. Fingertips, the head and the
   elbow of a folded arm come out as extrema; extrema on the image border (within ``BORDER_CELLS``)
   are dropped (the arm or the body continues out of view there). The thickest point joins them:
   a fist at the end of an arm that ends in view is the thickest part, and every extremum lies
   up the arm.
3. **Candidates.** For each extremum, the surface within one hand length of it (geodesically) is
   where a hand ending there would lie. Its palm is the largest disc inside that region (2D
   distance transform; radius in mm from the grid's pitch at the disc's centre). A disc that
   reaches the image's edge is no palm: an arm leaving the view, whose width can match a palm's
   (or a hand half out of view, which cannot be started from anyway).
4. **Score** (lower is better): ``|ln(r / R)| / ln(radius_tolerance)
   + max(0, ln(a / A)) / ln(area_tolerance) + (z - z_near) / nearer_scale_mm``, where ``r`` is
   the palm disc's radius and ``R = palm_radius_mm``, ``a`` the region's area and ``A = hand_area_mm2``
   (both scaled with the hand length), ``z`` the palm's depth and ``z_near`` the nearest
   candidate palm's. A head or a torso has too wide a disc and too large a region, a
   finger-sized protrusion too narrow a disc (a hand seen edge-on covers less than ``A``, so
   only a larger area costs); among hand-sized candidates the nearer wins (hands are held
   toward the camera). A hand ends its arm: a candidate on the way from the image's border
   to another one (along the surface, the arm leaving the view) costs
   ``(g_b - g_a) / farther_scale_mm`` more, ``g`` the palms' geodesic distances from the
   border (a forearm coming toward a head-mounted camera is nearer than the hand, and a palm
   wide). Candidates with ``r`` outside ``[R / 2, 2 R]`` are rejected, and of candidates whose
   palms lie within ``R`` of each other (several fingertips of one hand) only the best is kept.
5. **Hand region.** The winner's region is the surface within ``region_radius`` hand lengths
   (geodesically) of the surface near the palm's centre (the points within ``SEED_RADIUS``
   hand lengths of it in 3D), about 0.8 hand lengths from the centre in all: fingers in (the
   middle fingertip is 0.7 away), torso out, a stub of forearm in (while tracking, the tracker's
   model has a forearm, or without one cuts the arm at the wrist); plus its islands, small surfaces wholly inside its box and depth
   range (a finger seen past another one, beyond a depth edge).
6. **Fingers' direction**: away from the arm, i.e. from where the surface goes on past the
   region (cells with a joined neighbour outside it; on a surface that reaches the image's
   border, only those nearer the border than the palm, geodesically: a palm found near the
   wrist has the fingertips past its region as well); without such cells, from the region's
   cells on the image's border when they form one band (an arm leaving the view), toward them
   when they form several (fingers leaving it); counted when those cells lie to one side of the
   palm; unknown for a hand with nothing attached.

``hand_region`` grows the same region from a known palm (the previous frame's solution), so the
tracker's observation keeps excluding the body while it follows the hand.

``near_skeleton`` keeps the points of a region within a margin of a known skeleton (the
tracker's previous solution: its bones, the palm's knuckle-to-knuckle segments, optionally the
forearm; ``skeleton_distance``, a numba loop), and past the margin the parts no wider than a
finger (``thin_parts``): a held object or a touched cup joins the hand's surface, and the region
grown over it, but lies farther from the bones.

``support_plane`` finds a table (or floor, or wall) the hand rests on or hovers over: the
dominant plane of the depth map (RANSAC over 2,000 sampled points, a fixed seed, then a least
squares refit), kept only when it is far larger than a hand (at least ``plane_min_share`` of
the valid pixels, and its inliers spread over more than ``plane_min_extent`` hand lengths in
both of its directions: a flat hand spans about one, so a hand filling the view is no table; 1.5
rejected no hand on the bench either, but a smooth forearm and hand passed for a plane in
estimated depth, so the margin stays). The tracker drops its pixels
(within ``plane_tolerance_mm``) before looking for the hand: fingers touching a table otherwise
join the table's surface, and the hand's region grows onto it.

Everything runs on the grid with numpy, OpenCV's distance transform and scipy's Dijkstra; the
support plane's two loops over points and pixels are numba kernels (``tracker._kernels``):
this runs on every tracked frame, and numpy's matrix product there handed the work to
OpenBLAS's threads, which kept spinning on the two cores the PSO kernel needed next (its time
doubled). ``python -m benchmarks.detect_speed`` has the milliseconds per frame. Shapes: depth
``(H, W) float32`` mm, 0 = no reading.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from handrgbd.camera import CameraIntrinsics
from handrgbd.joints import BONES, Joint
from tracker._kernels import plane_inlier_counts_kernel, plane_pixels_kernel, skeleton_distance_kernel
from tracker.kinematics import DEFAULT_HAND_LENGTH_MM, HAND_LENGTH_RANGE_MM

__all__ = ["DetectorConfig", "HandDetection", "detect_hand", "hand_candidates", "hand_region", "support_plane",
           "without_support_plane", "near_skeleton", "skeleton_distance", "thin_parts", "PALM_JOINTS"]

#: support_plane: points sampled, RANSAC trials (fixed seed: the same depth gives the same plane)
PLANE_SAMPLES, PLANE_TRIALS = 2000, 200

#: wrist and the four finger MCPs (MediaPipe order): their mean is the palm's centre
PALM_JOINTS = (Joint.WRIST, Joint.INDEX_MCP, Joint.MIDDLE_MCP, Joint.RING_MCP, Joint.PINKY_MCP)

#: the palm's segments besides its bones (wrist to each knuckle): knuckle to knuckle, and the thumb's
#: base to the index knuckle (``skeleton_distance``)
PALM_SEGMENTS = ((Joint.THUMB_CMC, Joint.INDEX_MCP), (Joint.INDEX_MCP, Joint.MIDDLE_MCP),
                 (Joint.MIDDLE_MCP, Joint.RING_MCP), (Joint.RING_MCP, Joint.PINKY_MCP))

#: the hand region grows from the surface within this many hand lengths of the palm's centre
SEED_RADIUS = 0.2
#: ``hand_region``: how far (hand lengths, geodesically) the region grows from the surface near a
#: given wrist: the heel beyond an object held before the palm, no further up the arm than the
#: palm's centre reaches (it lies about a quarter of a hand length from the wrist)
WRIST_REACH = 0.3

#: extrema fewer than this many grid cells from the image's edge lie "on the border" (the outermost
#: rows and columns of a sensor are often missing, so an arm leaving the image ends a cell early)
BORDER_CELLS = 2

#: a grid cell has a depth when at least this many of its 9 sampled pixels do (see _cell_depths)
CELL_QUORUM = 4

#: an empty cell inside a region with all of its 8 neighbours in it is a hole, not outline (a gap
#: between fingers is open on one side)
HOLE_NEIGHBOURS = 8

#: the cells where the surface goes on past a hand's region must lie to one side of its palm
#: (mean resultant length of their directions) to say where the arm is
ARM_CONCENTRATION = 0.5

#: a surface cut off from the hand's region is one of its islands when its depth lies within this
#: of the region's depth range (see _islands)
ISLAND_DEPTH_MM = 60.0

#: every edge is at least this long (mm): two cells at one depth are still apart for Dijkstra
MIN_EDGE_MM = 1e-3

#: the scene's near end: this percentile of valid depth, sampled every NEAR_SAMPLE_STEP pixels
NEAR_PERCENTILE, NEAR_SAMPLE_STEP = 5.0, 8

#: extrema nearer than this many hand lengths (geodesically) to those taken before end the search
EXTREMUM_MIN_HAND_LENGTHS = 0.3

#: a surface can hold a hand when its area is at least this fraction of a hand's (hand_area_mm2;
#: a quarter of a hand-length x half-a-hand-length rectangle)
MIN_SURFACE_HANDS = 0.27

#: islands are smaller than this fraction of a hand's area
ISLAND_MAX_HANDS = 0.1

#: candidates whose palm disc is outside [R / PALM_RADIUS_RANGE, R * PALM_RADIUS_RANGE] are no hand
PALM_RADIUS_RANGE = 2.0

#: a candidate lies on the way from the image's border to another when the detour through it is
#: shorter than this many hand lengths (``_farther_from_the_body``)
ON_THE_WAY = 0.25

#: the 8-neighbourhood as (dv, du) steps; each undirected edge is listed once
_STEPS = ((0, 1), (1, 0), (1, 1), (1, -1))


@dataclass(frozen=True)
class DetectorConfig:
    """Constants of the depth hand detector (see the module docstring for what each does)."""

    hand_length_mm: float = DEFAULT_HAND_LENGTH_MM
    #: grid pitch: a finger (17 mm) spans two cells, the palm disc (38 mm) about five
    cell_mm: float = 8.0
    max_grid_cells: int = 240
    jump_mm: float = 20.0
    jump_pitches: float = 3.0
    max_extrema: int = 8
    #: the palm disc's expected radius for a 180 mm hand: synthetic renders give 33-37 mm, the
    #: real SR305 hand 41-46 mm (fingers held together widen the disc)
    palm_radius_mm: float = 38.0
    radius_tolerance: float = 1.4
    #: a 180 mm hand facing the camera covers about 13,600 mm^2 (palm 80 x 90, fingers 4 x 18 x
    #: 75, thumb); the region within one hand length of a fingertip holds some wrist besides
    hand_area_mm2: float = 15000.0
    area_tolerance: float = 1.5
    #: a candidate's palm this much deeper than the nearest candidate's costs 1
    nearer_scale_mm: float = 150.0
    #: a candidate on the way from the image's border to another one (the forearm on the way
    #: to the hand) costs 1 per this much nearer the border (geodesically); None: not scored
    farther_scale_mm: float | None = 150.0
    #: the hand's region, in hand lengths (geodesically) past SEED_RADIUS
    region_radius: float = 0.6
    #: support plane (``support_plane``): inlier distance (mm; None: no plane removed), the
    #: share of valid pixels it must hold, its extent in hand lengths along both of its axes
    plane_tolerance_mm: float | None = 12.0
    plane_min_share: float = 0.25
    plane_min_extent: float = 2.0

    def __post_init__(self) -> None:
        lo, hi = HAND_LENGTH_RANGE_MM
        if not (lo <= self.hand_length_mm <= hi):
            raise ValueError(f"DetectorConfig.hand_length_mm must be in [{lo:g}, {hi:g}] mm, got {self.hand_length_mm}")
        if self.max_grid_cells < 16:
            raise ValueError(f"DetectorConfig.max_grid_cells must be >= 16, got {self.max_grid_cells}")
        if self.max_extrema < 1:
            raise ValueError(f"DetectorConfig.max_extrema must be >= 1, got {self.max_extrema}")
        for name in ("cell_mm", "jump_mm", "jump_pitches", "palm_radius_mm", "hand_area_mm2", "nearer_scale_mm",
                     "region_radius"):
            if not getattr(self, name) > 0:
                raise ValueError(f"DetectorConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("radius_tolerance", "area_tolerance"):
            if not getattr(self, name) > 1:
                raise ValueError(f"DetectorConfig.{name} must be > 1, got {getattr(self, name)}")
        if self.farther_scale_mm is not None and not self.farther_scale_mm > 0:
            raise ValueError(f"DetectorConfig.farther_scale_mm must be > 0 or None, got {self.farther_scale_mm}")
        if self.plane_tolerance_mm is not None and not self.plane_tolerance_mm > 0:
            raise ValueError(f"DetectorConfig.plane_tolerance_mm must be > 0 or None, got {self.plane_tolerance_mm}")
        if not (0 < self.plane_min_share <= 1 and self.plane_min_extent > 0):
            raise ValueError(f"DetectorConfig.plane_min_share must be in (0, 1] and plane_min_extent > 0, got "
                             f"{self.plane_min_share} and {self.plane_min_extent}")

    @property
    def palm_radius_for_length_mm(self) -> float:
        """The expected palm disc radius (mm) for ``hand_length_mm``."""
        return self.palm_radius_mm * self.hand_length_mm / DEFAULT_HAND_LENGTH_MM

    @property
    def hand_area_for_length_mm2(self) -> float:
        """The expected area (mm^2) of a hand of ``hand_length_mm`` facing the camera."""
        return self.hand_area_mm2 * (self.hand_length_mm / DEFAULT_HAND_LENGTH_MM) ** 2


class HandDetection(NamedTuple):
    """A hand found in a depth map. ``mask (H, W) bool``: the hand's region (fingers, palm and a
    stub of forearm; None past ``hand_candidates``' ``limit``, where ``fingers_dir`` is zeros); ``palm_uv (2,)`` px and
    ``palm_mm (3,)`` camera frame: the centre of the largest disc inside the hand, on the
    surface; ``fingers_dir (2,)``: unit vector in the image (u, v), the way the fingers point
    from the palm (away from the arm; zeros when unknown); ``cost``: the score (lower is
    better); ``border_mm``: the palm's geodesic distance from the image's border along the
    surface (how much arm is in view; inf when the surface does not reach the border)."""

    mask: np.ndarray | None
    palm_uv: np.ndarray
    palm_mm: np.ndarray
    palm_radius_mm: float
    fingers_dir: np.ndarray
    cost: float
    border_mm: float = math.inf


class _Surface(NamedTuple):
    """The depth surface on the grid: ``n`` nodes (valid cells)."""

    stride: int
    depth: np.ndarray      # (h, w) float64 mm, 0 = no reading / outside the mask
    rows: np.ndarray       # (n,) grid row of each node
    cols: np.ndarray       # (n,) grid column
    points: np.ndarray     # (n, 3) camera frame mm
    pitch: np.ndarray      # (n,) mm between neighbouring cells at the node's depth
    graph: csr_matrix      # (n, n) edge lengths mm
    labels: np.ndarray     # (n,) connected surface of each node
    interior: np.ndarray   # (h, w) uint8: valid cells with no depth edge to a 4-neighbour


def _stride(depth_mm: np.ndarray, camera: CameraIntrinsics, cfg: DetectorConfig, near_mm: float | None,
            mask: np.ndarray | None) -> int:
    """Grid stride (pixels) that makes a cell ``cell_mm`` wide at ``near_mm`` (default: the 5th
    percentile of valid depth in the mask, from a sparse sample), within ``max_grid_cells`` cells."""
    H, W = depth_mm.shape
    if near_mm is None:
        k = NEAR_SAMPLE_STEP
        sample = depth_mm[::k, ::k]
        keep = np.isfinite(sample) & (sample > 0)
        if mask is not None:
            keep &= mask[::k, ::k]
        sample = sample[keep]
        near_mm = float(np.percentile(sample, NEAR_PERCENTILE)) if len(sample) else 0.0
    fewest = int(math.ceil(max(H, W) / cfg.max_grid_cells))
    wanted = cfg.cell_mm * math.sqrt(camera.fx * camera.fy) / near_mm if near_mm > 0 else 1.0
    return int(min(max(1, fewest, round(wanted)), min(H, W)))  # at least one cell across the image


def _cell_depths(depth_mm: np.ndarray, s: int, mask: np.ndarray | None) -> np.ndarray:
    """``(H // s, W // s) float64`` mm: each s x s block's depth, the median of the valid ones
    (in ``mask``) among 3 x 3 pixels spread over the block (fewer distinct ones below stride 3:
    2 x 2 at stride 2, one at stride 1); 0 (no reading) unless at least ``CELL_QUORUM`` of them
    (all of them, when fewer) are valid, so that the cells trace the silhouette (a cell half on
    the hand counts, one grazing it does not). Robust to scattered sensor holes (30% of pixels
    missing leaves 2.5% of a surface's cells empty) and to single flying pixels, and never a
    blend across a depth edge."""
    H, W = depth_mm.shape
    h, w = H // s, W // s
    offsets = sorted({s // 4, s // 2, (3 * s) // 4})
    samples = []
    for dy in offsets:
        for dx in offsets:
            v = np.asarray(depth_mm[dy:h * s:s, dx:w * s:s], dtype=np.float64)
            ok = np.isfinite(v) & (v > 0)
            if mask is not None:
                ok &= mask[dy:h * s:s, dx:w * s:s]
            samples.append(np.where(ok, v, np.inf))
    stack = np.sort(np.stack(samples), axis=0)
    count = np.isfinite(stack).sum(0)
    median = np.take_along_axis(stack, np.maximum(count - 1, 0)[None] // 2, 0)[0]
    return np.where(count >= min(CELL_QUORUM, len(samples)), median, 0.0)


def _cell_centre(index: np.ndarray, s: int) -> np.ndarray:
    """Pixel coordinate of the centre of grid cell ``index`` (cell k covers pixels k*s .. k*s+s-1)."""
    return index * s + (s - 1) / 2.0


def _surface(depth_mm: np.ndarray, camera: CameraIntrinsics, cfg: DetectorConfig,
             mask: np.ndarray | None = None, near_mm: float | None = None) -> _Surface:
    H, W = depth_mm.shape
    if mask is not None:
        mask = np.asarray(mask, bool)
        if mask.shape != (H, W):
            raise ValueError(f"mask shape {mask.shape} != depth shape {(H, W)}")
    s = _stride(depth_mm, camera, cfg, near_mm, mask)
    d = _cell_depths(depth_mm, s, mask)
    h, w = d.shape
    valid = d > 0
    index = np.full((h, w), -1, np.int64)
    rows, cols = np.nonzero(valid)
    index[rows, cols] = np.arange(len(rows))
    u, v, z = _cell_centre(cols, s), _cell_centre(rows, s), d[rows, cols]
    points = np.stack([(u - camera.cx) * z / camera.fx, (v - camera.cy) * z / camera.fy, z], -1)
    pitch_grid = d * s / math.sqrt(camera.fx * camera.fy)
    grid_points = np.zeros((h, w, 3))
    grid_points[rows, cols] = points
    interior = valid.copy()
    interior[0, :] = interior[-1, :] = interior[:, 0] = interior[:, -1] = False
    src, dst, length = [], [], []
    for dv, du in _STEPS:
        a = (slice(0, h - dv), slice(max(0, -du), w - max(0, du)))
        b = (slice(dv, h), slice(max(0, du), w - max(0, -du)))
        both = valid[a] & valid[b]
        limit = np.maximum(cfg.jump_mm, cfg.jump_pitches * pitch_grid[a] * math.hypot(dv, du))
        joined = both & (np.abs(d[a] - d[b]) < limit)
        if dv + abs(du) == 1:  # a 4-neighbour that is missing or across a depth edge: outline
            edge = ~joined
            interior[a] &= ~edge
            interior[b] &= ~edge
        src.append(index[a][joined])
        dst.append(index[b][joined])
        length.append(np.linalg.norm(grid_points[a][joined] - grid_points[b][joined], axis=-1) + MIN_EDGE_MM)
    n = len(rows)
    src, dst, length = np.concatenate(src), np.concatenate(dst), np.concatenate(length)
    graph = csr_matrix((np.concatenate([length, length]), (np.concatenate([src, dst]), np.concatenate([dst, src]))),
                       shape=(n, n))  # both directions of every edge
    _, labels = connected_components(graph, directed=True)
    return _Surface(s, d, rows, cols, points, pitch_grid[rows, cols], graph, labels,
                    interior.astype(np.uint8))


def _on_border(surface: _Surface, rows, cols):
    """Whether grid cells (rows, cols: scalars or arrays) lie fewer than ``BORDER_CELLS`` cells
    from the image's edge."""
    h, w, b = *surface.depth.shape, BORDER_CELLS
    return (rows < b) | (cols < b) | (rows >= h - b) | (cols >= w - b)


def _argmax_per_label(values: np.ndarray, labels: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """Among ``nodes``, the index of the largest finite ``values`` entry of each label present."""
    v = values[nodes]
    nodes = nodes[np.isfinite(v)]
    if len(nodes) == 0:
        return nodes
    order = nodes[np.lexsort((-values[nodes], labels[nodes]))]  # by label, largest value first
    return order[np.r_[True, labels[order][1:] != labels[order][:-1]]]


def _from_border(surface: _Surface) -> np.ndarray:
    """``(n,)`` each node's geodesic distance (mm) from the surface's cells on the image's
    border; inf on surfaces that do not reach it."""
    border = np.nonzero(_on_border(surface, surface.rows, surface.cols))[0]
    if len(border) == 0:
        return np.full(len(surface.rows), np.inf)
    return dijkstra(surface.graph, directed=True, indices=border, min_only=True)


def _farther_from_the_body(surface: _Surface, found: list, from_border: np.ndarray, scale_mm: float, L: float,
                           R: float) -> list:
    """``found``'s ``(cost, palm node, radius)`` with the cost of lying on the way to another
    candidate: where candidate ``a`` lies on a shortest path from the image's border to
    candidate ``b`` (``g_a + d_ab <= g_b + ON_THE_WAY * L``, ``g`` geodesic distances from the
    surface's border cells, ``d_ab`` between the palms), ``a`` costs ``(g_b - g_a) / scale_mm``
    more (the largest over such ``b``). A hand ends its arm: a forearm coming toward a
    head-mounted camera is nearer than the hand and as wide as a palm, and "the nearer wins"
    picked it (egocentric hard bench: 3 of 5 starts on the arm). Candidates on different
    branches (a head and a hand at the end of an arm) and surfaces that do not reach the border
    are not compared, nor candidates within ``R`` (the palm radius) of each other: one palm,
    which the caller keeps once."""
    if len(found) < 2:
        return found
    palms = np.array([p for _, p, _ in found])
    reach = np.isfinite(from_border[palms])
    if reach.sum() < 2:
        return found
    g = np.where(reach, from_border[palms], 0.0)
    between = np.atleast_2d(dijkstra(surface.graph, directed=True, indices=palms))[:, palms]  # inf: apart
    behind = (g[:, None] + between <= g[None, :] + ON_THE_WAY * L) & reach[:, None] & reach[None, :]
    behind &= np.linalg.norm(surface.points[palms][:, None] - surface.points[palms][None], axis=2) >= R
    extra = np.where(behind, g[None, :] - g[:, None], 0.0).max(1).clip(0.0)
    return [(cost + e / scale_mm, p, r) for (cost, p, r), e in zip(found, extra)]


def _largest_disc(surface: _Surface, nodes: np.ndarray) -> tuple[int, float]:
    """The node at the centre of the largest disc inside ``nodes``' region, and its radius mm.
    Empty cells with at least ``HOLE_NEIGHBOURS`` of their 8 neighbours in the region count as
    inside: a sensor hole is not the hand's outline."""
    r, c = surface.rows[nodes], surface.cols[nodes]
    r0, r1, c0, c1 = r.min(), r.max() + 1, c.min(), c.max() + 1
    g = np.zeros((r1 - r0 + 2, c1 - c0 + 2), np.uint8)  # one empty cell around: the region's outline
    g[r - r0 + 1, c - c0 + 1] = 1
    around = cv2.filter2D(g, -1, np.ones((3, 3), np.float32), borderType=cv2.BORDER_CONSTANT) - g
    g[1:-1, 1:-1] |= (around[1:-1, 1:-1] >= HOLE_NEIGHBOURS).astype(np.uint8)
    dist = cv2.distanceTransform(g, cv2.DIST_L2, 5)[r - r0 + 1, c - c0 + 1]
    k = int(np.argmax(dist))
    return int(nodes[k]), float(dist[k] * surface.pitch[nodes[k]])


def _to_full(surface: _Surface, nodes: np.ndarray, depth_mm: np.ndarray, jump_mm: float,
             mask: np.ndarray | None = None) -> np.ndarray:
    """Grid region -> ``(H, W) bool`` at full resolution: pixels whose cell (or a neighbouring
    cell) is in the region, within the depth range of those cells +- ``jump_mm`` (and in
    ``mask`` when given)."""
    H, W = depth_mm.shape
    out = np.zeros((H, W), bool)
    if len(nodes) == 0:
        return out
    s, (h, w) = surface.stride, surface.depth.shape
    # the region's cells grown by one, in a window around them (the rest of the frame stays False)
    r0, r1 = max(surface.rows[nodes].min() - 1, 0), min(surface.rows[nodes].max() + 2, h)
    c0, c1 = max(surface.cols[nodes].min() - 1, 0), min(surface.cols[nodes].max() + 2, w)
    g = np.zeros((r1 - r0, c1 - c0), np.uint8)
    g[surface.rows[nodes] - r0, surface.cols[nodes] - c0] = 1
    z = surface.depth[r0:r1, c0:c1].astype(np.float32)
    kernel = np.ones((3, 3), np.uint8)
    near = cv2.dilate(g, kernel)
    z_hi = cv2.dilate(np.where(g > 0, z, 0.0).astype(np.float32), kernel) + jump_mm
    z_lo = cv2.erode(np.where(g > 0, z, np.inf).astype(np.float32), kernel) - jump_mm
    y0, y1 = r0 * s, H if r1 == h else r1 * s
    x0, x1 = c0 * s, W if c1 == w else c1 * s
    rows = np.minimum(np.arange(y0, y1) // s, h - 1) - r0
    cols = np.minimum(np.arange(x0, x1) // s, w - 1) - c0

    def full(a):  # each cell's value over its s x s block (the grid samples the block's centre)
        return a.take(rows, 0).take(cols, 1)

    d = depth_mm[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = (full(near) > 0) & (d > 0) & (d >= full(z_lo)) & (d <= full(z_hi))
    if mask is not None:
        out &= np.asarray(mask, bool)
    return out


def _ball(surface: _Surface, around_mm: np.ndarray, cfg: DetectorConfig,
          wrist_mm: np.ndarray | None = None) -> np.ndarray:
    """The hand's region: nodes within ``region_radius`` hand lengths (geodesically) of the
    surface near ``around_mm (K, 3)`` (``_seeds``: the palm's centre, and while tracking the
    previous solution's knuckles), and within ``WRIST_REACH`` of the surface near ``wrist_mm
    (1, 3)`` when given, plus the hand's islands (``_islands``)."""
    L = cfg.hand_length_mm
    seeds = _seeds(surface, around_mm, cfg)
    if len(seeds) == 0:
        return seeds
    dist = dijkstra(surface.graph, directed=True, indices=seeds, min_only=True, limit=cfg.region_radius * L)
    reached = np.isfinite(dist)
    if wrist_mm is not None:
        wrist = _seeds(surface, wrist_mm, cfg)
        if len(wrist):
            reached |= np.isfinite(dijkstra(surface.graph, directed=True, indices=wrist, min_only=True,
                                            limit=WRIST_REACH * L))
    nodes = np.nonzero(reached)[0]
    return np.concatenate([nodes, _islands(surface, nodes, cfg)])


def _seeds(surface: _Surface, around_mm: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    """The nodes a hand's region grows from: those within ``SEED_RADIUS`` hand lengths of any of
    ``around_mm (K, 3)``, K >= 1."""
    around = np.asarray(around_mm, np.float64).reshape(-1, 3)
    dist = np.linalg.norm(surface.points[:, None] - around[None], axis=-1).min(1)
    return np.nonzero(dist <= SEED_RADIUS * cfg.hand_length_mm)[0]


def _islands(surface: _Surface, region: np.ndarray, cfg: DetectorConfig) -> np.ndarray:
    """Nodes of small surfaces cut off from the region that lie wholly inside its box (grown by
    a cell) and depth range (+- ``ISLAND_DEPTH_MM``): a finger seen past another one, beyond a
    depth edge, or a knuckle split off by a hole. Smaller than a tenth of a hand's area, so no
    body part or held object of any size comes in this way."""
    r, c, z = surface.rows[region], surface.cols[region], surface.points[region, 2]
    near = ((surface.rows >= r.min() - 1) & (surface.rows <= r.max() + 1) & (surface.cols >= c.min() - 1)
            & (surface.cols <= c.max() + 1) & (surface.points[:, 2] >= z.min() - ISLAND_DEPTH_MM)
            & (surface.points[:, 2] <= z.max() + ISLAND_DEPTH_MM))
    labels = surface.labels
    n = labels.max() + 1
    total, inside = np.bincount(labels, minlength=n), np.bincount(labels[near], minlength=n)
    area = np.bincount(labels, weights=surface.pitch ** 2, minlength=n)
    island = (inside == total) & (area < ISLAND_MAX_HANDS * cfg.hand_area_for_length_mm2)
    island[np.unique(labels[region])] = False
    return np.nonzero(island[labels])[0]


def _fingers_direction(surface: _Surface, palm: int, ball: np.ndarray, from_border: np.ndarray) -> np.ndarray:
    """A unit vector ``(2,)`` in the image (u, v): the way the fingers point from the palm, or
    zeros when the surface does not tell.

    The arm is where the surface goes on past the hand's region: region cells with a joined
    neighbour outside it (an arm in view), on a surface that reaches the image's border only
    those nearer it than the palm along the surface (``from_border (n,)`` mm; the fingertips of
    a palm found near the wrist lie past the region too, and read as the arm had the left
    hand of hard bench sequence left_3 start with its palm on the forearm). Without those, the region's cells on the image's
    border: one band across the border is an arm leaving the view, several are fingers leaving
    it (then the fingers point toward them). The direction counts when those cells lie to one
    side of the palm (mean resultant length of their unit directions at least
    ``ARM_CONCENTRATION``); a hand with nothing attached says nothing."""
    h, w = surface.depth.shape
    inside = np.zeros(len(surface.rows), bool)
    inside[ball] = True
    rows = surface.graph[ball]
    leaves = np.zeros(len(ball), bool)
    nonempty = np.diff(rows.indptr) > 0
    if len(rows.indices):
        leaves[nonempty] = np.add.reduceat(~inside[rows.indices], rows.indptr[:-1][nonempty]) > 0
    r, c = surface.rows[ball], surface.cols[ball]
    sign = -1.0  # away from an arm
    if np.isfinite(from_border[palm]):
        # on a surface that leaves the view the arm is where it goes on toward the border (a palm
        # found near the wrist has the fingertips past its region too); none: the region holds
        # the way to the border, whose cells on it tell (below)
        leaves &= from_border[ball] < from_border[palm]
    if leaves.any():
        edge = leaves
    else:
        edge = _on_border(surface, r, c)
        if not edge.any():
            return np.zeros(2)
        cells = np.zeros((h, w), np.uint8)
        cells[r[edge], c[edge]] = 1
        if cv2.connectedComponents(cells, connectivity=8)[0] - 1 > 1:
            sign = 1.0  # several bands across the border: fingers leaving the view
    rays = np.stack([c[edge] - surface.cols[palm], r[edge] - surface.rows[palm]], -1).astype(np.float64)
    n = np.linalg.norm(rays, axis=1)
    if not (n > 0).any():
        return np.zeros(2)
    mean = (rays[n > 0] / n[n > 0, None]).mean(0)
    length = float(np.linalg.norm(mean))
    return sign * mean / length if length >= ARM_CONCENTRATION else np.zeros(2)


def _check(depth_mm: np.ndarray, camera: CameraIntrinsics) -> np.ndarray:
    d = np.asarray(depth_mm)
    if d.shape != (camera.height, camera.width):
        raise ValueError(f"depth is {d.shape[1]}x{d.shape[0]} but the camera is {camera.width}x{camera.height}")
    if d.dtype.kind != "f":
        raise ValueError(f"depth must be float millimetres, got {d.dtype}")
    return d  # NaN and values <= 0 are no reading: every comparison below is False for them


def hand_candidates(depth_mm: np.ndarray, camera: CameraIntrinsics, config: DetectorConfig | None = None,
                    mask: np.ndarray | None = None, limit: int | None = None) -> list[HandDetection]:
    """Every hand-sized candidate in ``depth_mm (H, W)`` mm, best first (see the module
    docstring); ``mask (H, W) bool`` restricts the search (e.g. skin or a network's mask);
    ``limit``: only the best ``limit`` get their region (``mask``) and ``fingers_dir``."""
    cfg = DetectorConfig() if config is None else config
    depth = _check(depth_mm, camera)
    surface = _surface(depth, camera, cfg, mask)
    if len(surface.rows) == 0:
        return []
    L = cfg.hand_length_mm
    R, A = cfg.palm_radius_for_length_mm, cfg.hand_area_for_length_mm2
    h, w = surface.depth.shape
    area = np.bincount(surface.labels, weights=surface.pitch ** 2)
    big = np.nonzero((area >= MIN_SURFACE_HANDS * A)[surface.labels])[0]  # nodes on surfaces that can hold a hand
    if len(big) == 0:
        return []
    thick = cv2.distanceTransform(surface.interior, cv2.DIST_L2, 5)[surface.rows, surface.cols]
    sources = _argmax_per_label(thick.astype(np.float64), surface.labels, big)
    geodesic = dijkstra(surface.graph, directed=True, indices=sources, min_only=True)
    extrema: list[int] = []
    for _ in range(cfg.max_extrema):
        far = _argmax_per_label(geodesic, surface.labels, big)
        far = far[geodesic[far] >= EXTREMUM_MIN_HAND_LENGTHS * L]
        if len(far) == 0:
            break
        extrema.extend(far.tolist())
        geodesic = np.minimum(geodesic, dijkstra(surface.graph, directed=True, indices=far, min_only=True))
    rows, cols = surface.rows, surface.cols
    # each surface's thickest point too: a compact hand (a fist) at the end of a long arm lies
    # within EXTREMUM_MIN_HAND_LENGTHS of it when it is the thickest, and no extremum finds it
    seeds = extrema + [k for k in sources.tolist() if k not in extrema]
    tips = np.array([k for k in seeds if not _on_border(surface, rows[k], cols[k])], np.int64)
    if len(tips) == 0:
        return []
    within_hand = np.atleast_2d(dijkstra(surface.graph, directed=True, indices=tips, limit=L))
    found = []  # (cost, palm node, radius mm)
    for dist in within_hand:
        region = np.nonzero(np.isfinite(dist))[0]
        palm, radius = _largest_disc(surface, region)
        if not (R / PALM_RADIUS_RANGE <= radius <= PALM_RADIUS_RANGE * R):
            continue
        disc_cells = radius / surface.pitch[palm] + 1  # the disc in cells, and one more
        if min(rows[palm], cols[palm], h - 1 - rows[palm], w - 1 - cols[palm]) < disc_cells:
            continue  # a disc cut by the image's edge: a limb leaving the view, or a hand half out of it
        larger = max(0.0, math.log(float(np.sum(surface.pitch[region] ** 2)) / A))
        found.append((abs(math.log(radius / R)) / math.log(cfg.radius_tolerance)
                      + larger / math.log(cfg.area_tolerance), palm, radius))
    if not found:
        return []
    z_near = min(surface.points[p, 2] for _, p, _ in found)
    found = [(cost + (surface.points[p, 2] - z_near) / cfg.nearer_scale_mm, p, r) for cost, p, r in found]
    from_border = _from_border(surface)
    if cfg.farther_scale_mm is not None:
        found = _farther_from_the_body(surface, found, from_border, cfg.farther_scale_mm, L, R)
    scored = sorted(found)
    out: list[HandDetection] = []
    for cost, palm, radius in scored:
        # several extrema of one hand find the same palm, or one a cell or two away: keep the best
        if any(np.linalg.norm(surface.points[palm] - d.palm_mm) < R for d in out):
            continue
        full, fingers = None, np.zeros(2)
        if limit is None or len(out) < limit:
            ball = _ball(surface, surface.points[palm], cfg)
            full, fingers = _to_full(surface, ball, depth, cfg.jump_mm, mask), _fingers_direction(surface, palm, ball, from_border)
        s = surface.stride
        uv = np.array([_cell_centre(cols[palm], s), _cell_centre(rows[palm], s)])
        out.append(HandDetection(full, uv, surface.points[palm].copy(), radius, fingers, float(cost),
                                 float(from_border[palm])))
    return out


def detect_hand(depth_mm: np.ndarray, camera: CameraIntrinsics, config: DetectorConfig | None = None,
                mask: np.ndarray | None = None) -> HandDetection | None:
    """The best hand in ``depth_mm (H, W)`` mm (0 = no reading), or None when nothing hand-sized
    is there; ``mask (H, W) bool`` restricts the search."""
    found = hand_candidates(depth_mm, camera, config, mask, limit=1)
    return found[0] if found else None


def hand_region(depth_mm: np.ndarray, camera: CameraIntrinsics, palm_mm: np.ndarray,
                config: DetectorConfig | None = None, mask: np.ndarray | None = None,
                knuckles_mm: np.ndarray | None = None, wrist_mm: np.ndarray | None = None) -> np.ndarray:
    """``(H, W) bool``: the hand region (as a detection's) grown from ``palm_mm (3,)`` (camera
    frame, e.g. the previous frame's palm centre) and ``knuckles_mm (K, 3)`` when given (the
    previous solution's finger MCPs), and from ``wrist_mm (3,)`` when given (its wrist) no
    further than ``WRIST_REACH``. An edge-on hand shows only its side, up to half a palm's
    width from the palm's centre, and the cells nearest the centre can be scraps cut off by the
    steep depth (flying pixels at the outline): grown from the centre alone, the region was a
    few hundred pixels of a hand of ten thousand and the track was lost (hard bench, plain
    scenario); the knuckles lie nearer the hand's surface. The wrist: an object held in front of
    the palm cuts the hand's surface in two, and grown from the knuckles alone the region lost
    the heel beyond it (hard bench, object sequence 0); grown from it as far as from the palm,
    the region took in more arm than the model's forearm explains (egocentric: the silhouette
    check called 68% of frames lost). Empty when no surface lies within
    ``SEED_RADIUS`` hand lengths of those points (or the palm is not finite, or behind the
    camera): the previous solution is off the observation. With ``mask``, only pixels in it."""
    cfg = DetectorConfig() if config is None else config
    depth = _check(depth_mm, camera)
    palm_mm = np.asarray(palm_mm, np.float64)
    if palm_mm.shape != (3,) or not np.isfinite(palm_mm).all() or palm_mm[2] <= 0:
        return np.zeros(depth.shape, bool)  # a palm behind the camera, or undefined, has no surface near
    around = palm_mm[None]
    if knuckles_mm is not None:
        k = np.asarray(knuckles_mm, np.float64)
        if k.ndim != 2 or k.shape[1] != 3:
            raise ValueError(f"hand_region: knuckles_mm must have shape (K, 3), got {k.shape}")
        around = np.vstack([around, k[np.isfinite(k).all(1) & (k[:, 2] > 0)]])  # unusable ones dropped
    surface = _surface(depth, camera, cfg, mask, near_mm=float(palm_mm[2]))
    wrist = None
    if wrist_mm is not None:
        wrist = np.asarray(wrist_mm, np.float64).reshape(-1)
        if wrist.shape != (3,):
            raise ValueError(f"hand_region: wrist_mm must have shape (3,), got {np.shape(wrist_mm)}")
        wrist = wrist[None] if np.isfinite(wrist).all() and wrist[2] > 0 else None
    return _to_full(surface, _ball(surface, around, cfg, wrist), depth, cfg.jump_mm, mask)


def skeleton_distance(points_mm: np.ndarray, joints_mm: np.ndarray, forearm_mm: float = 0.0,
                      forearm_radius_mm: float = 0.0) -> np.ndarray:
    """``(P,)`` mm: each of ``points_mm (P, 3)``'s distance to the hand's skeleton ``joints_mm
    (21, 3)`` (MediaPipe order): its 20 bones and the palm's segments (``PALM_SEGMENTS``) as
    line segments, and with ``forearm_mm`` > 0 the forearm, a segment that long from the wrist
    away from the middle knuckle, whose surface lies ``forearm_radius_mm`` out from it."""
    P = np.asarray(points_mm, np.float64).reshape(-1, 3)
    J = np.asarray(joints_mm, np.float64)
    if J.shape != (21, 3):
        raise ValueError(f"skeleton_distance: joints_mm must have shape (21, 3), got {J.shape}")
    pairs = (*BONES, *PALM_SEGMENTS)
    a, b = J[[i for i, _ in pairs]], J[[j for _, j in pairs]]
    radius = np.zeros(len(pairs))
    if forearm_mm > 0:
        axis = J[Joint.WRIST] - J[Joint.MIDDLE_MCP]
        n = float(np.linalg.norm(axis))
        if n > 0:
            a = np.vstack([a, J[Joint.WRIST]])
            b = np.vstack([b, J[Joint.WRIST] + axis * (forearm_mm / n)])
            radius = np.append(radius, forearm_radius_mm)
    out = np.empty(len(P))
    skeleton_distance_kernel(np.ascontiguousarray(P), np.ascontiguousarray(a), np.ascontiguousarray(b), radius, out)
    return out


def near_skeleton(mask: np.ndarray, depth_mm: np.ndarray, camera: CameraIntrinsics, joints_mm: np.ndarray,
                  margin_mm: float, forearm_mm: float = 0.0, forearm_radius_mm: float = 0.0,
                  thin_mm: float | None = None) -> np.ndarray:
    """``(H, W) bool``: the pixels of ``mask`` whose 3D point (``depth_mm``, ``camera``) lies
    within ``margin_mm`` of the skeleton ``joints_mm (21, 3)`` (``skeleton_distance``; e.g. the
    previous frame's solution: a held object or a cup the fingers touch joins the hand's
    surface, and its region, but lies farther from the hand's bones than the hand moves in a
    frame). With ``thin_mm``, the parts beyond the margin (8-connected in the image) that are
    nowhere wider than ``2 thin_mm`` stay too: a finger the solution has not followed yet
    (measured as the largest distance, in mm at each pixel's depth, to a pixel not left out)."""
    m = np.asarray(mask, bool)
    d = np.asarray(depth_mm)
    v, u = np.nonzero(m & (d > 0))
    points = camera.unproject(np.stack([u, v], -1), d[v, u])
    keep = skeleton_distance(points, joints_mm, forearm_mm, forearm_radius_mm) <= margin_mm
    out = np.zeros(m.shape, bool)
    out[v[keep], u[keep]] = True
    if thin_mm is not None and not keep.all():
        beyond = np.zeros(m.shape, bool)
        beyond[v[~keep], u[~keep]] = True
        out |= thin_parts(beyond, d, camera, thin_mm)
    return out


def thin_parts(part: np.ndarray, depth_mm: np.ndarray, camera: CameraIntrinsics, thin_mm: float) -> np.ndarray:
    """``(H, W) bool``: the 8-connected components of ``part (H, W) bool`` that are nowhere wider
    than ``2 thin_mm``: the largest distance from a pixel of the component to one outside
    ``part`` (OpenCV's distance transform, in mm at each pixel's depth ``depth_mm``) is at most
    ``thin_mm``. A finger's is about 9 mm; a cup's, a board's or a palm's far more."""
    p = np.asarray(part, bool) & (np.asarray(depth_mm) > 0)
    if not p.any():
        return p
    cells = p.astype(np.uint8)
    n, labels = cv2.connectedComponents(cells, connectivity=8)
    v, u = np.nonzero(p)
    px_mm = np.asarray(depth_mm)[v, u] / math.sqrt(camera.fx * camera.fy)  # a pixel's width at its depth
    half_mm = cv2.distanceTransform(cells, cv2.DIST_L2, 5)[v, u] * px_mm
    widest = np.zeros(n)
    np.maximum.at(widest, labels[v, u], half_mm)
    thin = widest[labels[v, u]] <= thin_mm
    out = np.zeros(p.shape, bool)
    out[v[thin], u[thin]] = True
    return out


def support_plane(depth_mm: np.ndarray, camera: CameraIntrinsics, config: DetectorConfig | None = None) -> np.ndarray:
    """``(H, W) bool``: the pixels on a dominant plane far larger than a hand (see the module
    docstring), all False when there is none or ``plane_tolerance_mm`` is None."""
    cfg = DetectorConfig() if config is None else config
    depth = _check(depth_mm, camera)
    out = np.zeros(depth.shape, bool)
    tol = cfg.plane_tolerance_mm
    v, u = np.nonzero(depth > 0)
    if tol is None or len(v) < 3:
        return out
    rng = np.random.default_rng(0)
    pick = rng.choice(len(v), min(PLANE_SAMPLES, len(v)), replace=False)
    P = camera.unproject(np.stack([u[pick], v[pick]], -1), depth[v[pick], u[pick]])
    trials = rng.integers(0, len(P), (PLANE_TRIALS, 3))  # all trials' planes at once
    a, b, c = P[trials[:, 0]], P[trials[:, 1]], P[trials[:, 2]]
    normals = np.cross(b - a, c - a)
    norms = np.linalg.norm(normals, axis=1)
    ok = norms >= 1e-9  # three points on a line give no plane
    normals[ok] /= norms[ok, None]
    counts = np.empty(len(normals), np.int64)  # inliers per trial (a numba loop: no BLAS, see the kernel)
    plane_inlier_counts_kernel(P, normals, (a * normals).sum(1), ok, float(tol), counts)
    best = int(np.argmax(counts))  # the first of the best, as a loop keeping strict improvements
    if counts[best] == 0 or counts[best] < cfg.plane_min_share * len(P):
        return out
    inliers = P[np.abs(((P - a[best]) * normals[best]).sum(1)) < tol]
    centre = inliers.mean(0)
    _, _, vt = np.linalg.svd(inliers - centre, full_matrices=False)  # refit: vt[2] the normal
    spread = np.ptp([((inliers - centre) * axis).sum(1) for axis in vt[:2]], axis=1)
    if spread.min() < cfg.plane_min_extent * cfg.hand_length_mm:
        return out
    plane_pixels_kernel(depth, camera.fx, camera.fy, camera.cx, camera.cy, centre, np.ascontiguousarray(vt[2]),
                        float(tol), out)
    return out


def without_support_plane(depth_mm: np.ndarray, camera: CameraIntrinsics,
                          config: DetectorConfig | None = None) -> np.ndarray:
    """``depth_mm (H, W)`` as ``float32`` with its ``support_plane`` pixels set to 0 (no
    reading): the depth a hand is detected in (the tracker, C2's zero, the small networks'
    training)."""
    return np.where(support_plane(depth_mm, camera, config), 0.0, depth_mm).astype(np.float32)
