"""brax adapter (brax 0.14: `brax.envs.get_environment`, default 'generalized' backend).

brax environments never end an episode by time themselves (brax's training
code adds an `EpisodeWrapper` for that), so the spec carries brax's standard
episode length of 1000 steps and the esbench core truncates there; `done` is
brax's own `state.done` (e.g. ant falling over).

Actions are bounded by the actuators' control range (`sys.actuator.ctrl_range`,
the range brax clips controls to): [-1, 1] for ant, hopper and
inverted_double_pendulum, [-0.4, 0.4] for humanoid. An actuator without a
control limit gets [-1, 1], the range brax's own policies act in.

Cost: brax physics is slow on CPU. On this project's shared 2-core CPU,
`jit(vmap(scan(step)))` over 64 ant environments made about 50-70 vectorised
steps per second (3,000-4,500 environment steps/s) after about a minute of
compilation; humanoid was 4x slower (~1,000 env steps/s, 1-2 min to compile),
inverted_double_pendulum 6x faster. Use a GPU for real runs and keep CPU tests
to a handful of steps.
"""

from __future__ import annotations

import brax.envs
import jax
import numpy as np

from esbench.envs.core import Box, Env, EnvSpec, build_env

# brax's standard episode length (the default of `brax.envs.create`).
EPISODE_LENGTH = 1000


def brax_env_names() -> tuple[str, ...]:
    # brax 0.14 keeps its registry in a module-level dict and offers no public listing.
    return tuple(sorted(brax.envs._envs))


def action_bounds(env) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension [low, high] of brax's actuator control range; [-1, 1] where unlimited."""
    dim = int(env.action_size)
    low, high = -np.ones(dim, np.float32), np.ones(dim, np.float32)
    sys = getattr(env, "sys", None)
    if sys is not None and dim > 0:
        ctrl = np.asarray(sys.actuator.ctrl_range, np.float32).reshape(dim, 2)
        limited = np.isfinite(ctrl).all(axis=1) & (ctrl[:, 0] < ctrl[:, 1])
        low = np.where(limited, ctrl[:, 0], low)
        high = np.where(limited, ctrl[:, 1], high)
    return low, high


def make_brax_env(name: str, env_id: str | None = None) -> Env:
    if name not in brax.envs._envs:
        from esbench.envs.registry import UnknownEnvError

        raise UnknownEnvError(f"unknown brax environment {name!r}; brax has: {', '.join(brax_env_names())}")
    env = brax.envs.get_environment(name)
    low, high = action_bounds(env)

    def raw_reset(key):
        state = env.reset(key)
        return state.obs, state

    # brax's step is deterministic given the state: the key is not needed.
    def raw_step(key, state, action):
        state = env.step(state, action)
        return state.obs, state, state.reward, state.done

    # eval_shape traces reset without running it (brax's `observation_size` runs a reset eagerly).
    obs_shape = jax.eval_shape(raw_reset, jax.random.PRNGKey(0))[0]
    obs_dim = sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(obs_shape))
    spec = EnvSpec(
        id=env_id or f"brax/{name}",
        suite="brax",
        obs_dim=obs_dim,
        action=Box.make(low, high, int(env.action_size)),
        max_episode_steps=EPISODE_LENGTH,
    )
    return build_env(spec, raw_reset, raw_step)
