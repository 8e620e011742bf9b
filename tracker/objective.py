"""The tracker's objective (Oikonomidis, Kyriazis & Argyros, BMVC 2011) and its two backends.

``E(h) = D(O, h) + lambda_k * kc(h)`` with

    D = sum min(|o_d - r_d|, d_M) / (sum(o_s or r_m) + eps)
        + lambda * (1 - 2 sum(o_s and r_m) / (sum(o_s and r_m) + sum(o_s or r_m)))

over the pixels of a region-of-interest tile: ``o_d`` observed depth on the observed hand mask
``o_s`` (0 elsewhere), ``r_d``/``r_m`` the hypothesis's rendered depth and silhouette, and
``kc`` the finger-crossing penalty. Defaults d_M = 40 mm, lambda = 20, lambda_k = 10.

With 2D keypoints (issue 21: depthnet's heatmaps) the objective adds :func:`keypoint_term`:
``lambda_p * sum_j w_j rho(|pi(J_j(h)) - k_j| / s)``, the hypothesis's joints ``J_j`` projected
against the keypoints ``k_j``, ``w_j`` their confidences normalised to sum 1, ``s`` the
keypoints' extent (the larger side of their box) and ``rho(r) = r^2 / (r^2 + delta^2)``
(Geman-McClure: bounded, so a wrong keypoint costs at most its weight). With a pose prior
(:func:`pose_prior_term`) it adds ``lambda_a * mean_i ((a_i - mu_i) / sigma_i)^2`` over the 20
finger angles, mu and sigma those of 69 real poses (``tracker/data/pose_prior.json``).

Backends (``SCORERS``) render hypotheses into T x T tiles and return the three sums:

* ``gl``: ``renderer.HypothesisRenderer`` (instanced OpenGL, ray-cast fragments);
* ``cpu``: a numba kernel ray casting the same quadrics, parallel over hypotheses.

``backend="auto"`` is ``gl`` when the OpenGL renderer is a hardware GPU and ``cpu`` when it is
a software rasteriser (llvmpipe, softpipe, swrast), where the numba kernel is faster (see
benchmarks/tracker_speed.py).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from handrgbd.camera import CameraIntrinsics
from renderer.projection import DEFAULT_FAR_MM, DEFAULT_NEAR_MM, RegionOfInterest
from renderer.tiled import PrimitiveSet, TileSums
from tracker._kernels import pso_hand_kernel, render_tiles_kernel, score_tiles_kernel
from tracker.pso import LOWER, UPPER, PSOConfig, PSOResult, draw_moves, prepare_swarm

log = logging.getLogger(__name__)

__all__ = ["ObjectiveConfig", "CpuScorer", "GlScorer", "SCORERS", "make_scorer", "objective_from_sums",
           "SOFTWARE_RENDERERS", "KeypointTerm", "keypoint_term", "PosePrior",
           "load_pose_prior", "pose_prior_term"]

SOFTWARE_RENDERERS = ("llvmpipe", "softpipe", "swrast", "software")


@dataclass(frozen=True)
class ObjectiveConfig:
    d_max_mm: float = 40.0
    lambda_silhouette: float = 20.0
    lambda_crossing: float = 10.0
    eps: float = 1e-6

    def __post_init__(self) -> None:
        for name in ("d_max_mm", "lambda_silhouette", "lambda_crossing", "eps"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                raise ValueError(f"ObjectiveConfig.{name} must be finite and >= 0, got {v}")
        if self.d_max_mm == 0:
            raise ValueError("ObjectiveConfig.d_max_mm must be > 0")


class KeypointTerm(NamedTuple):
    """The keypoint term of one frame, in the pixels of the camera the joints are projected with
    (the tile's): uv ``(21, 2)``, or ``(21, M, 2)`` with several modes per joint; weights
    ``(21,)`` summing to 1 (0: a joint not used), scale ``s`` (pixels), ``lam`` (lambda_p),
    ``delta``, and with modes ``ratio (21, M)``: each mode's strength a_m in [0, 1] (mode 0: 1;
    0: none)."""

    uv: np.ndarray
    weights: np.ndarray
    scale: float
    lam: float
    delta: float
    ratio: np.ndarray | None = None

    def modes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(uv (21, M, 2), ratio (21, M))``; one mode of strength 1 without modes."""
        uv = np.asarray(self.uv, np.float64)
        if uv.ndim == 2:
            return uv[:, None], np.ones((uv.shape[0], 1))
        return uv, np.asarray(self.ratio, np.float64)


def keypoint_term(joints_mm: np.ndarray, camera: CameraIntrinsics, term: KeypointTerm) -> np.ndarray:
    """``(N,)``: the keypoint term of hypotheses with joints ``(N, 21, 3)`` mm (module docstring):
    each joint costs ``min_m (1 - a_m + a_m rho(r_m))`` over its modes (``rho(r)`` with one
    mode); the numpy reference of the fused kernel's."""
    modes, ratio = term.modes()
    uv = camera.project(joints_mm)[..., None, :]  # (N, 21, 1, 2)
    r2 = (((uv - modes) / term.scale) ** 2).sum(-1)
    cost = np.where(ratio > 0, 1.0 - ratio + ratio * (r2 / (r2 + term.delta ** 2)), 1.0).min(-1)
    return term.lam * (cost * term.weights).sum(-1)


#: no keypoint term (the kernel's arguments when a frame has no keypoints)
NO_KEYPOINTS = KeypointTerm(np.zeros((21, 2)), np.zeros(21), 1.0, 0.0, 1.0)


class PosePrior(NamedTuple):
    """A prior on the 20 finger angles (``params[7:]``): each angle's mean ``(20,)`` rad, the
    inverse of its spread ``inv_std (20,)`` 1/rad, and the weight ``lam``."""

    mean: np.ndarray
    inv_std: np.ndarray
    lam: float


#: the finger angles of 69 real poses (``python -m synth.intel_poses --prior-only`` writes it)
POSE_PRIOR_PATH = Path(__file__).resolve().parent / "data" / "pose_prior.json"


@lru_cache(maxsize=1)
def _pose_prior_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        doc = json.loads(POSE_PRIOR_PATH.read_text())
        mean, std = (np.asarray(doc[k], np.float64).reshape(-1) for k in ("mean_rad", "std_rad"))
    except (OSError, ValueError, KeyError) as e:
        raise RuntimeError(f"{POSE_PRIOR_PATH}: cannot read the pose prior ({e}); "
                           "rebuild it with `python -m synth.intel_poses --prior-only`") from None
    if mean.shape != (20,) or std.shape != (20,) or not (np.isfinite(mean).all() and (std > 0).all()):
        raise RuntimeError(f"{POSE_PRIOR_PATH}: expected 5 x 4 finite means and positive spreads")
    return mean, 1.0 / std


def load_pose_prior(lam: float) -> PosePrior:
    """The shipped real-pose prior (``POSE_PRIOR_PATH``) at weight ``lam``."""
    mean, inv = _pose_prior_arrays()
    return PosePrior(mean, inv, float(lam))


def pose_prior_term(X: np.ndarray, prior: PosePrior) -> np.ndarray:
    """``(N,)``: ``lam`` times the mean over the 20 finger angles of ``((a - mean) / std)^2``
    for hypotheses ``X (N, 27)``; the numpy reference of the fused kernel's."""
    z = (np.asarray(X, np.float64)[:, 7:] - prior.mean) * prior.inv_std
    return prior.lam * (z * z).mean(-1)


#: no pose prior (the kernel's arguments without one)
NO_PRIOR = PosePrior(np.zeros(20), np.zeros(20), 0.0)


def objective_from_sums(sums: TileSums, crossing: np.ndarray, config: ObjectiveConfig) -> np.ndarray:
    """``(N,)`` objective values from the three sums and the crossing penalty ``kc``."""
    depth_term = sums.depth_diff / (sums.union + config.eps)
    silhouette = 1.0 - 2.0 * sums.intersection / (sums.intersection + sums.union + config.eps)
    return depth_term + config.lambda_silhouette * silhouette + config.lambda_crossing * crossing


class CpuScorer:
    """numba ray casting into T x T tiles (no GL)."""

    name = "cpu"

    def __init__(self, primitives: PrimitiveSet, tile_size: int = 64, near_mm: float = DEFAULT_NEAR_MM,
                 far_mm: float = DEFAULT_FAR_MM):
        if tile_size <= 0:
            raise ValueError(f"tile_size must be > 0, got {tile_size}")
        self.tile_size = int(tile_size)
        self.kinds = np.asarray(primitives.kinds, dtype=np.int64)
        self.taper = np.asarray(primitives.taper, dtype=np.float64)
        self.near, self.far = float(near_mm), float(far_mm)
        self._tile_camera: tuple = (None, None, None, None)  # (camera, roi, tile size, tile camera), latest call

    def _camera(self, camera: CameraIntrinsics, roi: RegionOfInterest | None) -> CameraIntrinsics:
        """The tile's camera; the same objects as the latest call (every PSO generation of a frame)
        reuse its result."""
        last_camera, last_roi, last_size, tile = self._tile_camera
        if camera is last_camera and roi is last_roi and roi is not None and self.tile_size == last_size:
            return tile
        tile = (roi or RegionOfInterest.full(camera)).camera(camera, self.tile_size)
        self._tile_camera = (camera, roi, self.tile_size, tile)
        return tile

    def render(self, transforms: np.ndarray, camera: CameraIntrinsics, roi: RegionOfInterest | None = None) -> np.ndarray:
        """``(N, P, 4, 4)`` -> depth ``(N, T, T) float32`` mm, 0 = background (as the GL renderer)."""
        c = self._camera(camera, roi)
        out = np.empty((transforms.shape[0], self.tile_size, self.tile_size), np.float32)
        render_tiles_kernel(np.ascontiguousarray(transforms, np.float64), self.kinds, self.taper, c.fx, c.fy, c.cx,
                            c.cy, self.near, self.far, out)
        return out

    def sums(self, transforms: np.ndarray, camera: CameraIntrinsics, roi: RegionOfInterest | None,
             observed_mm: np.ndarray, observed_mask: np.ndarray, d_max_mm: float,
             free_offset: bool = False) -> TileSums:
        """The objective's three sums; ``free_offset``: observed depth is known only up to a
        constant, fitted per hypothesis (mean difference over the pixels both cover)."""
        c = self._camera(camera, roi)
        out = np.empty((transforms.shape[0], 3))
        score_tiles_kernel(np.ascontiguousarray(transforms, np.float64), self.kinds, self.taper, c.fx, c.fy, c.cx, c.cy,
                           self.near, self.far, np.ascontiguousarray(observed_mm, np.float64),
                           np.ascontiguousarray(observed_mask, np.bool_), float(d_max_mm), bool(free_offset), out)
        return TileSums(out[:, 0], out[:, 1], out[:, 2])

    def optimize(self, model, initial: np.ndarray, config: PSOConfig, rng: np.random.Generator,
                 camera: CameraIntrinsics, roi: RegionOfInterest | None, observed_mm: np.ndarray,
                 observed_mask: np.ndarray, objective: ObjectiveConfig, free_offset: bool = False,
                 keypoints: KeypointTerm | None = None, prior: PosePrior | None = None) -> PSOResult:
        """``tracker.pso.optimize`` of the hand objective (``model``: a ``HandModel``) on this
        scorer, the whole run in one numba call: the same moves (``draw_moves``) and the same
        objective, without Python between generations. ``keypoints``: the keypoint term, in the
        tile camera's pixels (None: none); ``prior``: the pose prior (None: none)."""
        kp = NO_KEYPOINTS if keypoints is None else keypoints
        pr = NO_PRIOR if prior is None else prior
        kp_modes, kp_ratio = kp.modes()
        x = prepare_swarm(initial)
        n = x.shape[0]
        v, pbest, pbest_value = np.zeros_like(x), np.empty_like(x), np.empty(n)
        best, value = np.empty(27), np.empty(1)
        c = self._camera(camera, roi)
        scene = (*model.kernel_arrays(), self.kinds, self.taper, c.fx, c.fy, c.cx, c.cy, self.near, self.far,
                 np.ascontiguousarray(observed_mm, np.float64), np.ascontiguousarray(observed_mask, np.bool_),
                 float(objective.d_max_mm), bool(free_offset), float(objective.lambda_silhouette),
                 float(objective.lambda_crossing), float(objective.eps), np.ascontiguousarray(kp_modes),
                 np.ascontiguousarray(kp_ratio), np.ascontiguousarray(kp.weights, np.float64), float(kp.scale), float(kp.lam), float(kp.delta),
                 np.ascontiguousarray(pr.mean, np.float64), np.ascontiguousarray(pr.inv_std, np.float64), float(pr.lam))
        for block, moves in enumerate(draw_moves(config, n, rng)):
            pso_hand_kernel(x, v, pbest, pbest_value, best, value, block == 0, *moves, config.w, config.c1, config.c2,
                            LOWER, UPPER, *scene)
        return PSOResult(best, float(value[0]), n * config.generations)

    def close(self) -> None:
        pass


class GlScorer:
    """The OpenGL instanced tile renderer (``renderer.HypothesisRenderer``) + numba sums."""

    name = "gl"

    def __init__(self, primitives: PrimitiveSet, tile_size: int = 64, capacity: int = 64, context=None):
        from renderer.tiled import HypothesisRenderer

        self.tile_size = int(tile_size)
        self.renderer = HypothesisRenderer(primitives, tile_size, capacity, context=context)

    def render(self, transforms, camera, roi=None) -> np.ndarray:
        return self.renderer.render(transforms, camera, roi)

    def sums(self, transforms, camera, roi, observed_mm, observed_mask, d_max_mm, free_offset: bool = False) -> TileSums:
        return self.renderer.score(transforms, camera, roi, observed_mm, observed_mask, d_max_mm, free_offset)[1]

    def close(self) -> None:
        self.renderer.close()


SCORERS = {"cpu": CpuScorer, "gl": GlScorer}


def make_scorer(backend: str, primitives: PrimitiveSet, tile_size: int = 64, capacity: int = 64):
    """``"cpu" | "gl" | "auto"`` -> a scorer (see the module docstring for ``auto``)."""
    if backend == "auto":
        backend = _auto_backend()
    if backend not in SCORERS:
        raise ValueError(f"unknown scoring backend {backend!r}; choose from {sorted(SCORERS)} or 'auto'")
    if backend == "cpu":
        return CpuScorer(primitives, tile_size)
    return GlScorer(primitives, tile_size, capacity)


def _auto_backend() -> str:
    try:
        from renderer.context import create_context

        with create_context() as ctx:
            name = ctx.info()["renderer"].lower()
    except Exception as e:  # no GL at all: the CPU backend is the only choice
        log.info("no OpenGL context (%s): using the cpu scoring backend", e)
        return "cpu"
    backend = "cpu" if any(s in name for s in SOFTWARE_RENDERERS) else "gl"
    log.info("GL renderer %r: scoring backend %s", name, backend)
    return backend
