"""Videos of trained policies: roll out one episode of a stored trial's policy and write it as a GIF or MP4.

    esbench render RESULTS TRIAL_ID --seed S --out clip.gif

The episode is the one `esbench.algorithms.evaluate.run_episode` runs for the
same key (same key splits, `step_within_episode`, the policy acting as the
trial evaluated it: deterministic or sampled), so its length and return are the
evaluation's. A clip has one frame per state: the reset state, then the state
after each step, up to and including the step that ends the episode; an
episode of L steps makes L + 1 frames (`every=k` keeps every k-th of them, and
the last).
Frames are drawn by the environment's own renderer (`Env.render`).

GIFs are written by Pillow, which holds every frame until the end (H x W x 3
bytes each: cap long episodes with `max_steps` or thin them with `every`) and
merges identical consecutive frames into one longer frame; MP4s are streamed
through imageio-ffmpeg.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Iterator, NamedTuple, Optional

import imageio.v2 as imageio
import jax
import numpy as np

from esbench.envs import Env
from esbench.results.policies import TrainedPolicy, load_trained_policy
from esbench.results.store import atomic_file
from esbench.validation import ConfigError

# The suites whose adapters pass a renderer to `build_env` (and which of their ids get one).
RENDERED_SUITES = {
    "gymnax": "classic control: CartPole, Pendulum, Acrobot, MountainCar",
    "brax": "needs an OpenGL context, e.g. MUJOCO_GL=egl on a headless machine",
    "craftax": "all ids",
    "jumanji": "ids with a matplotlib viewer",
    "kinetix": "all levels",
    "navix": "all ids",
}
FORMATS = (".gif", ".mp4")
DEFAULT_FPS = 25  # 4 centiseconds a frame: GIF frame times are whole centiseconds


class NoRendererError(ConfigError):
    """The environment has no renderer, so no video can be made of it."""


class Clip(NamedTuple):
    path: Path
    frames: int  # frames written
    episode_length: int  # env steps in the episode (frames = episode_length + 1 when every == 1)
    episode_return: float
    env_id: str


def require_renderer(env: Env) -> None:
    if env.render is None:
        suites = "; ".join(f"{suite} ({which})" for suite, which in RENDERED_SUITES.items())
        raise NoRendererError(
            f"environment {env.spec.id} (suite {env.spec.suite}) has no renderer; esbench renders: {suites}"
        )


def episode_states(policy: TrainedPolicy, key: jax.Array, max_steps: Optional[int] = None) -> Iterator[tuple]:
    """(inner state, step, return so far) from the reset on, up to the state the episode ends in.

    Steps are a Python loop over one jitted step, so that frames can be drawn as states
    arrive and the loop can stop at `done` (the evaluation's scan runs all `max_steps`).
    """
    env = policy.env
    max_steps = int(max_steps or env.spec.max_episode_steps)
    reset_key, run_key = jax.random.split(key)  # as evaluate.run_episode splits it
    obs, state = jax.jit(env.reset)(reset_key)

    @jax.jit
    def step(step_key, obs, state):
        act_key, env_key = jax.random.split(step_key)
        return env.step_within_episode(env_key, state, policy.act(obs, act_key))

    episode_return = 0.0
    yield state.inner, 0, episode_return
    for t, step_key in enumerate(jax.random.split(run_key, max_steps), start=1):
        obs, state, reward, done = step(step_key, obs, state)
        episode_return += float(reward)
        yield state.inner, t, episode_return
        if done:
            return


def record_episode(
    policy: TrainedPolicy,
    out: str | os.PathLike = "clip.gif",
    *,
    episode: int = 0,
    max_steps: Optional[int] = None,
    fps: float = DEFAULT_FPS,
    every: int = 1,
) -> Clip:
    """Roll out one episode of `policy` (key `PRNGKey(episode)`) and write its frames to `out`.

    Nothing is written unless the whole clip is: frames go to a temporary file beside
    `out`, renamed onto it at the end.
    """
    env = policy.env
    require_renderer(env)
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"cannot write {out}: the video format is taken from the extension, one of {', '.join(FORMATS)}"
        )
    if suffix == ".mp4" and importlib.util.find_spec("imageio_ffmpeg") is None:
        raise ConfigError(
            f"cannot write {out}: MP4 needs imageio-ffmpeg (pip install imageio-ffmpeg); .gif needs nothing more"
        )
    if int(every) < 1:
        raise ConfigError(f"every = {every!r} is invalid; allowed: an integer >= 1")

    with atomic_file(out) as tmp:
        states = episode_states(policy, jax.random.PRNGKey(episode), max_steps)
        frames, length, ret = _write_frames(tmp, env, states, fps, int(every))
    return Clip(out, frames, length, ret, env.spec.id)


def _write_frames(path: Path, env: Env, states, fps: float, every: int) -> tuple[int, int, float]:
    """Draw every `every`-th state (and the last) into `path`; (frames, episode length, return)."""
    if path.suffix.lower() == ".gif":
        writer = imageio.get_writer(path, mode="I", duration=1000.0 / fps, loop=0)
    else:  # libx264 wants even sides: let imageio round them to multiples of 2, not 16
        writer = imageio.get_writer(path, mode="I", fps=fps, macro_block_size=2)
    frames, shape, t, ret = 0, None, 0, 0.0
    with writer:
        for inner, t, ret in states:
            frame = np.asarray(env.render(inner))
            if (
                frame.dtype != np.uint8
                or frame.ndim != 3
                or frame.shape[2] != 3
                or shape not in (None, frame.shape)
            ):
                raise ValueError(
                    f"{env.spec.id}: the renderer returned a {frame.dtype} frame of shape {frame.shape}; "
                    f"expected uint8 (H, W, 3){f' of shape {shape}, as the first frame' if shape else ''}"
                )
            shape = frame.shape
            if t % every == 0:
                writer.append_data(frame)
                frames += 1
        if t % every:  # the episode's last state, whatever `every` skips
            writer.append_data(frame)
            frames += 1
    return frames, t, ret


def render_policy(
    results_dir: str | os.PathLike,
    trial_id: str,
    seed: Optional[int] = None,
    out: str | os.PathLike = "clip.gif",
    max_steps: Optional[int] = None,
    fps: float = DEFAULT_FPS,
    *,
    episode: int = 0,
    every: int = 1,
) -> Clip:
    """Write a GIF/MP4 of one episode of the final policy of `seed` (default: the trial's first) of a stored trial."""
    policy = load_trained_policy(results_dir, trial_id, seed)
    return record_episode(policy, out, episode=episode, max_steps=max_steps, fps=fps, every=every)


def main(results: str | os.PathLike, trial_id: str, **options) -> Clip:
    """`esbench render`: write the clip (`options`: those of `render_policy`) and say what was written."""
    clip = render_policy(results, trial_id, **options)
    print(
        f"wrote {clip.path}: {clip.frames} frames of {clip.env_id}, "
        f"an episode of {clip.episode_length} steps with return {clip.episode_return:.2f}"
    )
    return clip
