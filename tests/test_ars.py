"""ARS V2-t (algorithms/ars.py, a drop-in file): its pieces against explicit computations, the runner, and learning.

Learning budgets are the cpu budget's scale: 64 members (32 directions), the official network at
2 layers of 32, ARS's defaults otherwise (top half of the directions, nu 0.05, alpha 0.05).
Measured on the project's shared 2-core CPU: CartPole-v1 reaches 500 by iteration 30 (about
4.5e5 and 2.9e5 env steps for seeds 0 and 1); Pendulum-v1 goes from about -1250 to about -200 in
150 iterations (1.9e6 env steps), ~10 s each after a ~20 s compile.
"""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_spec

from esbench import plugins
from esbench.algorithms import es, evaluate, get_algorithm, networks, openes
from esbench.envs import make
from esbench.results import ResultStore, load
from esbench.runner import run_trials

ARS_FILE = Path(__file__).resolve().parents[1] / "algorithms" / "ars.py"
EVAL_EPISODES = 16


@pytest.fixture
def ars(restore_registries):
    plugins.load_file(ARS_FILE)
    return get_algorithm("ars")


def test_running_statistics_are_those_of_every_state(ars):
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (n, 4)).astype(np.float32) for n in (7, 50, 1)]
    stats = ars.ObsStats(jnp.zeros(4), jnp.ones(4), jnp.zeros(()))
    for batch in batches:
        stats = ars.merge_stats(stats, jnp.asarray(len(batch)), batch.sum(0), (batch**2).sum(0))
    every = np.concatenate(batches)
    assert float(stats.count) == len(every)
    np.testing.assert_allclose(stats.mean, every.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, every.var(0), rtol=1e-4)
    empty = ars.merge_stats(stats, jnp.asarray(0), jnp.zeros(4), jnp.zeros(4))  # no states: unchanged
    np.testing.assert_allclose(empty.mean, stats.mean) and np.testing.assert_allclose(empty.var, stats.var)


def test_top_directions_keep_the_b_best(ars):
    scores = jnp.asarray([3.0, 9.0, 1.0, 7.0, 5.0, 2.0, 8.0, 0.0])
    assert np.asarray(ars.top_directions(scores, 0.25)).tolist() == [0, 1, 0, 0, 0, 0, 1, 0]  # b = 2
    assert np.asarray(ars.top_directions(scores, 0.01)).tolist() == [0, 1, 0, 0, 0, 0, 0, 0]  # b >= 1
    assert float(ars.top_directions(scores, 1.0).sum()) == 8


def test_one_update_is_the_ars_step(ars, cartpole):
    """theta' - theta = alpha / (b sigma_R) sum_kept (r+ - r-) delta, with delta regenerated from the noise keys."""
    cfg = ars.Config(pop_size=8, top_fraction=0.5, layer_size=4, n_layers=1, sigma=0.1, learning_rate=0.2)
    state = ars.init(jax.random.PRNGKey(0), cartpole, cfg)
    new, metrics = jax.jit(lambda s: ars.update(s, cartpole, cfg))(state)
    # the members' returns, rolled out again with the same keys
    noise = es.draw_noise(state.noise_root, state.generation, state.params, 4, cfg, openes.MATRIX_NOISE)
    _, episode_key = jax.random.split(state.key)
    keys = jnp.repeat(jax.random.split(episode_key, 4), 2, axis=0)
    norm = {"obs_norm": {"mean": state.obs_stats.mean, "var": state.obs_stats.var}}

    def member_return(params, matmul, key):
        act = lambda obs, k: jnp.argmax(networks.forward({**params, **norm}, obs, cfg.activation, matmul))  # noqa: E731
        return evaluate.run_episodes(key, cartpole, act, 1).returns.mean()

    returns = np.asarray(
        es.population_map(member_return, state.params, noise, 0.1, cfg, openes.MATRIX_NOISE, keys)
    )
    r_plus, r_minus = returns[0::2], returns[1::2]
    kept = np.argsort(-np.maximum(r_plus, r_minus))[:2]
    sigma_r = np.concatenate([r_plus[kept], r_minus[kept]]).std()
    for old, eps, updated in zip(
        jax.tree_util.tree_leaves(state.params), noise, jax.tree_util.tree_leaves(new.params)
    ):
        expected = 0.2 / (2 * sigma_r) * sum((r_plus[j] - r_minus[j]) * np.asarray(eps[j]) for j in kept)
        np.testing.assert_allclose(np.asarray(updated) - np.asarray(old), expected, rtol=1e-4, atol=1e-6)
    assert float(metrics["reward_std"]) == pytest.approx(sigma_r, rel=1e-5)


def test_through_the_runner_states_counted_once(ars, tmp_path):
    """The observation statistics count every env step inside episodes, no more: obs_count == env_steps."""
    spec = dataclasses.replace(
        tiny_spec(), algo="ars", hparams={"pop_size": 8, "layer_size": 8, "n_layers": 1}, seeds=(0, 1)
    )
    outcome = run_trials([spec], ResultStore(tmp_path), progress=False)
    assert not outcome.failed
    df = load(tmp_path)
    last = df[df["log_point"] == df["log_point"].max()]
    assert (last["m_obs_count"].to_numpy() == last["env_steps"].to_numpy()).all()
    assert np.isfinite(last["eval_return_mean"]).all()


def train(ars, env, cfg, generations, seed):
    state = ars.init(jax.random.PRNGKey(seed), env, cfg)
    initial = ars.policy(state)
    update = jax.jit(lambda s: ars.update(s, env, cfg))
    steps = 0
    for _ in range(generations):
        state, metrics = update(state)
        steps += int(metrics["valid_env_steps"])
    return initial, ars.policy(state), steps


def eval_return(env, params, seed=1234):
    stats = jax.jit(lambda p, k: evaluate.evaluate_policy(k, env, p, EVAL_EPISODES, True))(
        params, jax.random.PRNGKey(seed)
    )
    return float(stats.returns.mean())


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_ars_solves_cartpole(ars, cartpole, seed):
    cfg = ars.Config(pop_size=64, layer_size=32, n_layers=2)
    _, params, steps = train(ars, cartpole, cfg, generations=50, seed=seed)
    assert steps <= 2_000_000  # at most 50 x 64 x 500 = 1.6e6
    assert eval_return(cartpole, params) >= 475.0


@pytest.mark.slow
def test_ars_improves_pendulum(ars):
    env = make("Pendulum-v1")
    cfg = ars.Config(pop_size=64, layer_size=32, n_layers=2)
    initial, params, steps = train(ars, env, cfg, generations=150, seed=0)
    before, after = eval_return(env, initial), eval_return(env, params)
    assert steps == 150 * 64 * 200
    assert before < -900.0  # a random policy swings nowhere near upright
    assert after >= before + 600.0 and after >= -400.0, (before, after)


def test_its_search_space_is_what_the_protocol_searches(ars, write_sweep):
    from esbench.runner.protocol_settings import protocol_settings
    from esbench.runner.sweep import parse_sweep
    from esbench.runner.sweep_file import load_sweep_file

    path = write_sweep("""
        envs: [CartPole-v1]
        algorithms: {ars: {pop_size: 8, layer_size: 8, n_layers: 1}}
        trial: {seeds: 1, env_steps: 100000, max_episode_steps: 20}
        protocol: {search_trials: 3, space: {ars: paper}}
    """)
    space = protocol_settings(parse_sweep(load_sweep_file(path))).space["ars"]
    assert space == {name: {"choice": list(choices)} for name, choices in ars.SEARCH_SPACE.items()}


def test_value_fields_vectorise(ars, tmp_path):
    """Trials differing only in VALUE_FIELDS run as one program, with the results of running each on its own."""
    specs = [
        dataclasses.replace(
            tiny_spec(),
            algo="ars",
            hparams={"pop_size": 8, "layer_size": 8, "n_layers": 1, "sigma": sigma, "top_fraction": fraction},
        )
        for sigma, fraction in ((0.05, 0.5), (0.2, 0.25))
    ]
    frames = []
    for name, vectorize in (("together", True), ("apart", False)):
        assert not run_trials(specs, ResultStore(tmp_path / name), progress=False, vectorize=vectorize).failed
        df = load(tmp_path / name).sort_values(["trial_id", "seed", "log_point"]).reset_index(drop=True)
        frames.append(df[["trial_id", "seed", "log_point", "env_steps", "train_return", "eval_return_mean"]])
    assert frames[0].equals(frames[1])
