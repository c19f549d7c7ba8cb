"""gymnax adapter (gymnax >= 1.0: `step` returns terminated and truncated apart).

Rendering: the classic-control ids (CartPole, Pendulum, Acrobot, MountainCar)
are drawn by gymnasium's own pygame renderer, through gymnax's state converters
(`gymnax.visualize.vis_gym`); gymnax's other visualisers draw onto matplotlib
animations, not per-state frames, so those ids have no renderer.
"""

from __future__ import annotations

import os

import gymnasium
import gymnax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces
from gymnax.visualize import vis_gym

from esbench.envs.core import Box, Discrete, Env, EnvSpec, UnknownEnvError, build_env


def _action_space(space) -> Discrete | Box:
    if isinstance(space, spaces.Discrete):
        return Discrete(int(space.n))
    if isinstance(space, spaces.Box):
        dim = int(np.prod(space.shape)) if space.shape else 1
        return Box.make(space.low, space.high, dim)
    raise TypeError(f"unsupported gymnax action space {type(space).__name__}")


def classic_control_renderer(name: str, params):
    """state -> u8[H, W, 3] by gymnasium's renderer (CartPole 400x600, Pendulum 500x500)."""
    # gymnax's `vis_gym.render_gym_frame` builds (and pygame-initialises) a gymnasium env per
    # frame; one env kept for the whole clip, made on first use, is ~3x faster.
    gym_env = None

    def render(state) -> np.ndarray:
        nonlocal gym_env
        if gym_env is None:
            # No audio is ever needed, and SDL's default driver prints ALSA errors on headless machines.
            os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
            gym_env = gymnasium.make(name, render_mode="rgb_array")
            gym_env.reset()
            vis_gym.set_gym_params(gym_env.unwrapped, name, params)
        gym_env.unwrapped.state = vis_gym.get_gym_state(state, name)
        if name == "Pendulum-v1":  # the torque arrow
            gym_env.unwrapped.last_u = np.asarray(state.last_u, dtype=np.float64)
        return np.asarray(gym_env.render())

    return render


def make_gymnax_env(name: str, env_id: str | None = None) -> Env:
    if name not in gymnax.registered_envs:
        raise UnknownEnvError(
            f"unknown gymnax environment {name!r}; gymnax has: {', '.join(gymnax.registered_envs)}"
        )
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
    render = classic_control_renderer(name, params) if name in vis_gym.SUPPORTED_GYM_ENVS else None
    return build_env(spec, raw_reset, raw_step, render=render)
