"""Suite-specific checks of the brax and craftax adapters (the generic contract is in test_env_contract.py).

brax compiles and steps slowly on CPU, so the only brax rollout here is one
episode of inverted_double_pendulum (the cheapest brax env) in one environment;
each check compares the adapter against the suite's own functions run with the
same keys and actions.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from esbench.envs import Box, Discrete, UnknownEnvError, make

# ----------------------------------------------------------------------------- brax


def test_brax_unknown_name_lists_brax_envs():
    with pytest.raises(UnknownEnvError, match="brax has: .*ant.*hopper") as err:
        make("brax/not_a_brax_env")
    assert "'not_a_brax_env'" in str(err.value)


@pytest.mark.parametrize("name", ["ant", "humanoid", "inverted_double_pendulum"])
def test_brax_paper_env_bounds_equal_brax_ctrl_range(name):
    import brax.envs

    env = make(f"brax/{name}")
    raw = brax.envs.get_environment(name)
    ctrl = np.asarray(raw.sys.actuator.ctrl_range, np.float32)
    assert env.spec.suite == "brax" and env.spec.id == f"brax/{name}"
    assert env.spec.action == Box.make(ctrl[:, 0], ctrl[:, 1], raw.action_size)
    assert env.spec.max_episode_steps == 1000
    if name == "humanoid":  # the one paper env whose actuators are not limited to [-1, 1]
        assert set(env.spec.action.low) == {np.float32(-0.4)} and set(env.spec.action.high) == {
            np.float32(0.4)
        }


def test_brax_hopper_passes_through():
    import brax.envs

    env = make("brax/hopper")
    raw = brax.envs.get_environment("hopper")
    assert env.spec.id == "brax/hopper" and env.spec.suite == "brax"
    assert env.spec.action == Box.make(-1.0, 1.0, raw.action_size) and env.spec.action.dim == 3
    assert env.spec.max_episode_steps == 1000
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    obs, raw_obs = jax.jit(jax.vmap(lambda k: (env.reset(k)[0], raw.reset(k).obs)))(keys)
    assert obs.shape == (2, env.spec.obs_dim) and raw_obs.shape == (2, 11)
    np.testing.assert_array_equal(obs, raw_obs)
    assert not np.array_equal(obs[0], obs[1]), "brax randomises the initial state from the key"
    # (the step itself is checked against brax's on inverted_double_pendulum: hopper compiles slowly)


def test_brax_done_is_brax_termination_not_truncation():
    """inverted_double_pendulum pushed hard one way falls over: done, return and length match brax's own."""
    import brax.envs

    env = make("brax/inverted_double_pendulum")
    raw = brax.envs.get_environment("inverted_double_pendulum")
    n_steps = 40
    push = jnp.ones((1,), jnp.float32)

    def both(key):
        _, state = env.reset(key)
        raw_state = raw.reset(key)

        def body(carry, step_key):
            state, raw_state = carry
            obs, state, reward, done, info = env.step(step_key, state, push)
            raw_state = raw.step(raw_state, push)
            return (state, raw_state), (
                obs,
                reward,
                done,
                info,
                raw_state.obs,
                raw_state.reward,
                raw_state.done,
            )

        return jax.lax.scan(body, (state, raw_state), jax.random.split(key, n_steps))[1]

    obs, reward, done, info, raw_obs, raw_reward, raw_done = jax.jit(both)(jax.random.PRNGKey(0))
    raw_done = np.asarray(raw_done) > 0
    assert raw_done.any(), "the pendulum must fall within the rollout"
    t = int(np.argmax(raw_done))  # first brax termination; our episode restarts after it
    np.testing.assert_array_equal(np.asarray(done)[: t + 1], raw_done[: t + 1])
    np.testing.assert_array_equal(np.asarray(obs)[:t], np.asarray(raw_obs)[:t])  # at t ours is the reset obs
    np.testing.assert_array_equal(np.asarray(reward)[: t + 1], np.asarray(raw_reward)[: t + 1])
    assert bool(info.episode_done[t]) and not bool(info.truncated[t])
    assert int(info.episode_length[t]) == t + 1
    assert float(info.episode_return[t]) == pytest.approx(
        float(np.sum(np.asarray(raw_reward)[: t + 1])), rel=1e-6
    )


# ----------------------------------------------------------------------------- craftax


def assert_same(a, b):
    """Integer and boolean leaves (map, inventory, positions, ...) exactly; float leaves to 1 ulp.

    The float ones (light level, intrinsics) come out of cos/pow, whose last bit
    depends on how XLA fuses the surrounding program, which differs between our
    wrapper and craftax's `step`.
    """
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    if np.issubdtype(a.dtype, np.floating):
        np.testing.assert_array_max_ulp(a, b, maxulp=1)
    else:
        np.testing.assert_array_equal(a, b)


def test_craftax_unknown_name_lists_craftax_names():
    with pytest.raises(UnknownEnvError, match="Craftax-Classic-Symbolic-AutoReset-v1") as err:
        make("craftax/Craftax-Classic-Symbolic-v2")
    assert "'Craftax-Classic-Symbolic-v2'" in str(err.value)
    assert "Craftax-Symbolic-AutoReset-v1" in str(err.value)


def test_craftax_specs_follow_craftax_params():
    from craftax.craftax_classic.constants import OBS_DIM, BlockType

    classic = make("craftax/Craftax-Classic-Symbolic-v1")  # a non-paper id passes through
    assert classic.spec.id == "craftax/Craftax-Classic-Symbolic-v1" and classic.spec.suite == "craftax"
    # 7x9 local map of one-hot blocks + 4 mob channels, then 22 inventory / intrinsic / direction entries
    assert classic.spec.obs_dim == OBS_DIM[0] * OBS_DIM[1] * (len(BlockType) + 4) + 22
    assert classic.spec.action == Discrete(17)
    assert classic.spec.max_episode_steps == 10_000

    full = make("craftax/Craftax-Symbolic")  # the paper id (auto-reset variant)
    assert full.spec.action == Discrete(43)
    assert full.spec.max_episode_steps == 100_000
    assert make("craftax/Craftax-Symbolic-v1").spec.obs_dim == full.spec.obs_dim


def test_craftax_classic_matches_craftax_autoreset_step_through_an_episode_end():
    """Same keys and actions as craftax's own auto-reset `step`: identical obs/reward/done, reset included.

    The episode is ended by craftax itself (its timestep reaching max_timesteps),
    so the done comes from the suite, not from the esbench time limit.
    """
    from craftax.craftax_classic.envs.craftax_symbolic_env import CraftaxClassicSymbolicEnv

    env = make("craftax/Craftax-Classic-Symbolic")
    theirs = CraftaxClassicSymbolicEnv()
    params = theirs.default_params

    def both(key, state, their_state, action):
        obs, state, reward, done, info = env.step(key, state, action)
        their_obs, their_state, their_reward, their_done, _ = theirs.step(key, their_state, action, params)
        return (obs, state, reward, done, info), (their_obs, their_state, their_reward, their_done)

    both = jax.jit(both)
    # One reset for both (compiling craftax's world generation is slow); that our
    # reset builds the same world as craftax's is checked at the episode end below.
    obs, state = jax.jit(env.reset)(jax.random.PRNGKey(0))
    their_state = state.inner

    rewards = []
    actions = [3, 5, 2]  # UP, DO, RIGHT
    for t, action in enumerate(actions):
        if t == len(actions) - 1:  # make craftax end the episode on this step
            last = params.max_timesteps - 1
            state = state.replace(inner=state.inner.replace(timestep=last))
            their_state = their_state.replace(timestep=last)
        ours, their = both(jax.random.PRNGKey(10 + t), state, their_state, jnp.int32(action))
        obs, state, reward, done, info = ours
        their_obs, their_state, their_reward, their_done = their
        assert_same(obs, their_obs)
        assert_same(reward, their_reward)
        assert bool(done) == bool(their_done)
        rewards.append(float(reward))

    assert bool(done) and not bool(info.truncated)
    assert int(info.episode_length) == len(actions)
    assert float(info.episode_return) == pytest.approx(sum(rewards), rel=1e-6, abs=1e-6)
    # both were reset with the same key: the new episode starts from the same fresh world
    jax.tree_util.tree_map(assert_same, state.inner, their_state)
    assert int(state.episode_length) == 0 and float(state.episode_return) == 0.0
