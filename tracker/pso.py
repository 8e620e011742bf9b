"""Particle swarm optimisation over the 27 hand parameters (Clerc-Kennedy constriction).

``v <- w (v + c1 r1 (p_best - x) + c2 r2 (g_best - x))``, ``x <- x + v`` with c1 = 2.8,
c2 = 1.3, w = 2 / |2 - psi - sqrt(psi^2 - 4 psi)| = 0.7298 (psi = c1 + c2), r1, r2 uniform per
dimension. After each move the finger angles are clamped to the joint limits (velocity zeroed
where clamped) and the quaternion is renormalised. Every ``redraw_every`` generations, half
of the particles get one finger dimension re-drawn uniformly within its limits (Oikonomidis
et al.'s remedy against fingers stuck in a local optimum).

The update is a numba kernel (pure, over arrays); ``optimize`` runs generations against any
batched objective ``f(X (N, 27)) -> (N,)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, NamedTuple

import numpy as np

from tracker._kernels import pso_step_kernel
from tracker.pose import LIMITS

__all__ = ["PSOConfig", "PSOResult", "Moves", "optimize", "draw_moves", "prepare_swarm", "constriction", "pso_step_kernel",
           "MAX_PARTICLES", "MAX_GENERATIONS", "LOWER", "UPPER", "MOVES_BLOCK_BYTES"]

#: (27,) bounds of every parameter: position and quaternion free, angles within the joint limits
LOWER = np.concatenate([np.full(7, -np.inf), LIMITS[..., 0].ravel()])
UPPER = np.concatenate([np.full(7, np.inf), LIMITS[..., 1].ravel()])


def constriction(c1: float, c2: float) -> float:
    psi = c1 + c2
    if psi <= 4:
        raise ValueError(f"constriction needs c1 + c2 > 4, got {psi}")
    return 2.0 / abs(2.0 - psi - math.sqrt(psi * psi - 4.0 * psi))


#: The largest swarm and the most generations a PSOConfig accepts (a 64 x 64 tile per particle
#: is 16 kB: 4096 particles score 64 MB of tiles per generation).
MAX_PARTICLES, MAX_GENERATIONS = 4096, 10000


@dataclass(frozen=True)
class PSOConfig:
    particles: int = 64
    generations: int = 25
    c1: float = 2.8
    c2: float = 1.3
    redraw_every: int = 3

    def __post_init__(self) -> None:
        if not (1 <= self.particles <= MAX_PARTICLES and 1 <= self.generations <= MAX_GENERATIONS):
            raise ValueError(f"impossible PSO budget: {self.particles} particles x {self.generations} generations "
                             f"(need 1..{MAX_PARTICLES} x 1..{MAX_GENERATIONS})")
        constriction(self.c1, self.c2)

    @property
    def w(self) -> float:
        return constriction(self.c1, self.c2)


class PSOResult(NamedTuple):
    best: np.ndarray        # (27,)
    best_value: float
    evaluations: int


class Moves(NamedTuple):
    """Random numbers of consecutive generations, drawn before them: r1, r2 ``(G, N, 27)``, and
    the finger re-draws ``(G, K)``: particle (-1: none that generation), dimension, value."""

    r1: np.ndarray
    r2: np.ndarray
    redraw_rows: np.ndarray
    redraw_dims: np.ndarray
    redraw_values: np.ndarray


#: the most memory one block of pre-drawn moves takes (a run draws block after block)
MOVES_BLOCK_BYTES = 64 * 2 ** 20


def draw_moves(config: PSOConfig, n: int, rng: np.random.Generator) -> Iterator[Moves]:
    """Every random number of a run of ``n`` particles, in blocks of generations (at most
    ``MOVES_BLOCK_BYTES`` each; at least one block, empty when the run has one generation), in
    the order a generation-by-generation loop draws them, so ``rng``'s stream, and the run, do
    not depend on which loop runs it."""
    total, k = config.generations - 1, n // 2
    per_block = max(1, MOVES_BLOCK_BYTES // (2 * 8 * 27 * n))
    start = 1
    while True:
        g = min(per_block, total - (start - 1))
        r1, r2 = np.empty((g, n, 27)), np.empty((g, n, 27))
        rows, dims, values = np.full((g, k), -1, np.int64), np.zeros((g, k), np.int64), np.zeros((g, k))
        for j, gen in enumerate(range(start, start + g)):
            r1[j], r2[j] = rng.random((n, 27)), rng.random((n, 27))
            if config.redraw_every and gen % config.redraw_every == 0:
                rows[j] = rng.permutation(n)[:k]
                dims[j] = 7 + rng.integers(0, 20, k)
                values[j] = rng.uniform(LOWER[dims[j]], UPPER[dims[j]])
        yield Moves(r1, r2, rows, dims, values)
        start += g
        if start > total:
            return


def prepare_swarm(initial: np.ndarray) -> np.ndarray:
    """``(N, 27)`` float64 copy with the angles clamped to their limits and unit quaternions."""
    x = np.array(initial, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 27:
        raise ValueError(f"initial swarm must be (N, 27), got {x.shape}")
    x[:, 7:] = np.clip(x[:, 7:], LOWER[7:], UPPER[7:])
    x[:, 3:7] /= np.linalg.norm(x[:, 3:7], axis=1, keepdims=True)
    return x


def optimize(objective: Callable[[np.ndarray], np.ndarray], initial: np.ndarray, config: PSOConfig,
             rng: np.random.Generator) -> PSOResult:
    """Run PSO from the swarm ``initial (N, 27)`` against any batched objective (NaN values
    count as +inf). Particle 0 (e.g. the previous frame's solution) is evaluated as given, so
    the result is never worse than it. ``tracker.objective.CpuScorer.optimize`` is the same
    run, fused in numba, for the hand objective on the cpu scorer."""

    def evaluate(x: np.ndarray) -> np.ndarray:
        values = np.asarray(objective(x), dtype=np.float64)
        return np.where(np.isnan(values), np.inf, values)

    x = prepare_swarm(initial)
    n = x.shape[0]
    v = np.zeros_like(x)
    values = evaluate(x)
    pbest, pbest_val = x.copy(), values.copy()
    g = int(np.argmin(values))
    gbest, gbest_val = x[g].copy(), float(values[g])
    evaluations = n
    w = config.w
    for moves in draw_moves(config, n, rng):
        for gen in range(moves.r1.shape[0]):
            pso_step_kernel(x, v, pbest, gbest, moves.r1[gen], moves.r2[gen], w, config.c1, config.c2, LOWER, UPPER)
            rows = moves.redraw_rows[gen]
            if rows.size and rows[0] >= 0:
                x[rows, moves.redraw_dims[gen]] = moves.redraw_values[gen]
            values = evaluate(x)
            evaluations += n
            better = values < pbest_val
            pbest[better], pbest_val[better] = x[better], values[better]
            g = int(np.argmin(pbest_val))
            if pbest_val[g] < gbest_val:
                gbest, gbest_val = pbest[g].copy(), float(pbest_val[g])
    return PSOResult(gbest, gbest_val, evaluations)
