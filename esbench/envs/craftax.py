"""craftax adapter (craftax 1.6: Craftax and Craftax-Classic, symbolic or pixel observations).

The paper's ids are the auto-reset variants (`...-AutoReset-v1`). craftax's
auto-reset and no-auto-reset classes share `step_env` / `reset_env` exactly and
differ only in `step`, which for the auto-reset class generates a fresh world
and swaps it in on `done`. The esbench core already resets once on `done`, so
stepping through the auto-reset `step` would reset twice (and generate two
worlds per step, the most expensive part of craftax). This adapter therefore
builds the no-auto-reset class for every name and steps it with `step_env`:
the transitions, rewards and done flags are the ones the auto-reset variant
produces before its own reset, and the episode returns the core reports are the
true ones.

`done` is craftax's `is_game_over`, which includes reaching
`params.max_timesteps` (10,000 for Classic, 100,000 for Craftax); the spec's
`max_episode_steps` is that same number.

Rendering draws craftax's own pixel view (the agent's window and inventory) at
craftax's `BLOCK_PIXEL_SIZE_IMG` (16 px a block), doubled: 288x288 px for
Classic, 416x352 (HxW) for Craftax.
"""

from __future__ import annotations

import importlib

import jax
import numpy as np
from craftax.craftax_env import make_craftax_env_from_name

from esbench.envs.core import Discrete, Env, EnvSpec, UnknownEnvError, build_env, rgb_frame

# Short side of a rendered frame, in pixels (craftax's 16 px blocks make 144-176 px views).
FRAME_MIN_SIZE = 256

# Every name craftax's `make_craftax_env_from_name` knows (it keeps no public list).
CRAFTAX_NAMES: tuple[str, ...] = tuple(
    f"Craftax-{game}{obs}{reset}-v1"
    for game in ("", "Classic-")
    for obs in ("Symbolic", "Pixels")
    for reset in ("-AutoReset", "")
)


def pixel_renderer(name: str):
    """state -> u8[H, W, 3] by craftax's own pixel renderer (Classic's for the Classic ids)."""
    game = "craftax_classic" if name.startswith("Craftax-Classic") else "craftax"
    pixels = None

    def render(state) -> np.ndarray:
        nonlocal pixels
        if pixels is None:  # built on first use: it loads every texture, which training never needs
            renderer = importlib.import_module(f"craftax.{game}.renderer")
            block_size = importlib.import_module(f"craftax.{game}.constants").BLOCK_PIXEL_SIZE_IMG
            pixels = jax.jit(renderer.make_craftax_pixel_renderer(block_size))
        return rgb_frame(pixels(state), FRAME_MIN_SIZE)

    return render


def make_craftax_env(name: str, env_id: str | None = None) -> Env:
    if name not in CRAFTAX_NAMES:
        raise UnknownEnvError(
            f"unknown craftax environment {name!r}; craftax has: {', '.join(CRAFTAX_NAMES)}"
        )
    # The no-auto-reset class underneath (see the module docstring for why).
    env = make_craftax_env_from_name(name.replace("-AutoReset", ""), auto_reset=False)
    params = env.default_params

    def raw_reset(key):
        return env.reset_env(key, params)

    def raw_step(key, state, action):
        obs, state, reward, done, _ = env.step_env(key, state, action, params)
        return obs, state, reward, done

    spec = EnvSpec(
        id=env_id or f"craftax/{name}",
        suite="craftax",
        obs_dim=int(np.prod(env.observation_space(params).shape)),
        action=Discrete(int(env.num_actions)),
        max_episode_steps=int(params.max_timesteps),
    )
    return build_env(spec, raw_reset, raw_step, render=pixel_renderer(name))
