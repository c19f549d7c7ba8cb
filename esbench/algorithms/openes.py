"""OpenES (Salimans et al., 2017) on the same machinery as EGGROLL.

For a weight matrix W (m x n), pair j draws eps in R^(m x n) with iid N(0, 1)
entries and member i = 2j (+) / 2j+1 (-) uses E_i = s eps. Its forward pass
forms each member's matrix W + sigma E_i: that per-member matrix is exactly
the cost EGGROLL removes, so this baseline is deliberately not given
EGGROLL's shortcut. Everything else (pairs, keys, fitness shaping,
optimizer) is `es.py`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax
import jax.numpy as jnp

from esbench import paper
from esbench.algorithms import es

LABEL = "OpenES"


_CARTPOLE = paper.row("openes", "CartPole-v1")


@dataclasses.dataclass(frozen=True)
class Config(es.ESConfig):
    """Defaults: the paper's OpenES CartPole-v1 row."""

    pop_size: int = es.row_default(_CARTPOLE, "pop_size")
    sigma: float = es.row_default(_CARTPOLE, "sigma", float)
    sigma_decay: float = es.row_default(_CARTPOLE, "sigma_decay", float)
    optimizer: Literal["sgd", "adam", "adamw"] = es.row_default(_CARTPOLE, "optimizer", str)
    learning_rate: float = es.row_default(_CARTPOLE, "learning_rate", float)
    lr_decay: float = es.row_default(_CARTPOLE, "lr_decay", float)
    n_parallel_evaluations: int = es.row_default(_CARTPOLE, "n_parallel_evaluations")
    rank_transform: bool = es.row_default(_CARTPOLE, "rank_transform", bool)
    deterministic_policy: bool = es.row_default(_CARTPOLE, "deterministic_policy", bool)


def sample(key, shape, dtype, cfg):
    return jax.random.normal(key, shape, dtype)


def matmul(w, x, eps, sign, sigma, cfg):
    return x @ (w + sigma * sign * eps).T


def gradient(eps, weights, cfg):
    return jnp.tensordot(weights, eps, axes=1)


def stored_size(shape, cfg):
    return shape[0] * shape[1]


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
