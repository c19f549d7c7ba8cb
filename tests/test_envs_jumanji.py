"""jumanji adapter: specs of the paper envs, action-mask behaviour checked against jumanji, pass-through ids."""

import chex
import jax
import jax.numpy as jnp
import jumanji
import numpy as np
import pytest

from esbench.envs import Discrete, UnknownEnvError, make
from esbench.envs.jumanji import GAME2048_MAX_STEPS, UnsupportedJumanjiEnv, flatten_observation

# esbench id -> (jumanji id, observation fields in jumanji's declaration order, max_episode_steps)
PAPER = {
    "jumanji/Game2048-v1": ("Game2048-v1", ("board", "action_mask"), GAME2048_MAX_STEPS),
    "jumanji/Knapsack-v1": ("Knapsack-v1", ("weights", "values", "packed_items", "action_mask"), 50),
    "jumanji/Snake-v1": ("Snake-v1", ("grid", "step_count", "action_mask"), 4000),
}


def _concat_fields(obs, fields):
    return np.concatenate([np.ravel(np.asarray(getattr(obs, f))).astype(np.float32) for f in fields])


@pytest.mark.parametrize("env_id", list(PAPER))
def test_paper_env_spec_and_observation_layout(env_id):
    name, fields, max_steps = PAPER[env_id]
    env = make(env_id)
    raw = jumanji.make(name)
    obs_spec = raw.observation_spec
    assert tuple(obs_spec.generate_value()._fields) == fields
    assert env.spec.obs_dim == sum(int(np.prod(obs_spec[f].shape)) for f in fields)
    assert env.spec.action == Discrete(int(raw.action_spec.num_values))
    assert env.spec.max_episode_steps == max_steps
    assert env.spec.suite == "jumanji" and env.spec.id == env_id

    # The flat observation is jumanji's fields, concatenated in the documented order.
    key = jax.random.PRNGKey(7)
    obs, _ = env.reset(key)
    _, timestep = raw.reset(key)
    np.testing.assert_array_equal(np.asarray(obs), _concat_fields(timestep.observation, fields))


def test_snake_limit_is_jumanjis_own():
    assert make("jumanji/Snake-v1").spec.max_episode_steps == jumanji.make("Snake-v1").time_limit


def test_knapsack_invalid_item_ends_episode_with_zero_reward():
    env = make("jumanji/Knapsack-v1")
    raw = jumanji.make("Knapsack-v1")
    step = jax.jit(env.step)
    obs, state = env.reset(jax.random.PRNGKey(0))
    inner = state.inner
    item = 3
    # Packing a fresh item is valid (weights <= 1 < budget 12.5): dense reward = its value.
    assert bool(inner.weights[item] <= inner.remaining_budget)
    _, state, reward, done, _ = step(jax.random.PRNGKey(1), state, jnp.int32(item))
    assert not bool(done)
    assert float(reward) == pytest.approx(float(inner.values[item]))

    # The same item again is invalid: the episode ends, reward 0, nothing remapped.
    inner_before = state.inner
    _, after, reward, done, info = step(jax.random.PRNGKey(2), state, jnp.int32(item))
    assert bool(done) and float(reward) == 0.0
    assert bool(info.episode_done) and not bool(info.truncated) and int(info.episode_length) == 2
    assert float(info.episode_return) == pytest.approx(float(inner.values[item]))
    _, ts = raw.step(inner_before, jnp.int32(item))  # jumanji itself says the same
    assert bool(ts.last()) and float(ts.reward) == 0.0

    # An unpacked item heavier than the remaining budget is invalid too.
    other = 10
    tight = state.replace(inner=inner_before.replace(remaining_budget=inner_before.weights[other] / 2))
    assert not bool(inner_before.packed_items[other])
    _, _, reward, done, _ = step(jax.random.PRNGKey(3), tight, jnp.int32(other))
    assert bool(done) and float(reward) == 0.0
    _, ts = raw.step(tight.inner, jnp.int32(other))
    assert bool(ts.last()) and float(ts.reward) == 0.0


def test_game2048_invalid_move_is_ignored():
    env = make("jumanji/Game2048-v1")
    raw = jumanji.make("Game2048-v1")
    step = jax.jit(env.step)
    # A fresh board has one tile; a key whose tile lies on an edge gives an invalid move.
    for seed in range(50):
        obs, state = env.reset(jax.random.PRNGKey(seed))
        mask = np.asarray(state.inner.action_mask)
        if not mask.all():
            break
    else:
        pytest.fail("no fresh 2048 board with an invalid move among 50 keys")
    board = np.asarray(state.inner.board)
    np.testing.assert_array_equal(np.asarray(obs[:16]), board.ravel().astype(np.float32))
    np.testing.assert_array_equal(np.asarray(obs[16:]), mask.astype(np.float32))
    bad, good = int(np.flatnonzero(~mask)[0]), int(np.flatnonzero(mask)[0])

    next_obs, next_state, reward, done, info = step(jax.random.PRNGKey(1), state, jnp.int32(bad))
    assert not bool(done) and float(reward) == 0.0
    np.testing.assert_array_equal(np.asarray(next_state.inner.board), board)
    np.testing.assert_array_equal(np.asarray(next_obs), np.asarray(obs))
    assert int(next_state.episode_length) == 1  # the ignored move still counts as a step
    _, ts = raw.step(state.inner, jnp.int32(bad))  # jumanji itself: same board, reward 0, not last
    np.testing.assert_array_equal(np.asarray(ts.observation.board), board)
    assert float(ts.reward) == 0.0 and not bool(ts.last())

    # A valid move changes the board (the tile moves and a new one appears).
    _, moved, _, _, _ = step(jax.random.PRNGKey(1), state, jnp.int32(good))
    assert int((np.asarray(moved.inner.board) > 0).sum()) == 2


def test_pass_through_multi_discrete_decodes_row_major():
    # Minesweeper-v0's action is (row, col) in a 10x10 grid; index i means divmod(i, 10).
    env = make("jumanji/Minesweeper-v0")
    raw = jumanji.make("Minesweeper-v0")
    assert env.spec.action == Discrete(100)
    assert env.spec.obs_dim == sum(
        int(np.prod(raw.observation_spec[f].shape))
        for f in ("board", "action_mask", "num_mines", "step_count")
    )
    _, state = env.reset(jax.random.PRNGKey(0))
    index = 37
    obs, _, reward, _ = env.raw_step(jax.random.PRNGKey(1), state.inner, jnp.int32(index))
    _, ts = raw.step(state.inner, jnp.asarray(np.unravel_index(index, (10, 10)), jnp.int32))
    expected = flatten_observation(ts.observation)
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(expected))
    assert float(reward) == float(ts.reward)
    _, ts_transposed = raw.step(state.inner, jnp.asarray([7, 3], jnp.int32))
    assert not np.array_equal(
        np.asarray(expected), np.asarray(flatten_observation(ts_transposed.observation))
    )


@pytest.mark.parametrize(
    "name, why",
    [
        ("SearchAndRescue-v0", "only integer"),
        ("Connector-v3", "joint actions"),
        ("LevelBasedForaging-v0", "reward per agent"),
    ],
)
def test_unsupported_jumanji_envs_say_why(name, why):
    with pytest.raises(UnsupportedJumanjiEnv, match=why):
        make(f"jumanji/{name}")


def test_unknown_name_lists_jumanji_envs():
    with pytest.raises(UnknownEnvError) as err:
        make("jumanji/Snek-v1")
    assert isinstance(err.value, KeyError)
    message = str(err.value)
    assert "Snek-v1" in message
    for name in jumanji.registered_environments():
        assert name in message


def test_flatten_observation_uses_declaration_order_not_alphabetical():
    @chex.dataclass
    class Window:
        start: jax.Array
        end: jax.Array

    obs = (
        jnp.asarray([[1, 2], [3, 4]]),
        Window(start=jnp.asarray(5.0), end=jnp.asarray([6.0, 7.0])),
        jnp.asarray(8),
    )
    np.testing.assert_array_equal(np.asarray(flatten_observation(obs)), np.arange(1, 9, dtype=np.float32))
    mask = flatten_observation({"mask": jnp.asarray([True, False])})
    assert mask.dtype == jnp.float32 and mask.tolist() == [1.0, 0.0]
