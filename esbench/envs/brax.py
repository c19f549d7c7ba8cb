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
compilation; humanoid is 4x slower (~1,000 env steps/s, 1-2 min to compile),
inverted_double_pendulum 6x faster. Use a GPU for real runs and keep CPU tests
to a handful of steps.

Rendering draws with MuJoCo's renderer as `brax.io.image.render_array` does
(from the model's "track" camera where it has one); it needs an OpenGL context. MuJoCo
picks its backend from `MUJOCO_GL` when it is imported: the default (GLFW) needs a
display; on a headless machine set `MUJOCO_GL=egl` (GPU driver or Mesa's EGL) or
`MUJOCO_GL=osmesa` (software, libOSMesa) before starting Python. Without one, the
renderer raises `RenderUnavailableError` saying so.
"""

from __future__ import annotations

import os

import brax.envs
import jax
import mujoco
import numpy as np

from esbench.envs.core import Box, Env, EnvSpec, UnknownEnvError, build_env

# brax's standard episode length (the default of `brax.envs.create`).
EPISODE_LENGTH = 1000
# Rendered frame size (within MuJoCo's default 640x480 offscreen buffer).
FRAME_HEIGHT, FRAME_WIDTH = 360, 480


class RenderUnavailableError(RuntimeError):
    """MuJoCo could not create the OpenGL context brax's renderer draws with."""


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


def mujoco_renderer(name: str, sys):
    """state -> u8[FRAME_HEIGHT, FRAME_WIDTH, 3], drawn by MuJoCo from brax's pipeline state."""
    model = sys.mj_model
    cameras = {model.camera(i).name for i in range(model.ncam)}
    camera = "track" if "track" in cameras else -1  # -1: MuJoCo's free camera
    renderer, data = None, None

    def render(state) -> np.ndarray:
        nonlocal renderer, data
        if renderer is None:
            renderer, data = _open_renderer(name, model), mujoco.MjData(model)
        # What `brax.io.image.render_array` does per state, with one renderer (and GL context)
        # kept for the clip: render_array opens a new one per call, ~5x slower.
        pipeline = jax.device_get(state.pipeline_state)
        data.qpos, data.qvel = pipeline.q, pipeline.qd
        if hasattr(pipeline, "mocap_pos") and hasattr(pipeline, "mocap_quat"):
            data.mocap_pos, data.mocap_quat = pipeline.mocap_pos, pipeline.mocap_quat
        mujoco.mj_forward(model, data)
        renderer.update_scene(data, camera=camera)
        return renderer.render()

    return render


def _open_renderer(name: str, model) -> "mujoco.Renderer":
    try:
        return mujoco.Renderer(model, height=FRAME_HEIGHT, width=FRAME_WIDTH)
    except Exception as err:  # FatalError, ImportError or RuntimeError, depending on the backend
        gl = os.environ.get("MUJOCO_GL")
        backend = f"MUJOCO_GL={gl}" if gl else "its default OpenGL backend (GLFW, which needs a display)"
        raise RenderUnavailableError(
            f"cannot render brax/{name}: MuJoCo could not open an OpenGL context with {backend} "
            f"({type(err).__name__}: {err}). On a headless machine set MUJOCO_GL=egl (a GPU driver or Mesa's EGL) "
            "or MUJOCO_GL=osmesa (software, needs libOSMesa) in the environment before starting Python."
        ) from err


def make_brax_env(name: str, env_id: str | None = None) -> Env:
    if name not in brax.envs._envs:
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
    return build_env(spec, raw_reset, raw_step, render=mujoco_renderer(name, env.sys))
