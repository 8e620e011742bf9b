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
from typing import Callable, NamedTuple

import numba
import numpy as np

from tracker.pose import LIMITS

__all__ = ["PSOConfig", "PSOResult", "optimize", "constriction", "MAX_PARTICLES", "MAX_GENERATIONS"]

JIT = dict(nogil=True, cache=True, fastmath=False)

_LO = np.concatenate([np.full(7, -np.inf), LIMITS[..., 0].ravel()])
_HI = np.concatenate([np.full(7, np.inf), LIMITS[..., 1].ravel()])


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


@numba.njit(**JIT)
def pso_step_kernel(x, v, pbest, gbest, r1, r2, w, c1, c2, lo, hi):
    """In place: one constricted move of every particle, clamped, quaternion renormalised."""
    n, d = x.shape
    for i in range(n):
        for k in range(d):
            vk = w * (v[i, k] + c1 * r1[i, k] * (pbest[i, k] - x[i, k]) + c2 * r2[i, k] * (gbest[k] - x[i, k]))
            xk = x[i, k] + vk
            if xk < lo[k]:
                xk = lo[k]
                vk = 0.0
            elif xk > hi[k]:
                xk = hi[k]
                vk = 0.0
            x[i, k] = xk
            v[i, k] = vk
        norm = math.sqrt(x[i, 3] ** 2 + x[i, 4] ** 2 + x[i, 5] ** 2 + x[i, 6] ** 2)
        if norm < 1e-9:
            x[i, 3], x[i, 4], x[i, 5], x[i, 6] = 1.0, 0.0, 0.0, 0.0
        else:
            for k in range(3, 7):
                x[i, k] /= norm


def optimize(objective: Callable[[np.ndarray], np.ndarray], initial: np.ndarray, config: PSOConfig,
             rng: np.random.Generator, keep_first: bool = True) -> PSOResult:
    """Run PSO from the swarm ``initial (N, 27)``. ``keep_first``: particle 0 (e.g. the previous
    frame's solution) is evaluated as given, so the result is never worse than it."""
    x = np.array(initial, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != 27:
        raise ValueError(f"initial swarm must be (N, 27), got {x.shape}")
    n = x.shape[0]
    x[:, 7:] = np.clip(x[:, 7:], _LO[7:], _HI[7:])
    x[:, 3:7] /= np.linalg.norm(x[:, 3:7], axis=1, keepdims=True)
    v = np.zeros_like(x)
    values = np.asarray(objective(x), dtype=np.float64)
    pbest, pbest_val = x.copy(), values.copy()
    g = int(np.argmin(values))
    gbest, gbest_val = x[g].copy(), float(values[g])
    evaluations = n
    w = config.w
    for gen in range(1, config.generations):
        r1, r2 = rng.random(x.shape), rng.random(x.shape)
        pso_step_kernel(x, v, pbest, gbest, r1, r2, w, config.c1, config.c2, _LO, _HI)
        if config.redraw_every and gen % config.redraw_every == 0:
            chosen = rng.permutation(n)[: n // 2]
            dims = 7 + rng.integers(0, 20, chosen.size)
            x[chosen, dims] = rng.uniform(_LO[dims], _HI[dims])
        values = np.asarray(objective(x), dtype=np.float64)
        evaluations += n
        better = values < pbest_val
        pbest[better], pbest_val[better] = x[better], values[better]
        g = int(np.argmin(pbest_val))
        if pbest_val[g] < gbest_val:
            gbest, gbest_val = pbest[g].copy(), float(pbest_val[g])
    return PSOResult(gbest, gbest_val, evaluations)
