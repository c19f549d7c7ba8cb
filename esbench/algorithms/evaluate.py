"""Episode rollouts shared by ES fitness evaluation and policy evaluation.

An episode runs inside one `lax.while_loop` that stops at its first `done`
(or `max_steps`). Under `vmap` (members, episodes, seeds) the loop runs until
every episode of the batch has ended, the finished ones frozen: a generation
costs its longest episode, not the episode limit (`early_exit=False` runs all
`max_steps` in a `lax.scan` with the steps after `done` masked; same returns
and lengths, kept to show it). Step t's keys come from one split of the run
key in both, so the trajectory does not depend on the mode. Episodes step
with `env.step_within_episode`: no auto-reset, which nothing after the first
`done` would use. `track_obs=True` also sums the observations the policy saw
(and their squares) over the episode's steps: what running observation
statistics (ARS V2) are updated from.
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
    obs_sum: Optional[jax.Array] = (
        None  # f32[n_episodes, obs_dim]: sum of the observations acted on (track_obs)
    )
    obs_sq_sum: Optional[jax.Array] = None  # f32[n_episodes, obs_dim]: sum of their squares (track_obs)


def run_episode(
    key: jax.Array,
    env: Env,
    act_fn: ActFn,
    max_steps: Optional[int] = None,
    early_exit: bool = True,
    track_obs: bool = False,
) -> EpisodeStats:
    """Return and length of one episode, truncated at `max_steps` (default: the env's limit)."""
    max_steps = int(max_steps or env.spec.max_episode_steps)
    reset_key, run_key = jax.random.split(key)
    obs, state = env.reset(reset_key)
    step_keys = jax.random.split(run_key, max_steps)

    def step(carry):
        t, obs, state, ret, length, alive, moments = carry
        if track_obs:
            seen = jnp.where(alive, obs, 0.0)
            moments = (moments[0] + seen, moments[1] + seen**2)
        act_key, env_key = jax.random.split(step_keys[t])
        action = act_fn(obs, act_key)
        obs, state, reward, done = env.step_within_episode(
            env_key, state, action
        )  # no reset: nothing after done counts
        ret = ret + jnp.where(alive, reward, 0.0)
        length = length + alive.astype(jnp.int32)
        return t + 1, obs, state, ret, length, alive & ~done, moments

    moments = (jnp.zeros_like(obs), jnp.zeros_like(obs)) if track_obs else None
    init = (
        jnp.zeros((), jnp.int32),
        obs,
        state,
        jnp.zeros((), jnp.float32),
        jnp.zeros((), jnp.int32),
        jnp.ones((), jnp.bool_),
        moments,
    )
    if early_exit:
        carry = jax.lax.while_loop(lambda c: c[5] & (c[0] < max_steps), step, init)
    else:
        carry, _ = jax.lax.scan(lambda c, _: (step(c), None), init, None, length=max_steps)
    if track_obs:
        return EpisodeStats(carry[3], carry[4], *carry[6])
    return EpisodeStats(carry[3], carry[4])


def run_episodes(
    key: jax.Array,
    env: Env,
    act_fn: ActFn,
    n_episodes: int,
    max_steps: Optional[int] = None,
    early_exit: bool = True,
    track_obs: bool = False,
) -> EpisodeStats:
    """`n_episodes` independent episodes, vmapped."""
    keys = jax.random.split(key, n_episodes)
    return jax.vmap(lambda k: run_episode(k, env, act_fn, max_steps, early_exit, track_obs))(keys)


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
