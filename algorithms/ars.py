"""ARS V2-t: Augmented Random Search (Mania, Guy and Recht 2018, Algorithm 2), added as a user adds a baseline.

This file is the worked example of algorithms/: esbench loads it by itself (no flag), registers it
as `ars`, and every command then runs it like a built-in (`esbench run --algo ars ...`).

One iteration, with N = pop_size / 2 directions and b = the top `top_fraction` of them:

    delta_j ~ N(0, I)                      one direction per antithetic pair, every parameter leaf
    r+_j, r-_j                             returns of theta + nu delta_j and theta - nu delta_j, the
                                           observations normalised by the running (mu, Sigma) of
                                           every state seen in earlier iterations: (x - mu) / sqrt(Sigma)
    keep the b directions with the largest max(r+_j, r-_j)
    sigma_R = std of those 2b returns
    theta  += alpha / (b sigma_R) sum_{kept j} (r+_j - r-_j) delta_j
    (mu, Sigma) += every state of this iteration's episodes

evosax's ARS (`evosax:ARS`) has the top-b rule but optimises a flat vector: the observation
statistics (what "V2" adds, and what makes ARS competitive on MuJoCo) live in the rollout, which is
why ARS needs its own file. The policy is esbench's shared network (`networks.py`) with the
statistics folded in as its "obs_norm" entry, so evaluation, render and the report see the policy
ARS trained. Rollouts, antithetic noise and common random numbers are the ES module's.

Names: nu is `sigma`, alpha `learning_rate` (as in the ES configs, so sweeps read alike).
"""

from __future__ import annotations

import dataclasses
import sys

import jax
import jax.numpy as jnp
from flax import struct

from esbench.algorithms import as_metrics, es, evaluate, networks, openes, register_algorithm
from esbench.algorithms.networks import PolicySettings
from esbench.validation import rule, validate

LABEL = "ARS"
REWARD_STD_FLOOR = 1e-8  # sigma_R below this (every kept return equal): no step, rather than 0/0

# What the protocol's random search draws from (`protocol.space: {ars: paper}`), beside the paper's
# Tables 15/16 for EGGROLL, OpenES and PPO: the ranges of the ARS paper's MuJoCo grid (its Table 9),
# step sizes and noises widened for esbench's unnormalised-reward environments.
SEARCH_SPACE = {
    "pop_size": [32, 64, 128, 256],
    "top_fraction": [0.125, 0.25, 0.5, 1.0],
    "sigma": [0.01, 0.02, 0.03, 0.05, 0.1],
    "learning_rate": [0.005, 0.01, 0.02, 0.05, 0.1],
}

# Fields that change values, not shapes: trials differing only in them run as one vmapped program.
VALUE_FIELDS = ("sigma", "learning_rate", "top_fraction", "deterministic_policy")


@dataclasses.dataclass(frozen=True)
class Config(PolicySettings):
    """ARS V2-t's hyperparameters; the network fields are the shared policy's (PolicySettings)."""

    pop_size: int = dataclasses.field(default=64, metadata=es.RULES["pop_size"])  # 2 x directions N
    top_fraction: float = dataclasses.field(
        default=0.5, metadata=rule(lambda v: 0 < v <= 1, "a number in (0, 1]")
    )  # b / N
    sigma: float = dataclasses.field(default=0.05, metadata=es.RULES["sigma"])  # nu, the exploration noise
    learning_rate: float = dataclasses.field(default=0.05, metadata=es.RULES["learning_rate"])  # alpha
    n_parallel_evaluations: int = dataclasses.field(default=1, metadata=es.RULES["n_parallel_evaluations"])
    deterministic_policy: bool = True  # ARS's policies are deterministic
    early_exit: bool = True  # es.ESConfig's: stop a generation's rollouts once every episode has ended

    def validate(self, owner: str | None = None) -> None:
        validate(self, owner or "ars")


@struct.dataclass
class ObsStats:
    """Mean and population variance of every state seen so far (count 0: the identity, mu 0, Sigma 1)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array


@struct.dataclass
class State:
    params: dict  # theta, in `networks` layout without obs_norm
    obs_stats: ObsStats
    key: jax.Array
    noise_root: jax.Array
    generation: jax.Array


def merge_stats(stats: ObsStats, n, total, total_sq) -> ObsStats:
    """`stats` with n more states merged in, given their sum and sum of squares (Chan et al.)."""
    n = n.astype(jnp.float32)
    count = stats.count + n
    safe_n = jnp.maximum(n, 1.0)
    batch_mean = total / safe_n
    batch_var = jnp.maximum(total_sq / safe_n - batch_mean**2, 0.0)
    delta = batch_mean - stats.mean
    weight = n / jnp.maximum(count, 1.0)
    mean = stats.mean + delta * weight
    m2 = stats.var * stats.count + batch_var * n + delta**2 * stats.count * weight
    var = jnp.where(count > 0, m2 / jnp.maximum(count, 1.0), stats.var)
    return ObsStats(mean, var, count)


def with_obs_norm(params: dict, stats: ObsStats) -> dict:
    return {**params, **networks.obs_norm_params(stats.mean, stats.var, None)}


def init(key: jax.Array, env, cfg: Config) -> State:
    params_key, noise_key, run_key = jax.random.split(key, 3)
    params = networks.init_policy(params_key, env.spec.obs_dim, env.spec.action, cfg)
    dim = env.spec.obs_dim
    stats = ObsStats(jnp.zeros(dim, jnp.float32), jnp.ones(dim, jnp.float32), jnp.zeros((), jnp.float32))
    return State(params, stats, run_key, noise_key, jnp.zeros((), jnp.int32))


def top_directions(scores: jax.Array, fraction) -> jax.Array:
    """f32 mask of the b = max(1, round(fraction N)) directions of the largest score."""
    n = scores.shape[0]
    b = jnp.maximum(1, jnp.round(jnp.asarray(fraction, jnp.float32) * n))
    rank = jnp.argsort(jnp.argsort(-scores))  # 0 for the best
    return (rank < b).astype(jnp.float32)


def update(state: State, env, cfg: Config):
    """One ARS iteration (the module doc), the rollouts on ES's antithetic machinery."""
    key, episode_key = jax.random.split(state.key)
    n_pairs = cfg.pop_size // 2
    sigma = jnp.asarray(cfg.sigma, jnp.float32)
    noise = es.draw_noise(state.noise_root, state.generation, state.params, n_pairs, cfg, openes.MATRIX_NOISE)
    obs_norm = networks.obs_norm_params(state.obs_stats.mean, state.obs_stats.var, None)

    def member_rollouts(member_params, matmul, member_key):
        member_params = {**member_params, **obs_norm}

        def act_fn(obs, act_key):
            return networks.act(
                member_params, obs, act_key, env.spec.action, cfg.deterministic_policy, cfg.activation, matmul
            )

        stats = evaluate.run_episodes(
            member_key, env, act_fn, cfg.n_parallel_evaluations, early_exit=cfg.early_exit, track_obs=True
        )
        return jnp.mean(stats.returns), stats.lengths, jnp.sum(stats.obs_sum, 0), jnp.sum(stats.obs_sq_sum, 0)

    member_keys = jnp.repeat(
        jax.random.split(episode_key, n_pairs), 2, axis=0
    )  # both signs: the same episodes
    returns, lengths, obs_sum, obs_sq_sum = es.population_map(
        member_rollouts, state.params, noise, sigma, cfg, openes.MATRIX_NOISE, member_keys
    )

    r_plus, r_minus = returns[0::2], returns[1::2]
    kept = top_directions(jnp.maximum(r_plus, r_minus), cfg.top_fraction)
    b = jnp.sum(kept)
    kept_mean = jnp.sum(kept * (r_plus + r_minus)) / (2 * b)
    reward_std = jnp.sqrt(jnp.sum(kept * ((r_plus - kept_mean) ** 2 + (r_minus - kept_mean) ** 2)) / (2 * b))
    reward_std = jnp.where(reward_std > REWARD_STD_FLOOR, reward_std, jnp.inf)
    weights = kept * (r_plus - r_minus) * (jnp.asarray(cfg.learning_rate, jnp.float32) / (b * reward_std))
    leaves, treedef = jax.tree_util.tree_flatten(state.params)
    step = jax.tree_util.tree_unflatten(treedef, [jnp.tensordot(weights, eps, axes=1) for eps in noise])
    params = jax.tree_util.tree_map(jnp.add, state.params, step)

    obs_stats = merge_stats(state.obs_stats, jnp.sum(lengths), jnp.sum(obs_sum, 0), jnp.sum(obs_sq_sum, 0))
    metrics = as_metrics(
        {
            "train_return": jnp.mean(returns),
            "valid_env_steps": jnp.sum(lengths),
            "simulated_env_steps": es.simulated_env_steps(lengths, env, cfg),
            "fitness_std": jnp.std(returns),
            "fitness_max": jnp.max(returns),
            "reward_std": jnp.where(jnp.isfinite(reward_std), reward_std, 0.0),
            "update_norm": jnp.sqrt(sum(jnp.sum(s**2) for s in jax.tree_util.tree_leaves(step))),
            "obs_count": obs_stats.count,
        }
    )
    return State(params, obs_stats, key, state.noise_root, state.generation + 1), metrics


def policy(state: State) -> dict:
    """theta with the observation statistics folded in: what evaluation and render run."""
    return with_obs_norm(state.params, state.obs_stats)


env_steps_per_update = es.env_steps_per_update
min_env_steps_per_update = es.min_env_steps_per_update

register_algorithm("ars", sys.modules[__name__])
