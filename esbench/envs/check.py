"""Rollouts under jit + vmap + scan: the `esbench envs --check` smoke test, the random policy's return
(`esbench envs --random-return`) that the verdicts' reference scores start from, and how sparse an env's
reward is under a random or a trained policy (`esbench envs --reward-stats`)."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from esbench.envs.core import Discrete, Env, EnvSpec


def random_action(spec: EnvSpec, key: jax.Array) -> jax.Array:
    """A uniformly random valid action of `spec`."""
    if isinstance(spec.action, Discrete):
        return jax.random.randint(key, (), 0, spec.action.n, dtype=jnp.int32)
    low, high = jnp.asarray(spec.action.low), jnp.asarray(spec.action.high)
    return jax.random.uniform(key, (spec.action.dim,), minval=low, maxval=high)


def random_rollout(env: Env, key: jax.Array, num_envs: int, num_steps: int):
    """jit(vmap(scan(step))) with random actions: (obs, reward, done, info), each [num_envs, num_steps, ...].

    `obs` is the observation each action was taken in. The compiled program is
    cached per (env, num_envs, num_steps): brax and craftax take minutes to compile on CPU.
    """
    return rollout_program(env, num_envs, num_steps)(key, None)


@functools.lru_cache(maxsize=32)
def rollout_program(env: Env, num_envs: int, num_steps: int, act=None):
    """jit((key, params) -> (obs, reward, done, info)) of `num_envs` envs for `num_steps` steps each, acting
    with act(params, obs, key) -> action; act None: uniformly random actions (params unused). Params are an
    argument, so one compiled program serves every seed of a trained policy."""

    def one_env(key, params):
        reset_key, run_key = jax.random.split(key)
        obs, state = env.reset(reset_key)

        def body(carry, step_key):
            obs, state = carry
            act_key, env_key = jax.random.split(step_key)
            action = random_action(env.spec, act_key) if act is None else act(params, obs, act_key)
            next_obs, state, reward, done, info = env.step(env_key, state, action)
            return (next_obs, state), (obs, reward, done, info)

        _, traj = jax.lax.scan(body, (obs, state), jax.random.split(run_key, num_steps))
        return traj

    return jax.jit(
        lambda key, params: jax.vmap(one_env, in_axes=(0, None))(jax.random.split(key, num_envs), params)
    )


@dataclass(frozen=True)
class CheckResult:
    env_id: str
    compile_s: float
    steps_per_s: float
    episodes_finished: int


def check_env(env: Env, num_envs: int = 64, num_steps: int = 100, seed: int = 0) -> CheckResult:
    """Compile and run a random rollout; time compile and run apart."""
    key = jax.random.PRNGKey(seed)
    t = time.perf_counter()
    compiled = rollout_program(env, num_envs, num_steps).lower(key, None).compile()
    compile_s = time.perf_counter() - t
    jax.block_until_ready(compiled(key, None))  # first call pays one-off transfers
    t = time.perf_counter()
    traj = jax.block_until_ready(compiled(jax.random.PRNGKey(seed + 1), None))
    run_s = time.perf_counter() - t
    return CheckResult(env.spec.id, compile_s, num_envs * num_steps / run_s, int(traj[2].sum()))


def random_returns(env: Env, episodes: int = 256, seed: int = 0) -> np.ndarray:
    """The return of each of `episodes` first episodes under uniformly random actions.

    Each of `episodes` envs runs to its first episode end (the episode limit bounds it); an env with no
    limit is refused, since its first episode might never end.
    """
    limit = env.spec.max_episode_steps
    if not limit:
        raise ValueError(f"{env.spec.id} has no episode limit: a random policy's episode return is undefined")
    _, reward, done, _ = random_rollout(env, jax.random.PRNGKey(seed), episodes, int(limit))
    reward, done = np.asarray(reward, dtype=float), np.asarray(done, dtype=bool)
    return (reward * first_episode_mask(done)).sum(axis=1)


def first_episode_mask(done: np.ndarray) -> np.ndarray:
    """bool[envs, steps]: the steps up to and including each env's first episode end."""
    return np.cumsum(done, axis=1) - done == 0


@dataclass(frozen=True)
class RewardStats:
    """How a policy's first episodes are rewarded: how often a reward comes at all, and how much."""

    episodes: int
    return_mean: float
    return_sem: float
    length_mean: float
    nonzero_steps: float  # fraction of the episodes' steps with a reward != 0
    rewarded_episodes: float  # fraction of episodes with a reward > 0 at some step
    reward_min: float
    reward_max: float


def reward_stats(reward: np.ndarray, done: np.ndarray) -> RewardStats:
    """The statistics of the first episodes in `reward`, `done` ([envs, steps], as a rollout returns them)."""
    reward, done = np.asarray(reward, dtype=float), np.asarray(done, dtype=bool)
    inside = first_episode_mask(done)
    returns = (reward * inside).sum(axis=1)
    shown = reward[inside]
    return RewardStats(
        episodes=int(reward.shape[0]),
        return_mean=float(returns.mean()),
        return_sem=float(returns.std(ddof=1) / np.sqrt(returns.size)) if returns.size > 1 else float("nan"),
        length_mean=float(inside.sum(axis=1).mean()),
        nonzero_steps=float((shown != 0).mean()),
        rewarded_episodes=float(((reward > 0) & inside).any(axis=1).mean()),
        reward_min=float(shown.min()),
        reward_max=float(shown.max()),
    )
