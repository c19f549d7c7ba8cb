"""gymnax adapter (gymnax >= 1.0: `step` returns terminated and truncated apart)."""

from __future__ import annotations

import gymnax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from esbench.envs.core import Box, Discrete, Env, EnvSpec, build_env


def _action_space(space) -> Discrete | Box:
    if isinstance(space, spaces.Discrete):
        return Discrete(int(space.n))
    if isinstance(space, spaces.Box):
        dim = int(np.prod(space.shape)) if space.shape else 1
        return Box.make(space.low, space.high, dim)
    raise TypeError(f"unsupported gymnax action space {type(space).__name__}")


def make_gymnax_env(name: str, env_id: str | None = None) -> Env:
    if name not in gymnax.registered_envs:
        from esbench.envs.registry import UnknownEnvError

        raise UnknownEnvError(f"unknown gymnax environment {name!r}; gymnax has: {', '.join(gymnax.registered_envs)}")
    env, params = gymnax.make(name)
    action = _action_space(env.action_space(params))
    action_shape = env.action_space(params).shape

    # step_env/reset_env rather than step/reset: the esbench wrapper does the auto-reset once.
    # `done` is gymnax's natural termination only; the wrapper truncates at the same
    # max_steps_in_episode, so `info.truncated` tells a time-out from a terminal state.
    def raw_reset(key):
        return env.reset_env(key, params)

    def raw_step(key, state, action_in):
        if isinstance(action, Box):
            action_in = jnp.reshape(action_in, action_shape)
        obs, state, reward, terminated, _ = env.step_env(key, state, action_in, params)
        return obs, state, reward, terminated

    obs_dim = int(np.prod(env.observation_space(params).shape))
    spec = EnvSpec(
        id=env_id or f"gymnax/{name}",
        suite="gymnax",
        obs_dim=obs_dim,
        action=action,
        max_episode_steps=int(params.max_steps_in_episode),
    )
    return build_env(spec, raw_reset, raw_step)
