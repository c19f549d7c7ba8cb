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
"""

from __future__ import annotations

import numpy as np
from craftax.craftax_env import make_craftax_env_from_name

from esbench.envs.core import Discrete, Env, EnvSpec, build_env

# Every name craftax's `make_craftax_env_from_name` knows (it keeps no public list).
CRAFTAX_NAMES: tuple[str, ...] = tuple(
    f"Craftax-{game}{obs}{reset}-v1"
    for game in ("", "Classic-")
    for obs in ("Symbolic", "Pixels")
    for reset in ("-AutoReset", "")
)


def make_craftax_env(name: str, env_id: str | None = None) -> Env:
    if name not in CRAFTAX_NAMES:
        from esbench.envs.registry import UnknownEnvError

        raise UnknownEnvError(f"unknown craftax environment {name!r}; craftax has: {', '.join(CRAFTAX_NAMES)}")
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
    return build_env(spec, raw_reset, raw_step)
