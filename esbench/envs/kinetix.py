"""kinetix adapter: one fixed premade level, symbolic-flat observations, continuous actions.

`name` is a level bundled with kinetix, written `<size>/<level>` with size one
of s, m, l (e.g. "s/h1_thrust_over_ball"). Every reset returns that level,
never a sampled one. Everything loads from the installed package.

Rendering draws kinetix's own pixel renderer at full resolution (downscale 1,
about 500x500 px; the agent-facing pixel observations use downscale 4), turned
from kinetix's (x, y-up) layout into image rows and columns.

Learning signal (docs/learn16.md, `esbench envs --reward-stats`): a level pays +1 when its goal shapes
touch and -1 when a bad shape is touched, both ending the episode, plus a dense shaping term of about
+-0.01 a step; a time-out comes at the level's 256 steps. Uniformly random actions reached no goal in 64
episodes of any of the three paper levels (no step reward near +1); on hard_pinball and
h1_thrust_over_ball they hit the -1 within 106 and 27 steps on average. In the learn16 budget (PPO, 5e4-1e5
env steps: 24-48 updates) no level was learned by the half-width rule: PPO learned to avoid the -1 and
to time out, which the untrained greedy policy mostly did already, and one seed of three solved
h1_thrust_over_ball (return 1.33 in 22 steps). Signs, episode ends and time-outs behaved as kinetix
defines them: a reward too sparse for that budget, no fault found.
"""

from __future__ import annotations

import difflib
import os

import jax.numpy as jnp
import numpy as np
from kinetix.environment import ActionType, ObservationType, static_env_params_from_size
from kinetix.environment import make_kinetix_env as _kinetix_make_env
from kinetix.render import make_render_pixels
from kinetix.util.saving import BASE_DIR as LEVELS_DIR
from kinetix.util.saving import load_from_json_file

from esbench.envs.core import Box, Env, EnvSpec, UnknownEnvError, build_env, rgb_frame

SIZES = ("s", "m", "l")
# kinetix ends an episode when state.timestep >= max_timesteps; we move that
# limit out of reach so that `done` is a true terminal flag and the esbench
# wrapper alone truncates (at the level's own max_timesteps), which lets
# `info.truncated` tell a time-out from a goal or a failure.
_UNREACHABLE_TIMESTEP = int(np.iinfo(np.int32).max)


def available_levels() -> tuple[str, ...]:
    """Every premade level shipped with the installed kinetix, as `<size>/<level>`."""
    names = []
    for size in SIZES:
        folder = os.path.join(LEVELS_DIR, size)
        if os.path.isdir(folder):
            names += [
                f"{size}/{f[: -len('.json')]}" for f in sorted(os.listdir(folder)) if f.endswith(".json")
            ]
    return tuple(names)


def _unknown(name: str) -> Exception:
    levels = available_levels()
    close = difflib.get_close_matches(name, levels, n=5, cutoff=0.5)
    hint = f" Closest: {', '.join(close)}." if close else ""
    return UnknownEnvError(
        f"unknown kinetix level {name!r}.{hint} Names are '<size>/<level>' with size one of "
        f"{', '.join(SIZES)} (folders in {LEVELS_DIR}); kinetix has: {', '.join(levels)}"
    )


def load_level(name: str):
    """(level state, static params, env params) of the bundled level `name`."""
    name = name[: -len(".json")] if name.endswith(".json") else name
    size, _, level = name.partition("/")
    if size not in SIZES or not level or not os.path.isfile(os.path.join(LEVELS_DIR, size, level + ".json")):
        raise _unknown(name)
    state, level_static, env_params = load_from_json_file(os.path.join(LEVELS_DIR, size, level + ".json"))
    static = static_env_params_from_size(size)
    if level_static != static:
        raise ValueError(
            f"kinetix level {name!r} was saved with static params {level_static}, "
            f"which differ from kinetix's {size!r} size params {static}"
        )
    # Strongly typed arrays, so the state's leaves keep one dtype across reset and step inside scan.
    state = state.replace(
        timestep=jnp.asarray(np.int32(state.timestep)),
        last_distance=jnp.asarray(np.float32(state.last_distance)),
    )
    return state, static, env_params


def pixel_renderer(env_params, static_params):
    """state -> u8[H, W, 3] by kinetix's pixel renderer, upright."""
    pixels = None

    def render(state) -> np.ndarray:
        nonlocal pixels
        if pixels is None:  # built on first use: it allocates screens and textures training never needs
            pixels = make_render_pixels(env_params, static_params.replace(downscale=1))
        # kinetix draws into [x, y] with y up (as its own video logging undoes): rows are y, top first.
        return rgb_frame(np.asarray(pixels(state)).transpose(1, 0, 2)[::-1])

    return render


def make_kinetix_env(name: str, env_id: str | None = None) -> Env:
    level, static_params, env_params = load_level(name)
    max_episode_steps = int(env_params.max_timesteps)
    run_params = env_params.replace(max_timesteps=_UNREACHABLE_TIMESTEP)
    env = _kinetix_make_env(
        action_type=ActionType.CONTINUOUS,
        observation_type=ObservationType.SYMBOLIC_FLAT,
        reset_fn=lambda key: level,
        env_params=run_params,
        static_env_params=static_params,
        auto_reset=False,
    )

    # step_env/reset_env rather than step/reset: the esbench wrapper does the auto-reset once.
    def raw_reset(key):
        return env.reset_env(key, run_params, override_reset_state=None)

    def raw_step(key, state, action):
        obs, state, reward, done, _ = env.step_env(key, state, action, run_params)
        return obs, state, reward, done

    space = env.action_space(run_params)
    obs_space = env.observation_space(run_params)
    spec = EnvSpec(
        id=env_id or f"kinetix/{name}",
        suite="kinetix",
        obs_dim=int(np.prod(obs_space.shape)),
        action=Box.make(np.asarray(space.low), np.asarray(space.high), int(np.prod(space.shape))),
        max_episode_steps=max_episode_steps,
    )
    return build_env(spec, raw_reset, raw_step, render=pixel_renderer(env_params, static_params))
