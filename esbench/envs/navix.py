"""navix adapter: any registered navix id, fully observable symbolic grid, discrete actions.

navix's symbolic observation is a u8[H, W, 3] grid of (object, colour, state)
triples; the esbench wrapper flattens it to float32.

Episodes end at navix's registered `max_steps`, 100 for every paper id (MiniGrid gives DoorKey-8x8
640). Learning signal (docs/learn16.md, `esbench envs --reward-stats`): the only reward is 1 at the
goal. In 100 steps uniformly random actions reached it in 0 of 64 DoorKey-8x8 episodes (key, door, then
goal) and 2 of 64 FourRooms ones, so PPO at the learn16 budget (1e5 and 3e5 env steps) learned
neither, while it learned Dynamic-Obstacles-6x6-Random (a 6x6 room). A reward too sparse for that
budget, no fault found.

Rendering draws navix's own fully observable RGB view (`navix.observations.rgb`,
8 px sprites a cell), enlarged to at least `FRAME_MIN_SIZE` px.
"""

from __future__ import annotations

import difflib

import jax
import jax.numpy as jnp
import navix
import numpy as np
from navix.environments.registry import registry
from navix.rendering.cache import TILE_SIZE, RenderingCache

from esbench.envs.core import Discrete, Env, EnvSpec, UnknownEnvError, build_env, rgb_frame

# Short side of a rendered frame, in pixels (an 8x8 grid is 64 px at navix's sprite size).
FRAME_MIN_SIZE = 256


def registered_ids() -> tuple[str, ...]:
    return tuple(sorted(registry()))


@jax.jit
def _rgb(timestep) -> jax.Array:
    # The adapter runs without navix's rendering cache (below); the RGB view needs it back.
    state = timestep.state.replace(cache=RenderingCache.init(timestep.state.grid))
    return navix.observations.rgb(state)


def render(timestep) -> np.ndarray:
    """u8[H, W, 3] of the whole grid, as navix draws it."""
    return rgb_frame(_rgb(timestep), FRAME_MIN_SIZE)


def make_navix_env(name: str, env_id: str | None = None) -> Env:
    if name not in registry():
        ids = registered_ids()
        close = difflib.get_close_matches(name, ids, n=5, cutoff=0.5)
        hint = f" Closest: {', '.join(close)}." if close else ""
        raise UnknownEnvError(f"unknown navix environment {name!r}.{hint} navix has: {', '.join(ids)}")
    env = navix.make(name, observation_fn=navix.observations.symbolic)

    # The rendering cache (tile images of the whole grid) only serves RGB observations;
    # an empty one keeps it out of the carried state and lets XLA drop its construction.
    no_cache = RenderingCache(patches=jnp.zeros((0, TILE_SIZE, TILE_SIZE, 3), jnp.uint8))

    # navix keeps a running return in `info`; esbench does its own bookkeeping,
    # and an empty dict keeps the state's structure and dtypes fixed across steps.
    def raw_reset(key):
        timestep = env.reset(key)
        timestep = timestep.replace(state=timestep.state.replace(cache=no_cache), info={})
        return timestep.observation, timestep

    # `_step` rather than `step`: navix's `step` auto-resets, the esbench wrapper does that once.
    # navix draws its own randomness (e.g. moving obstacles) from the key carried in its state.
    def raw_step(key, timestep, action):
        timestep = env._step(timestep, action).replace(info={})
        # Only a true termination: the wrapper truncates at max_steps itself, so a
        # time-out is reported as `info.truncated` rather than as a terminal state.
        return timestep.observation, timestep, timestep.reward, timestep.is_termination()

    spec = EnvSpec(
        id=env_id or f"navix/{name}",
        suite="navix",
        obs_dim=int(np.prod(env.observation_space.shape)),
        action=Discrete(int(env.action_space.n)),
        max_episode_steps=int(env.max_steps),
    )
    return build_env(spec, raw_reset, raw_step, render=render)
