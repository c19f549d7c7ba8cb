"""The one functional environment interface every suite adapter is put behind.

An adapter supplies two pure functions over the suite's own state:

    raw_reset(key)                      -> (obs, inner_state)
    raw_step(key, inner_state, action)  -> (obs, inner_state, reward, done)

`build_env` wraps them into an `Env` whose `step` auto-resets on `done`,
truncates at `spec.max_episode_steps`, flattens observations to float32,
checks the action's shape and dtype at trace time, and reports the finished
episode's return and length in `info`, so no algorithm re-implements episode
bookkeeping.

An adapter may also supply `render(inner_state) -> u8[H, W, 3]`, one RGB frame
of one unbatched suite state (a host-side function; `esbench.video` calls it).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@dataclasses.dataclass(frozen=True)
class Discrete:
    """`n` actions, passed to `step` as an int32 scalar in [0, n)."""

    n: int

    @property
    def kind(self) -> str:
        return "discrete"

    @property
    def size(self) -> int:
        return self.n

    def describe(self) -> str:
        return f"Discrete({self.n})"


@dataclasses.dataclass(frozen=True)
class Box:
    """A float32 vector of length `dim` with elementwise bounds [low, high]."""

    low: tuple[float, ...]
    high: tuple[float, ...]
    dim: int

    @staticmethod
    def make(low, high, dim: int) -> "Box":
        low = np.broadcast_to(np.asarray(low, np.float32), (dim,))
        high = np.broadcast_to(np.asarray(high, np.float32), (dim,))
        return Box(tuple(float(v) for v in low), tuple(float(v) for v in high), int(dim))

    @property
    def kind(self) -> str:
        return "continuous"

    @property
    def size(self) -> int:
        return self.dim

    def describe(self) -> str:
        lo, hi = min(self.low), max(self.high)
        return f"Box({self.dim}, [{lo:g}, {hi:g}])"


ActionSpace = Union[Discrete, Box]


class UnknownEnvError(KeyError):
    """An id that is neither registered nor of a supported suite; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would show the message in quotes
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    id: str
    suite: str
    obs_dim: int
    action: ActionSpace
    max_episode_steps: int


@struct.dataclass
class EnvState:
    """The adapter's own state plus the bookkeeping of the running episode."""

    inner: Any
    episode_return: jax.Array
    episode_length: jax.Array


class StepInfo(NamedTuple):
    """What `step` reports besides the transition.

    `episode_return` / `episode_length` are those of the episode that ended on
    this step and are meaningful only where `episode_done` is true (zero
    elsewhere). `truncated` tells a time-limit end from a terminal state.
    `final_obs` is the observation this step produced before any auto-reset
    (equal to the returned obs where the episode goes on), so a learner can
    bootstrap from the state a time limit cut off.
    """

    episode_done: jax.Array
    episode_return: jax.Array
    episode_length: jax.Array
    truncated: jax.Array
    final_obs: jax.Array


@dataclasses.dataclass(frozen=True, eq=False)
class Env:
    """A pure-functional environment: `reset` and `step` work under jit, vmap and scan."""

    spec: EnvSpec
    reset: Callable[[jax.Array], tuple[jax.Array, EnvState]]
    step: Callable[
        [jax.Array, EnvState, jax.Array], tuple[jax.Array, EnvState, jax.Array, jax.Array, StepInfo]
    ]
    raw_reset: Callable = dataclasses.field(repr=False)
    raw_step: Callable = dataclasses.field(repr=False)
    # step without the auto-reset, for rollouts that stop counting at the first `done`:
    # (key, state, action) -> (obs, state, reward, done); see `build_env`.
    step_within_episode: Callable = dataclasses.field(repr=False)
    # inner (suite) state of one unbatched env -> u8[H, W, 3] RGB frame; None where the suite draws nothing.
    render: Optional[Callable[[Any], np.ndarray]] = dataclasses.field(default=None, repr=False)

    def with_time_limit(self, max_episode_steps: int) -> "Env":
        """The same environment, truncated after `max_episode_steps` steps (for short tests and smoke runs)."""
        if int(max_episode_steps) < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        spec = dataclasses.replace(self.spec, max_episode_steps=int(max_episode_steps))
        return build_env(spec, self.raw_reset, self.raw_step, render=self.render)

    def __repr__(self) -> str:
        s = self.spec
        return (
            f"Env({s.id!r}, obs_dim={s.obs_dim}, action={s.action.describe()}, "
            f"max_episode_steps={s.max_episode_steps})"
        )


def flatten_obs(obs: Any) -> jax.Array:
    """Concatenate every leaf of an observation pytree into one float32 vector."""
    leaves = jax.tree_util.tree_leaves(obs)
    return jnp.concatenate([jnp.ravel(jnp.asarray(leaf)).astype(jnp.float32) for leaf in leaves])


def check_action(spec: EnvSpec, action: jax.Array) -> jax.Array:
    """Fail at trace time on an action of the wrong shape or dtype; clip boxes to bounds."""
    action = jnp.asarray(action)
    if isinstance(spec.action, Discrete):
        if action.shape != () or not jnp.issubdtype(action.dtype, jnp.integer):
            raise TypeError(
                f"{spec.id}: expected a discrete action as an integer scalar in [0, {spec.action.n}), "
                f"got shape {action.shape} dtype {action.dtype}"
            )
        return action.astype(jnp.int32)
    if action.shape != (spec.action.dim,) or not jnp.issubdtype(action.dtype, jnp.floating):
        raise TypeError(
            f"{spec.id}: expected a continuous action as a float vector of shape ({spec.action.dim},), "
            f"got shape {action.shape} dtype {action.dtype}"
        )
    low = jnp.asarray(spec.action.low, jnp.float32)
    high = jnp.asarray(spec.action.high, jnp.float32)
    return jnp.clip(action.astype(jnp.float32), low, high)


def rgb_frame(pixels: Any, min_size: int = 0) -> np.ndarray:
    """`pixels` (H, W, 3 or 4; values in [0, 255]) as a u8[H', W', 3] frame, alpha dropped.

    Small pixel-art frames (grid worlds at a few pixels a tile) are enlarged by whole-pixel
    repetition until their short side is at least `min_size`, so tiles stay sharp.
    """
    frame = np.asarray(pixels)
    if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) or (H, W, 4) image, got shape {frame.shape}")
    frame = np.clip(frame[..., :3], 0, 255).astype(np.uint8)
    factor = -(-int(min_size) // min(frame.shape[:2]))  # ceil
    if factor > 1:
        frame = frame.repeat(factor, axis=0).repeat(factor, axis=1)
    return frame


def build_env(
    spec: EnvSpec,
    raw_reset: Callable[[jax.Array], tuple[Any, Any]],
    raw_step: Callable[[jax.Array, Any, jax.Array], tuple[Any, Any, jax.Array, jax.Array]],
    render: Optional[Callable[[Any], np.ndarray]] = None,
) -> Env:
    """Wrap an adapter's raw functions (and its optional renderer) into the auto-resetting, bookkeeping `Env`."""

    def reset(key):
        obs, inner = raw_reset(key)
        state = EnvState(inner, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        return flatten_obs(obs), state

    def advance(key, state: EnvState, action):
        # One step of the running episode, without a reset: (obs, state, reward, terminal, truncated, reset_key).
        action = check_action(spec, action)
        step_key, reset_key = jax.random.split(key)
        obs, inner, reward, terminal = raw_step(step_key, state.inner, action)
        reward = jnp.asarray(reward, jnp.float32).reshape(())
        episode_length = state.episode_length + 1
        truncated = episode_length >= spec.max_episode_steps
        new_state = EnvState(inner, state.episode_return + reward, episode_length)
        return (
            flatten_obs(obs),
            new_state,
            reward,
            jnp.asarray(terminal, jnp.bool_).reshape(()),
            truncated,
            reset_key,
        )

    def step_within_episode(key, state: EnvState, action):
        # `step` up to the end of the episode (same key split, so the same trajectory), without the
        # reset: episode rollouts (ES fitness, evaluation) mask everything after the first `done`,
        # and a reset in every step is costly where resets are (craftax's world generation costs
        # ~5x a step, in compile time as in run time). After `done` the state steps on from the
        # terminal state and what it returns is meaningless.
        obs, new_state, reward, terminal, truncated, _ = advance(key, state, action)
        return obs, new_state, reward, terminal | truncated

    def step(key, state: EnvState, action):
        final_obs, ended, reward, terminal, truncated, reset_key = advance(key, state, action)
        done = terminal | truncated
        reset_obs, reset_inner = raw_reset(reset_key)
        obs = jnp.where(done, flatten_obs(reset_obs), final_obs)
        inner = jax.tree_util.tree_map(lambda r, s: jnp.where(done, r, s), reset_inner, ended.inner)
        new_state = EnvState(
            inner,
            jnp.where(done, 0.0, ended.episode_return).astype(jnp.float32),
            jnp.where(done, 0, ended.episode_length).astype(jnp.int32),
        )
        info = StepInfo(
            episode_done=done,
            episode_return=jnp.where(done, ended.episode_return, 0.0),
            episode_length=jnp.where(done, ended.episode_length, 0),
            truncated=truncated & ~terminal,
            final_obs=final_obs,
        )
        return obs, new_state, reward, done, info

    return Env(
        spec=spec,
        reset=reset,
        step=step,
        raw_reset=raw_reset,
        raw_step=raw_step,
        step_within_episode=step_within_episode,
        render=render,
    )
