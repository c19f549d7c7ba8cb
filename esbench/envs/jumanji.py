"""jumanji adapter (jumanji 1.1.2): Game2048-v1, Knapsack-v1, Snake-v1 and other discrete-action ids.

`make_jumanji_env(name)` wraps `jumanji.make(name)` behind `esbench.envs.core.build_env`.
The adapter never auto-resets; it reports `done = timestep.last()` and the core
wrapper does the rest (auto-reset, time limit, bookkeeping, action checks).
jumanji keeps its own PRNG key inside its state, so the per-step key the core
hands to `raw_step` is not used; trajectories are still a pure function of the
reset key and the actions.

Observations
    Every field of jumanji's `Observation` is kept, action masks included, and
    concatenated into one float32 vector in jumanji's declaration order of the
    observation class (NamedTuple `_fields`, dataclass `fields`), nested containers
    depth-first, each field raveled row-major; booleans become 0/1. (jax's own leaf
    order is not used because chex dataclasses flatten alphabetically.) For the
    paper environments:

    Game2048-v1  board (4x4 tile exponents, 0 = empty) | action_mask (4)           = 20
    Knapsack-v1  weights (50) | values (50) | packed_items (50) | action_mask (50) = 200
    Snake-v1     grid (12x12x5) | step_count (1) | action_mask (4)                 = 725

Actions and masks
    The policy's action is passed to jumanji unchanged, invalid or not; nothing is
    remapped to a valid action, so what an invalid action does is jumanji's rule:

    - Knapsack-v1: choosing an item that is already packed or heavier than the
      remaining budget ends the episode with reward 0.
    - Game2048-v1: a move that would not change the board is ignored: the board
      stays as it was (no new tile), the reward is 0, and the episode goes on.
    - Snake-v1: moving off the grid or into the body ends the episode.

    The masks are in the observation, so a policy can learn to respect them.

    A jumanji id whose action is several integers (MultiDiscreteArray or an
    integer BoundedArray, e.g. Tetris-v0's (rotation, column)) is exposed as one
    Discrete(prod(counts)); index i is decoded row-major like
    `np.unravel_index(i, counts)` (the last component changes fastest). This is a
    bijection, so every joint action stays reachable and none is added. Ids with
    continuous actions, one reward per agent, or more than `MAX_FLAT_ACTIONS`
    joint actions are refused with an error that says which of these applies.

Episode limits (`spec.max_episode_steps`)
    - Snake-v1 and any env with a `time_limit` attribute: that limit (Snake 4000).
      jumanji ends such episodes itself (as `last()`), and since step_count is in
      the observation that end is part of the observed state.
    - Knapsack-v1: `num_items` (50). Every step either packs a new item or ends
      the episode, so jumanji always ends it by then and the limit never cuts one.
    - Game2048-v1: no limit in jumanji, and ignored invalid moves could make an
      episode endless, so it is capped at `GAME2048_MAX_STEPS` = 4000 (see below).
    - any other id: `DEFAULT_MAX_EPISODE_STEPS` = 1000.

Rendering
    Every environment whose viewer is one of jumanji's matplotlib viewers (the paper's
    three among them) renders through a copy of that viewer switched to its
    "rgb_array" mode, drawing into its own `FRAME_INCHES` x `FRAME_INCHES` figure
    (500x500 px at matplotlib's default 100 dpi).

Learning signal (docs/learn16.md, `esbench envs --reward-stats`)
    Snake-v1 pays 1 a fruit and nothing else. Random actions eat in 8% of 64 episodes
    (0.27% of steps rewarded; death after 29 steps on average). In the learn16 budget
    (1e6 env steps, 1000-step episodes) PPO learned to survive (970 steps) and ate in
    8-17% of episodes, a gain within the noise of 3 seeds; EGGROLL's greedy population
    died within 9-14 steps. A reward too sparse for that budget, no fault found.
    Game2048-v1 and Knapsack-v1 were learned.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import jax
import jax.numpy as jnp
import jumanji
import numpy as np
from jumanji import specs
from jumanji.environments import Game2048, Knapsack
from jumanji.viewer import MatplotlibViewer

from esbench.envs.core import Discrete, Env, EnvSpec, UnknownEnvError, build_env, flatten_obs, rgb_frame

# 2048 has no time limit and an ignored (invalid) move does not advance the game.
# 4000 steps is jumanji's own Snake limit; it leaves room for a game that reaches the
# 4096 tile (every valid move spawns a tile worth 2.2 on average, so >= 1862 valid
# moves are needed) plus two thousand invalid ones.
GAME2048_MAX_STEPS = 4000
# Fallback for pass-through ids that have neither a time limit nor a known bound.
DEFAULT_MAX_EPISODE_STEPS = 1000
# A flattened joint action space larger than this would need an absurd policy head.
MAX_FLAT_ACTIONS = 10_000
# Side of a rendered frame's figure, in inches (jumanji's own 10 in would make 1000 px frames).
FRAME_INCHES = 5.0


class UnsupportedJumanjiEnv(ValueError):
    """A registered jumanji environment whose interface esbench cannot express honestly."""


def _fields_in_order(obs) -> list:
    """The observation's leaves in declaration order, nested containers depth-first."""
    if hasattr(obs, "_fields"):  # NamedTuple
        children = [getattr(obs, f) for f in obs._fields]
    elif dataclasses.is_dataclass(obs) and not isinstance(obs, type):
        children = [getattr(obs, f.name) for f in dataclasses.fields(obs)]
    elif isinstance(obs, dict):
        children = [obs[k] for k in sorted(obs)]
    elif isinstance(obs, (list, tuple)):
        children = list(obs)
    else:
        return [obs]
    return [leaf for child in children for leaf in _fields_in_order(child)]


def flatten_observation(obs) -> jax.Array:
    """One float32 vector of every observation field, in the order the module docstring documents."""
    return flatten_obs(_fields_in_order(obs))


def _action_counts(name: str, spec) -> tuple[np.ndarray, np.ndarray, tuple, np.dtype]:
    """Per-component (counts, minimum) of an integer action spec, with its shape and dtype."""
    if not isinstance(spec, specs.BoundedArray) or not np.issubdtype(np.dtype(spec.dtype), np.integer):
        raise UnsupportedJumanjiEnv(
            f"jumanji environment {name!r} has a {type(spec).__name__} action of dtype {spec.dtype} and shape "
            f"{spec.shape}; esbench's jumanji adapter supports only integer (discrete) actions"
        )
    shape = tuple(spec.shape)
    low = np.broadcast_to(np.asarray(spec.minimum, np.int64), shape).ravel()
    high = np.broadcast_to(np.asarray(spec.maximum, np.int64), shape).ravel()
    return high - low + 1, low, shape, np.dtype(spec.dtype)


def _time_limit(env) -> int:
    if hasattr(env, "time_limit"):
        return int(env.time_limit)
    if isinstance(env, Knapsack):
        return int(env.num_items)
    if isinstance(env, Game2048):
        return GAME2048_MAX_STEPS
    return DEFAULT_MAX_EPISODE_STEPS


def viewer_renderer(name: str, env):
    """state -> u8[H, W, 3] by the env's own matplotlib viewer; None if it has none."""
    viewer = getattr(env, "_viewer", None)  # jumanji offers no public handle on an env's viewer
    if not isinstance(viewer, MatplotlibViewer):
        return None
    # A copy, so the env's own viewer keeps its mode and its figure; every viewer's `render`
    # returns `self._display(fig)`, which in rgb_array mode is the figure's RGBA buffer.
    viewer = copy.copy(viewer)
    viewer._name = f"esbench {name}"
    viewer.figure_size = (FRAME_INCHES, FRAME_INCHES)
    viewer._display = viewer._display_rgb_array

    def render(state) -> np.ndarray:
        return rgb_frame(viewer.render(jax.device_get(state)))

    return render


def make_jumanji_env(name: str, env_id: str | None = None) -> Env:
    registered = sorted(jumanji.registered_environments())
    if name not in registered:
        raise UnknownEnvError(f"unknown jumanji environment {name!r}; jumanji has: {', '.join(registered)}")
    env = jumanji.make(name)

    counts, low, action_shape, action_dtype = _action_counts(name, env.action_spec)
    n_actions = math.prod(int(c) for c in counts)
    if n_actions > MAX_FLAT_ACTIONS:
        raise UnsupportedJumanjiEnv(
            f"jumanji environment {name!r} has {counts.size} action components with counts {counts.tolist()}, "
            f"i.e. {n_actions} joint actions as one Discrete(n); esbench refuses more than {MAX_FLAT_ACTIONS}"
        )
    # Row-major place values: component k of index i is (i // strides[k]) % counts[k].
    strides = np.append(np.cumprod(counts[::-1])[::-1][1:], 1)
    counts_j, low_j, strides_j = (jnp.asarray(x, jnp.int32) for x in (counts, low, strides))

    def to_jumanji_action(action):
        parts = (action // strides_j) % counts_j + low_j
        return parts.reshape(action_shape).astype(action_dtype)

    def raw_reset(key):
        state, timestep = env.reset(key)
        return flatten_observation(timestep.observation), state

    def raw_step(key, state, action):
        del key  # jumanji draws its randomness from the key inside `state`
        state, timestep = env.step(state, to_jumanji_action(action))
        return flatten_observation(timestep.observation), state, timestep.reward, timestep.last()

    obs_shape, state_shape = jax.eval_shape(raw_reset, jax.random.PRNGKey(0))
    step_shapes = jax.eval_shape(raw_step, jax.random.PRNGKey(0), state_shape, jnp.zeros((), jnp.int32))
    reward_shape = step_shapes[2].shape
    if reward_shape != ():
        raise UnsupportedJumanjiEnv(
            f"jumanji environment {name!r} returns one reward per agent (shape {reward_shape}); "
            "esbench's interface has a single scalar reward and the adapter will not choose how to combine them"
        )

    spec = EnvSpec(
        id=env_id or f"jumanji/{name}",
        suite="jumanji",
        obs_dim=int(obs_shape.shape[0]),
        action=Discrete(n_actions),
        max_episode_steps=_time_limit(env),
    )
    return build_env(spec, raw_reset, raw_step, render=viewer_renderer(name, env))
