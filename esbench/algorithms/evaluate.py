"""Episode rollouts shared by ES fitness evaluation and policy evaluation.

Every episode runs for exactly `max_steps` env steps inside one `lax.scan`
(steps after the first `done` are simulated but masked), so the number of
simulated env steps is static and the whole rollout is one compiled program.
Episodes step with `env.step_within_episode`: no auto-reset, which nothing
after the first `done` would use.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from esbench.algorithms import networks
from esbench.envs.core import Env

ActFn = Callable[[jax.Array, jax.Array], jax.Array]  # (obs, key) -> action


class EpisodeStats(NamedTuple):
    returns: jax.Array  # f32[n_episodes]: return of each episode's first episode
    lengths: jax.Array  # i32[n_episodes]: its length (the valid, unmasked steps)


def run_episode(key: jax.Array, env: Env, act_fn: ActFn, max_steps: Optional[int] = None) -> EpisodeStats:
    """Return and length of one episode, truncated at `max_steps` (default: the env's limit)."""
    max_steps = int(max_steps or env.spec.max_episode_steps)
    reset_key, run_key = jax.random.split(key)
    obs, state = env.reset(reset_key)

    def body(carry, step_key):
        obs, state, ret, length, alive = carry
        act_key, env_key = jax.random.split(step_key)
        action = act_fn(obs, act_key)
        obs, state, reward, done = env.step_within_episode(env_key, state, action)  # no reset: masked after done
        ret = ret + jnp.where(alive, reward, 0.0)
        length = length + alive.astype(jnp.int32)
        return (obs, state, ret, length, alive & ~done), None

    init = (obs, state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32), jnp.ones((), jnp.bool_))
    (_, _, ret, length, _), _ = jax.lax.scan(body, init, jax.random.split(run_key, max_steps))
    return EpisodeStats(ret, length)


def run_episodes(key: jax.Array, env: Env, act_fn: ActFn, n_episodes: int, max_steps: Optional[int] = None) -> EpisodeStats:
    """`n_episodes` independent episodes, vmapped."""
    keys = jax.random.split(key, n_episodes)
    return jax.vmap(lambda k: run_episode(k, env, act_fn, max_steps))(keys)


def evaluate_policy(
    key: jax.Array,
    env: Env,
    params: dict,
    n_episodes: int,
    deterministic: bool,
    activation: str = "pqn",
    max_steps: Optional[int] = None,
) -> EpisodeStats:
    """Returns of the unperturbed policy `params` over fresh episodes."""

    def act_fn(obs, key):
        return networks.act(params, obs, key, env.spec.action, deterministic, activation)

    return run_episodes(key, env, act_fn, n_episodes, max_steps)
