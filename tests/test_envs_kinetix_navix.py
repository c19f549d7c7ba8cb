"""kinetix and navix adapters: specs against the suites' own reports, fixed-level
resets, time-limit handling, pass-through ids and unknown names.

Kinetix step programs take about a minute to compile on a 2-core CPU, so only
one kinetix step is compiled here (the smallest level); the generic rollout
contract lives in test_env_contract.py.
"""

import json
import os

import jax
import jax.numpy as jnp
import navix
import numpy as np
import pytest
from kinetix.environment import ActionType, ObservationType, static_env_params_from_size
from kinetix.environment import make_kinetix_env as kinetix_make_env
from kinetix.util.saving import BASE_DIR as KINETIX_LEVELS
from kinetix.util.saving import load_from_json_file

from esbench.envs import Box, Discrete, UnknownEnvError, make
from esbench.envs.kinetix import available_levels

KINETIX_PAPER = ("l/hard_pinball", "m/h17_thrustcontrol_left", "s/h1_thrust_over_ball")
NAVIX_PAPER = {
    "navix/DoorKey-8x8": "Navix-DoorKey-8x8-v0",
    "navix/Dynamic-Obstacles-6x6-Random": "Navix-Dynamic-Obstacles-6x6-Random-v0",
    "navix/FourRooms": "Navix-FourRooms-v0",
}


def kinetix_reference(level_name):
    """kinetix's own env for a level, built without esbench: (env, level state, env params)."""
    level, _, params = load_from_json_file(os.path.join(KINETIX_LEVELS, level_name + ".json"))
    static = static_env_params_from_size(level_name.split("/")[0])
    env = kinetix_make_env(
        action_type=ActionType.CONTINUOUS,
        observation_type=ObservationType.SYMBOLIC_FLAT,
        reset_fn=None,
        env_params=params,
        static_env_params=static,
    )
    return env, level, params


# ---------------------------------------------------------------- kinetix


@pytest.mark.parametrize("level_name", KINETIX_PAPER)
def test_kinetix_spec_matches_kinetix(level_name):
    env = make(f"kinetix/{level_name}")
    ref, _, params = kinetix_reference(level_name)
    spec = env.spec
    assert spec.id == f"kinetix/{level_name}" and spec.suite == "kinetix"
    assert spec.obs_dim == int(np.prod(ref.observation_space(params).shape))
    space = ref.action_space(params)
    assert isinstance(spec.action, Box)
    assert (
        spec.action.dim
        == space.shape[0]
        == ref.static_env_params.num_motor_bindings + ref.static_env_params.num_thruster_bindings
    )
    np.testing.assert_array_equal(spec.action.low, np.asarray(space.low, np.float32))
    np.testing.assert_array_equal(spec.action.high, np.asarray(space.high, np.float32))
    with open(os.path.join(KINETIX_LEVELS, level_name + ".json")) as f:
        assert spec.max_episode_steps == json.load(f)["env_params"]["max_timesteps"]


@pytest.mark.parametrize("level_name", KINETIX_PAPER)
def test_kinetix_reset_is_the_fixed_level_for_every_key(level_name):
    env = make(f"kinetix/{level_name}")
    ref, level, _ = kinetix_reference(level_name)
    reset = jax.jit(env.reset)
    obs_a, state_a = reset(jax.random.PRNGKey(0))
    obs_b, state_b = reset(jax.random.PRNGKey(12345))
    expected_obs = np.asarray(jax.jit(ref.get_obs)(level), np.float32)
    assert obs_a.shape == (env.spec.obs_dim,) and obs_a.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(obs_a), expected_obs)
    np.testing.assert_array_equal(np.asarray(obs_b), expected_obs)
    level_leaves = jax.tree_util.tree_leaves(level)
    for state in (state_a, state_b):
        leaves = jax.tree_util.tree_leaves(state.inner)
        assert len(leaves) == len(level_leaves)
        for got, want in zip(leaves, level_leaves):
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        assert int(state.episode_length) == 0 and float(state.episode_return) == 0.0


def test_kinetix_time_limit_is_a_truncation_not_a_terminal():
    # kinetix itself would call the step that reaches max_timesteps terminal; esbench
    # truncates there instead, so PPO can bootstrap through time-outs.
    env = make("kinetix/s/h1_thrust_over_ball")
    limit = env.spec.max_episode_steps
    _, state = env.reset(jax.random.PRNGKey(0))
    state = state.replace(
        inner=state.inner.replace(timestep=jnp.int32(limit - 1)), episode_length=jnp.int32(limit - 1)
    )
    obs, new_state, reward, done, info = jax.jit(env.step)(
        jax.random.PRNGKey(1), state, jnp.zeros(6, jnp.float32)
    )
    assert bool(done) and bool(info.episode_done) and bool(info.truncated)
    assert int(info.episode_length) == limit
    assert float(info.episode_return) == pytest.approx(float(reward))
    # auto-reset back to the fixed level
    assert int(new_state.inner.timestep) == 0 and int(new_state.episode_length) == 0
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(jax.jit(env.reset)(jax.random.PRNGKey(7))[0]))


def test_kinetix_passes_any_bundled_level_through():
    levels = available_levels()
    assert set(KINETIX_PAPER) <= set(levels)
    for size in ("s", "m", "l"):
        on_disk = sorted(
            f[:-5] for f in os.listdir(os.path.join(KINETIX_LEVELS, size)) if f.endswith(".json")
        )
        assert sorted(n.split("/", 1)[1] for n in levels if n.startswith(size + "/")) == on_disk
    env = make("kinetix/m/h0_unicycle")
    ref, level, params = kinetix_reference("m/h0_unicycle")
    assert env.spec.id == "kinetix/m/h0_unicycle"
    assert env.spec.obs_dim == int(np.prod(ref.observation_space(params).shape))
    obs, _ = jax.jit(env.reset)(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(jax.jit(ref.get_obs)(level), np.float32))


@pytest.mark.parametrize(
    "bad", ["kinetix/s/no_such_level", "kinetix/xl/h1_thrust_over_ball", "kinetix/h1_thrust_over_ball"]
)
def test_kinetix_unknown_level_lists_the_levels(bad):
    with pytest.raises(UnknownEnvError) as err:
        make(bad)
    assert isinstance(err.value, KeyError)
    message = str(err.value)
    assert "s/h1_thrust_over_ball" in message and "l/hard_pinball" in message


# ---------------------------------------------------------------- navix


@pytest.mark.parametrize("env_id", list(NAVIX_PAPER))
def test_navix_spec_matches_navix(env_id):
    env = make(env_id)
    ref = navix.make(NAVIX_PAPER[env_id], observation_fn=navix.observations.symbolic)
    spec = env.spec
    assert spec.id == env_id and spec.suite == "navix"
    assert spec.obs_dim == int(np.prod(ref.observation_space.shape)) == ref.height * ref.width * 3
    assert spec.action == Discrete(len(ref.action_set)) and spec.action.n == int(ref.action_space.n)
    assert spec.max_episode_steps == ref.max_steps


@pytest.mark.parametrize("env_id", list(NAVIX_PAPER))
def test_navix_reset_is_navix_symbolic_and_deterministic(env_id):
    env = make(env_id)
    ref = navix.make(NAVIX_PAPER[env_id], observation_fn=navix.observations.symbolic)
    reset = jax.jit(env.reset)
    keys = [jax.random.PRNGKey(i) for i in range(4)]
    obs = [np.asarray(reset(k)[0]) for k in keys]
    np.testing.assert_array_equal(obs[0], np.asarray(reset(keys[0])[0]))
    ref_obs = jax.jit(lambda k: navix.observations.symbolic(ref.reset(k).state))
    for k, o in zip(keys, obs):
        assert o.dtype == np.float32
        np.testing.assert_array_equal(o, np.asarray(ref_obs(k), np.float32).ravel())
    # every one of these layouts is drawn at random, so distinct keys give distinct starts
    assert any(not np.array_equal(obs[0], o) for o in obs[1:])


def test_navix_goal_is_terminal_and_max_steps_is_a_truncation():
    env = make("navix/Navix-Empty-5x5-v0")
    assert env.spec.id == "navix/Navix-Empty-5x5-v0" and env.spec.obs_dim == 5 * 5 * 3
    limit = env.spec.max_episode_steps

    @jax.jit
    def run(key, actions):
        _, state = env.reset(key)

        def body(state, xs):
            step_key, action = xs
            _, state, reward, done, info = env.step(step_key, state, action)
            return state, (reward, done, info)

        return jax.lax.scan(body, state, (jax.random.split(key, actions.shape[0]), actions))[1]

    # agent starts at (1, 1) facing east, goal at (3, 3): forward x2, turn right, forward x2
    to_goal = [2, 2, 1, 2, 2]
    reward, done, info = run(jax.random.PRNGKey(0), jnp.asarray(to_goal + [0] * limit, jnp.int32))
    reward, done = np.asarray(reward), np.asarray(done)
    np.testing.assert_array_equal(np.nonzero(done)[0], [len(to_goal) - 1, len(to_goal) + limit - 1])
    first, second = np.nonzero(done)[0]
    assert reward[first] == 1.0 and not bool(info.truncated[first]) and int(info.episode_length[first]) == 5
    assert float(info.episode_return[first]) == 1.0
    # spinning in place never reaches the goal: the episode ends by time limit only
    assert bool(info.truncated[second]) and int(info.episode_length[second]) == limit
    assert float(info.episode_return[second]) == 0.0


def test_navix_passes_any_registered_id_through():
    env = make("navix/Navix-Empty-8x8-v0")
    ref = navix.make("Navix-Empty-8x8-v0")
    assert env.spec.id == "navix/Navix-Empty-8x8-v0" and env.spec.suite == "navix"
    assert env.spec.obs_dim == 8 * 8 * 3 and env.spec.action == Discrete(int(ref.action_space.n))
    assert env.spec.max_episode_steps == ref.max_steps


def test_navix_unknown_id_lists_registered_ids():
    with pytest.raises(UnknownEnvError) as err:
        make("navix/Navix-No-Such-Env-v0")
    message = str(err.value)
    for name in NAVIX_PAPER.values():
        assert name in message
    assert "Navix-Empty-8x8-v0" in message
