"""The interface contract, checked on every one of the 16 paper environments.

Batch and step counts are tiny (brax steps at ~50/s on a 2-core CPU); episode
ends are forced inside the rollout with `with_time_limit` so that auto-reset
and the reported episode returns are always exercised.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esbench.envs import PAPER_ENVS, Box, Discrete, make
from esbench.envs.check import random_rollout

N_ENVS = 3
# (steps in the rollout, time limit that forces episode ends inside it)
ROLLOUT = {"brax": (6, 3), "craftax": (12, 5), "kinetix": (10, 4)}
DEFAULT_ROLLOUT = (40, 15)


@pytest.fixture(scope="module", params=PAPER_ENVS)
def env_and_traj(request):
    env = make(request.param)
    n_steps, limit = ROLLOUT.get(env.spec.suite, DEFAULT_ROLLOUT)
    short = env.with_time_limit(limit)
    traj = random_rollout(short, jax.random.PRNGKey(0), N_ENVS, n_steps)
    return env, short, n_steps, traj


def test_spec_matches_what_env_produces(env_and_traj):
    env, short, n_steps, (obs, reward, done, info) = env_and_traj
    spec = env.spec
    assert obs.shape == (N_ENVS, n_steps, spec.obs_dim)
    assert obs.dtype == jnp.float32
    assert reward.shape == (N_ENVS, n_steps) and reward.dtype == jnp.float32
    assert done.shape == (N_ENVS, n_steps) and done.dtype == jnp.bool_
    assert np.all(np.isfinite(np.asarray(obs))) and np.all(np.isfinite(np.asarray(reward)))
    assert spec.max_episode_steps >= 1
    assert isinstance(spec.action, (Discrete, Box))
    if isinstance(spec.action, Box):
        assert len(spec.action.low) == len(spec.action.high) == spec.action.dim
        assert all(lo < hi for lo, hi in zip(spec.action.low, spec.action.high))
    obs0, _ = jax.jit(env.reset)(jax.random.PRNGKey(3))
    assert obs0.shape == (spec.obs_dim,) and obs0.dtype == jnp.float32


def test_auto_reset_reports_hand_summed_episode_returns(env_and_traj):
    env, short, n_steps, (obs, reward, done, info) = env_and_traj
    reward, done = np.asarray(reward), np.asarray(done)
    ep_done, ep_ret, ep_len = (
        np.asarray(x) for x in (info.episode_done, info.episode_return, info.episode_length)
    )
    np.testing.assert_array_equal(ep_done, done)
    limit = short.spec.max_episode_steps
    assert done.any(axis=1).all(), "the time limit must end an episode inside the rollout"
    for b in range(N_ENVS):
        running, length = 0.0, 0
        for t in range(n_steps):
            running += float(reward[b, t])
            length += 1
            assert length <= limit
            if done[b, t]:
                assert ep_ret[b, t] == pytest.approx(running, rel=1e-5, abs=1e-4)
                assert ep_len[b, t] == length
                running, length = 0.0, 0
            else:
                assert ep_ret[b, t] == 0.0 and ep_len[b, t] == 0


def test_final_obs_is_the_next_obs_unless_the_episode_ended(env_and_traj):
    env, short, n_steps, (obs, reward, done, info) = env_and_traj
    obs, done, final = np.asarray(obs), np.asarray(done), np.asarray(info.final_obs)
    assert final.shape == obs.shape and np.all(np.isfinite(final))
    going_on = ~done[:, :-1]
    # Not bit-equal: XLA may fuse the two uses of the obs differently (ulp-level differences seen on Pendulum).
    np.testing.assert_allclose(final[:, :-1][going_on], obs[:, 1:][going_on], rtol=1e-5, atol=1e-6)


def test_same_key_same_trajectory(env_and_traj):
    env, short, n_steps, traj = env_and_traj
    again = random_rollout(short, jax.random.PRNGKey(0), N_ENVS, n_steps)
    for a, b in zip(jax.tree_util.tree_leaves(traj), jax.tree_util.tree_leaves(again)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_wrong_action_fails_at_trace_time(env_and_traj):
    env = env_and_traj[0]
    obs, state = jax.eval_shape(env.reset, jax.random.PRNGKey(0))  # shapes only: nothing runs
    spec = env.spec
    if isinstance(spec.action, Discrete):
        bad = [jnp.zeros((2,), jnp.int32), jnp.asarray(0.5, jnp.float32)]
    else:
        bad = [jnp.zeros((spec.action.dim + 1,), jnp.float32), jnp.zeros((spec.action.dim,), jnp.int32)]
    for action in bad:
        with pytest.raises(TypeError, match="expected a"):
            jax.jit(env.step).lower(jax.random.PRNGKey(1), state, action)


def test_time_limit_end_is_reported_as_truncation():
    env = make("CartPole-v1", 3)
    obs, state = env.reset(jax.random.PRNGKey(0))
    for t in range(3):
        obs, state, reward, done, info = env.step(jax.random.PRNGKey(t), state, jnp.int32(t % 2))
    assert bool(done) and bool(info.truncated) and int(info.episode_length) == 3


def test_final_obs_of_an_ended_episode_is_the_pre_reset_obs():
    env = make("CartPole-v1", 3)
    obs, state = env.reset(jax.random.PRNGKey(0))
    for t in range(3):
        before = state
        key = jax.random.PRNGKey(10 + t)
        obs, state, reward, done, info = env.step(key, state, jnp.int32(1))
    step_key, _ = jax.random.split(key)  # the split `step` makes: step key, reset key
    raw_obs, *_ = env.raw_step(step_key, before.inner, jnp.int32(1))
    assert bool(done)
    np.testing.assert_array_equal(np.asarray(info.final_obs), np.asarray(raw_obs, np.float32).ravel())
    assert not np.array_equal(
        np.asarray(info.final_obs), np.asarray(obs)
    )  # obs is the next episode's reset obs


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1", "jumanji/Knapsack-v1", "navix/DoorKey-8x8"])
def test_episode_rollouts_without_reset_give_the_first_episode_of_auto_resetting_steps(env_id):
    from esbench.algorithms.evaluate import run_episodes
    from esbench.envs.check import random_action

    env = make(env_id).with_time_limit(30)
    act_fn = lambda obs, key: random_action(env.spec, key)  # noqa: E731
    stats = jax.jit(lambda key: run_episodes(key, env, act_fn, 6))(jax.random.PRNGKey(4))

    def first_episode_with_step(key):  # the same keys as run_episode, through the auto-resetting `step`
        reset_key, run_key = jax.random.split(key)
        obs, state = env.reset(reset_key)

        def body(carry, step_key):
            obs, state = carry
            act_key, env_key = jax.random.split(step_key)
            obs, state, _, done, info = env.step(env_key, state, act_fn(obs, act_key))
            return (obs, state), (done, info.episode_return, info.episode_length)

        _, (done, ret, length) = jax.lax.scan(body, (obs, state), jax.random.split(run_key, 30))
        first = jnp.argmax(done)  # the time limit guarantees a done within 30 steps
        return ret[first], length[first]

    keys = jax.random.split(jax.random.PRNGKey(4), 6)
    ret, length = jax.jit(jax.vmap(first_episode_with_step))(keys)
    np.testing.assert_allclose(np.asarray(stats.returns), np.asarray(ret), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(stats.lengths), np.asarray(length))
