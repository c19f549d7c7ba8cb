"""Videos of trained policies (`esbench.video`) and the suites' renderers (`Env.render`).

Convention checked here: a clip has one frame per state, the reset state
included, so an episode of L steps makes L + 1 frames.
"""

import os
import subprocess
import sys

import imageio.v2 as imageio
import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esbench.algorithms import networks
from esbench.algorithms.evaluate import run_episode
from esbench.envs import Discrete, EnvSpec, build_env, make, register, registry
from esbench.envs.core import rgb_frame
from esbench.results import ResultStore, TrainedPolicy, load_trained_policy
from esbench.runner import TrialSpec, run_trial
from esbench.video import RENDERED_SUITES, NoRendererError, record_episode, render_policy

SPEC = TrialSpec(
    env="CartPole-v1",
    algo="eggroll",
    hparams={"pop_size": 8, "rank": 1, "layer_size": 8, "n_layers": 1, "n_parallel_evaluations": 1},
    seeds=(0,),
    env_steps=8 * 20 * 2,
    num_logs=1,
    eval_episodes=2,
    max_episode_steps=20,
)
CARTPOLE_FRAME = (400, 600, 3)  # gymnasium's CartPole canvas


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    result = run_trial(SPEC, progress=False)
    ResultStore(out).write(result)
    return out, result.config["trial_id"]


def test_gif_shows_every_state_of_the_evaluated_episode(stored, tmp_path):
    results, trial_id = stored
    path = render_policy(results, trial_id, seed=0, out=tmp_path / "clip.gif", fps=25).path
    assert path == tmp_path / "clip.gif" and os.listdir(tmp_path) == ["clip.gif"]  # no temporary file left

    policy = load_trained_policy(results, trial_id, 0)
    length = int(
        run_episode(jax.random.PRNGKey(0), policy.env, policy.act).lengths
    )  # the same episode, by evaluation
    frames = iio.imread(path, index=None, mode="RGB")
    assert frames.shape[1:] == CARTPOLE_FRAME and frames.dtype == np.uint8
    assert not np.array_equal(frames[0], frames[-1])  # the cart and pole moved
    # Pillow stores a run of identical frames (a cart moving less than a pixel) as one longer
    # frame, so the states shown are counted in time: 40 ms each at 25 fps.
    durations = [iio.immeta(path, index=i)["duration"] for i in range(len(frames))]
    assert sum(durations) == 40 * (length + 1)


def test_mp4_stops_at_max_steps(stored, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    results, trial_id = stored
    policy = load_trained_policy(results, trial_id, 0)
    clip = record_episode(policy, tmp_path / "clip.mp4", max_steps=4)
    assert (clip.frames, clip.episode_length) == (5, 4)
    frames = imageio.mimread(clip.path)
    assert len(frames) == 5 and frames[0].shape == CARTPOLE_FRAME


def test_unknown_seed_or_format_writes_nothing(stored, tmp_path):
    results, trial_id = stored
    with pytest.raises(ValueError, match=r"seed = 7 is invalid for trial .*; allowed: its seeds"):
        render_policy(results, trial_id, seed=7, out=tmp_path / "clip.gif")
    with pytest.raises(ValueError, match=r"\.gif, \.mp4"):
        render_policy(results, trial_id, out=tmp_path / "clip.avi")
    assert os.listdir(tmp_path) == []


def test_env_without_renderer_is_refused_naming_the_suites_that_render(tmp_path, monkeypatch):
    for table in ("_REGISTRY", "_BUILT"):  # the toy id leaves the registry with the test
        monkeypatch.setattr(registry, table, dict(getattr(registry, table)))
    spec = EnvSpec(id="test/NoRender-v0", suite="custom", obs_dim=1, action=Discrete(2), max_episode_steps=3)
    state = jnp.zeros(1, jnp.float32)
    register(
        spec.id,
        lambda: build_env(spec, lambda key: (state, state), lambda key, s, a: (s, s, 0.0, False)),
        overwrite=True,
    )
    env = make(spec.id)
    settings = networks.PolicySettings()
    params = networks.init_policy(jax.random.PRNGKey(0), 1, spec.action, settings)
    policy = TrainedPolicy(env, params, settings.activation, settings.deterministic_policy)
    with pytest.raises(NoRendererError) as err:
        record_episode(policy, tmp_path / "clip.gif")
    message = str(err.value)
    assert message.startswith(
        "environment test/NoRender-v0 (suite custom) has no renderer; esbench renders: "
    )
    assert all(suite in message for suite in ("gymnax", "brax", "craftax", "jumanji", "kinetix", "navix"))
    assert set(RENDERED_SUITES) == {"gymnax", "brax", "craftax", "jumanji", "kinetix", "navix"}
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "env_id, shape",
    [
        ("CartPole-v1", CARTPOLE_FRAME),
        ("navix/DoorKey-8x8", (256, 256, 3)),  # 8x8 cells of 8 px, enlarged 4x
        ("jumanji/Snake-v1", (500, 500, 3)),
    ],
)
def test_render_draws_one_state_and_tells_states_apart(env_id, shape):
    env = make(env_id)
    _, state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    step = jax.jit(env.step_within_episode)
    moved = state
    for t in range(
        3
    ):  # CartPole: push right (one step moves the cart less than a pixel); navix: turn; Snake: move
        _, moved, _, _ = step(jax.random.PRNGKey(t), moved, jnp.int32(1))
    first, second = env.render(state.inner), env.render(moved.inner)
    assert first.shape == second.shape == shape and first.dtype == np.uint8
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(env.render(state.inner), first)  # a function of the state alone


def test_time_limit_keeps_the_renderer():
    env = make("CartPole-v1")
    assert env.render is not None and env.with_time_limit(5).render is env.render


def test_rgb_frame_drops_alpha_and_enlarges_by_whole_pixels():
    pixels = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) * 20.0  # values 0..460, clipped to 255
    frame = rgb_frame(pixels, min_size=5)  # short side 2 -> factor 3
    assert frame.shape == (6, 9, 3) and frame.dtype == np.uint8
    expected = np.clip(pixels[..., :3], 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(frame[::3, ::3], expected)
    np.testing.assert_array_equal(frame[2::3, 2::3], expected)


@pytest.mark.skipif(
    bool(os.environ.get("DISPLAY")), reason="with a display, MuJoCo's default GLFW backend works"
)
def test_brax_without_opengl_says_what_is_needed():
    # A fresh interpreter: MuJoCo picks its OpenGL backend once, when it is imported.
    code = (
        "from esbench.envs import make\n"
        "try:\n    make('brax/inverted_double_pendulum').render(None)\n"
        "except Exception as err:\n    print(type(err).__name__, err)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MUJOCO_GL", "DISPLAY", "PYOPENGL_PLATFORM")}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    ).stdout
    assert "RenderUnavailableError cannot render brax/inverted_double_pendulum" in out, out
    assert "MUJOCO_GL=egl" in out and "MUJOCO_GL=osmesa" in out
