"""EGGROLL (Sarkar et al., 2025): ES with low-rank matrix perturbations.

For a weight matrix W (m x n), pair j draws A in R^(m x r), B in R^(n x r)
with iid N(0, 1) entries (one (n + m) x r draw: B its first n rows, A the
rest, as HyperscaleES's `get_lora_update_params`), and member i = 2j (+) /
2j+1 (-) uses

    E_i = s A B^T / sqrt(r)          (unit-variance entries for any r)

without ever forming it: the perturbed product is

    x (W + sigma E_i)^T = x W^T + sigma s ((x B) A^T) / sqrt(r)

so x W^T is one batched matmul for the whole population and a member costs
O(r (m + n)) more. The gradient sum_j w_j A_j B_j^T / sqrt(r) is one dense
product of the fitness-weighted A's (m x P r) against the B's (P r x n).
Everything else (pairs, keys, fitness shaping, optimizer) is `es.py`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp

from esbench.algorithms import es

LABEL = "EGGROLL"


@dataclasses.dataclass(frozen=True)
class Config(es.ESConfig):
    """Defaults: the paper's EGGROLL CartPole-v1 row (ESConfig's defaults are that row)."""

    rank: int = es.row_default(es._CARTPOLE, "rank")


def sample(key, shape, dtype, cfg):
    """One pair's factors (A: m x r, B: n x r), iid N(0, 1); B from the draw's first n rows, as HyperscaleES."""
    m, n = shape
    ba = jax.random.normal(key, (n + m, cfg.rank), dtype)
    return ba[n:], ba[:n]


# From this rank up the low-rank term runs as two batched products; below it as broadcast-and-reduce.
# Measured on a 2-core CPU (width 1024, 256 pairs, relative to x W^T alone): r=4 0.82 -> 0.90,
# r=16 0.31 -> 0.77; at r=1 the products become P tiny batched matmuls of one column, which
# made a CartPole generation at pop 2048 ~1.4x slower, so rank 1 keeps the reduction.
BATCHED_PRODUCT_MIN_RANK = 2


def matmul(w, x, factors, sign, sigma, cfg):
    a, b = factors
    if cfg.rank >= BATCHED_PRODUCT_MIN_RANK:
        low_rank = jnp.einsum("...r,mr->...m", jnp.einsum("...n,nr->...r", x, b), a)
    else:
        low_rank = jnp.sum(jnp.sum(x[..., :, None] * b, axis=-2)[..., None, :] * a, axis=-1)
    return x @ w.T + (sigma * sign / math.sqrt(cfg.rank)) * low_rank


def gradient(factors, weights, cfg):
    """sum_j w_j A_j B_j^T / sqrt(r) as one (m x P r) @ (P r x n) product."""
    a, b = factors  # (P, m, r), (P, n, r)
    # Contracting over (pair, rank) together: one dense product, no per-pair m x n matrix.
    return jnp.einsum("pmr,pnr->mn", a * weights[:, None, None], b) / math.sqrt(cfg.rank)


def stored_size(shape, cfg):
    return (shape[0] + shape[1]) * cfg.rank


MATRIX_NOISE = es.MatrixNoise(sample, matmul, gradient, stored_size)


def init(key: jax.Array, env, cfg: Config) -> es.ESState:
    return es.init(key, env, cfg)


def update(state: es.ESState, env, cfg: Config):
    return es.update(state, env, cfg, MATRIX_NOISE)


policy = es.policy
env_steps_per_update = es.env_steps_per_update
min_env_steps_per_update = es.min_env_steps_per_update
VALUE_FIELDS = es.VALUE_FIELDS
SPLITS_POPULATION = True  # es.update splits each generation over devices (runner/programs.py)
