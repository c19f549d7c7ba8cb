"""The sweep runner: validation, vmapped seeds, logging, resume after kill -9, divergence, Ray."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from esbench import cli
from esbench.algorithms import get_algorithm
from esbench.results import ResultStore, load, load_summaries
from esbench.runner import ConfigError, TrialSpec, expand_sweep, run_trial, run_trials
from esbench.runner.trial import make_trial_env

TINY_ES = {"pop_size": 8, "rank": 1, "layer_size": 8, "n_layers": 1, "n_parallel_evaluations": 1}
TINY = dict(env="CartPole-v1", algo="eggroll", hparams=TINY_ES, env_steps=8 * 20 * 6, num_logs=3,
            eval_episodes=2, max_episode_steps=20)
NON_TIME_COLUMNS = ["seed", "update", "env_steps", "valid_env_steps", "train_return", "eval_return_mean",
                    "eval_return_std", "diverged"]


def sweep_yaml(tmp_path, body: str, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


BASE_SWEEP = """
envs: [CartPole-v1]
algorithms:
  eggroll: {pop_size: 8, rank: 1, layer_size: 8, n_layers: 1}
trial: {seeds: 1, env_steps: 480, num_logs: 2, eval_episodes: 2, max_episode_steps: 20}
"""

BAD_SWEEPS = [
    ("unknown hyperparameter", BASE_SWEEP.replace("rank: 1", "rnak: 1"), "algorithms.eggroll.rnak"),
    ("wrong type", BASE_SWEEP.replace("pop_size: 8", "pop_size: big"), "pop_size = 'big' is invalid; allowed: an even integer"),
    ("negative budget", BASE_SWEEP.replace("env_steps: 480", "env_steps: -5"), "env_steps: must be a positive integer"),
    ("impossible budget", BASE_SWEEP.replace("env_steps: 480", "env_steps: 10"), "smaller than one eggroll update"),
    ("empty grid", BASE_SWEEP + "search: {grid: {eggroll.sigma: []}}\n", "search.grid.eggroll.sigma: expected a non-empty list"),
    ("unknown env", BASE_SWEEP.replace("CartPole-v1", "CartPol-v1"), "unknown environment id 'CartPol-v1'"),
    ("unknown algorithm", BASE_SWEEP.replace("eggroll:", "egroll:"), "unknown algorithm 'egroll'"),
    ("unknown top-level key", BASE_SWEEP + "budget: {}\n", "sweep.budget: unknown key. Did you mean 'budgets'?"),
    ("unknown trial key", BASE_SWEEP.replace("num_logs", "num_log"), "trial.num_log: unknown key"),
    ("bad yaml", "envs: [CartPole-v1\n", "not valid YAML"),
]


@pytest.mark.parametrize("label,body,message", BAD_SWEEPS, ids=[b[0] for b in BAD_SWEEPS])
def test_bad_sweep_gives_one_clear_error_and_writes_nothing(tmp_path, capsys, label, body, message):
    path = sweep_yaml(tmp_path, body)
    out = tmp_path / "out"
    code = cli.main(["sweep", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert message in err, err
    assert err.count("error:") == 1
    assert not out.exists()


def test_unknown_hyperparameter_suggests_the_close_name():
    with pytest.raises(ConfigError, match=r"learnin_rate: unknown hyperparameter for eggroll. Did you mean 'learning_rate'\?"):
        TrialSpec(env="CartPole-v1", algo="eggroll", hparams={"learnin_rate": 0.1}).validate()


def test_cli_run_bad_set_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["run", "--env", "CartPole-v1", "--algo", "eggroll", "--set", "optimizer=rmsprop",
                     "--env-steps", "1000", "--out", str(out), "--quiet"])
    assert code == cli.EXIT_BAD_INPUT
    assert "optimizer" in capsys.readouterr().err
    assert not out.exists()


def test_vmapped_seeds_reproduce_separate_runs():
    both = run_trial(TrialSpec(**TINY, seeds=(0, 1)), progress=False).metrics
    for seed in (0, 1):
        alone = run_trial(TrialSpec(**TINY, seeds=(seed,)), progress=False).metrics
        mine = both[both.seed == seed].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[NON_TIME_COLUMNS], alone[NON_TIME_COLUMNS], check_exact=True)


def test_shared_evaluation_program_gives_the_same_results_as_a_fresh_one():
    from esbench.runner import trial

    # EGGROLL's default deterministic_policy (false; OpenES's CartPole row says true)
    openes_hparams = {**{k: v for k, v in TINY_ES.items() if k != "rank"}, "deterministic_policy": False}
    openes = TrialSpec(**{**TINY, "algo": "openes", "hparams": openes_hparams}, seeds=(0, 1))
    trial._EVAL_CACHE.clear()
    alone = run_trial(openes, progress=False).metrics
    assert len(trial._EVAL_CACHE) == 1
    trial._EVAL_CACHE.clear()
    run_trial(TrialSpec(**TINY, seeds=(0, 1)), progress=False)  # EGGROLL: same env, network and evaluation
    after_eggroll = run_trial(openes, progress=False).metrics
    assert len(trial._EVAL_CACHE) == 1  # OpenES reused EGGROLL's evaluation program
    pd.testing.assert_frame_equal(after_eggroll[NON_TIME_COLUMNS], alone[NON_TIME_COLUMNS], check_exact=True)
    run_trial(TrialSpec(**{**TINY, "eval_episodes": 3}, seeds=(0, 1)), progress=False)
    assert len(trial._EVAL_CACHE) == 2  # other evaluation settings: another program


def test_logged_env_steps_and_times():
    spec = TrialSpec(**TINY, seeds=(0,))
    result = run_trial(spec, progress=False)
    m, s = result.metrics, result.summary
    algo = get_algorithm("eggroll")
    from esbench.runner.config import build_algo_config

    per_update = algo.env_steps_per_update(make_trial_env(result.config), build_algo_config("eggroll", TINY_ES))
    assert per_update == 8 * 20  # pop_size x n_parallel_evaluations x max_episode_steps
    np.testing.assert_array_equal(m.env_steps.to_numpy(), m["update"].to_numpy() * per_update)
    assert list(m["update"]) == [0, 2, 4, 6]  # evaluated before training, then 6 updates cut into num_logs=3 chunks
    assert s["env_steps"] == 6 * per_update <= spec.env_steps
    assert np.all(np.diff(m.wall_clock_s.to_numpy()) > 0)
    assert s["compile_s"] > 0 and s["run_s"] == pytest.approx(m.wall_clock_s.iloc[-1])
    assert (m.valid_env_steps.to_numpy() <= m.env_steps.to_numpy()).all()
    assert m.eval_return_mean.notna().all()  # eval_every=1


def test_diverging_trial_is_marked_and_sweep_continues(tmp_path):
    bad = TrialSpec(**{**TINY, "hparams": {**TINY_ES, "learning_rate": 1e38, "sigma": 1e10, "optimizer": "sgd", "lr_decay": 1.0}})
    good = TrialSpec(**TINY)
    outcome = run_trials([bad, good], ResultStore(tmp_path), progress=False)
    assert len(outcome.ran) == 2
    summaries = load_summaries(tmp_path).set_index("trial_id")
    assert summaries.loc[bad.resolved()["trial_id"], "status"] == "diverged"
    assert summaries.loc[good.resolved()["trial_id"], "status"] == "finished"
    df = load(tmp_path)
    assert df[df.trial_id == bad.resolved()["trial_id"]].diverged.iloc[-1]


KILL_SWEEP = """
envs: [CartPole-v1]
algorithms:
  eggroll: {pop_size: 8, rank: 1, layer_size: 8, n_layers: 1}
search: {grid: {eggroll.learning_rate: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06]}}
trial: {seeds: 1, env_steps: 480, num_logs: 2, eval_episodes: 2, max_episode_steps: 20}
"""


def test_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    path = sweep_yaml(tmp_path, KILL_SWEEP)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "esbench.cli", "sweep", str(path), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    trials = out / "trials"
    deadline = time.time() + 300
    finished = []
    while time.time() < deadline and proc.poll() is None:
        finished = [p for p in trials.glob("*") if not p.name.startswith(".tmp-")] if trials.exists() else []
        if len(finished) >= 2:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(finished) < 6, "the sweep must be killed part-way"
    before = {p.name: (p / "summary.json").stat().st_mtime_ns for p in trials.glob("*") if not p.name.startswith(".tmp-")}

    assert cli.main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    after = {p.name: (p / "summary.json").stat().st_mtime_ns for p in trials.glob("*") if not p.name.startswith(".tmp-")}
    assert len(after) == 6
    assert all(after[name] == mtime for name, mtime in before.items()), "finished trials were re-run"
    df = load(out)
    assert df.trial_id.nunique() == 6
    assert not df.duplicated(["trial_id", "seed", "update"]).any()
    specs = expand_sweep(__import__("yaml").safe_load(KILL_SWEEP))
    assert set(df.trial_id) == {s.resolved()["trial_id"] for s in specs}


def test_ray_backend_matches_local(tmp_path):
    pytest.importorskip("ray")
    specs = [TrialSpec(**TINY, seeds=(0, 1)), TrialSpec(**{**TINY, "hparams": {**TINY_ES, "sigma": 0.1}})]
    run_trials(specs, ResultStore(tmp_path / "local"), backend="local", progress=False)
    run_trials(specs, ResultStore(tmp_path / "ray"), backend="ray", progress=False)
    local = load(tmp_path / "local").sort_values(["trial_id", "seed", "update"]).reset_index(drop=True)
    remote = load(tmp_path / "ray").sort_values(["trial_id", "seed", "update"]).reset_index(drop=True)
    assert len(local) == len(remote) > 0
    pd.testing.assert_frame_equal(local[["trial_id", *NON_TIME_COLUMNS]], remote[["trial_id", *NON_TIME_COLUMNS]])


def test_numbers_written_as_yaml_strings_are_accepted():
    # YAML 1.1 reads 3e-4 (no dot) as a string; the config layer takes it as the number it means.
    from esbench.runner.config import build_algo_config

    assert build_algo_config("eggroll", {"learning_rate": "3e-4", "pop_size": "8"}).learning_rate == 3e-4
    with pytest.raises(ConfigError, match="learning_rate = 'fast' is invalid; allowed: a number > 0"):
        build_algo_config("eggroll", {"learning_rate": "fast"})


def test_ppo_anneal_horizon_defaults_to_the_trial_budget():
    tiny_ppo = {"num_envs": 4, "num_steps": 8, "num_minibatches": 2, "layer_size": 8, "n_layers": 1}
    base = dict(env="CartPole-v1", algo="ppo", env_steps=3200)
    annealed = TrialSpec(**base, hparams={**tiny_ppo, "anneal_lr": True})
    annealed.validate()  # without the budget fill-in, anneal_lr needs anneal_env_steps set by hand
    assert annealed.resolved()["hparams"]["anneal_env_steps"] == 3200
    assert annealed.algo_config().anneal_env_steps == 3200
    explicit = TrialSpec(**base, hparams={**tiny_ppo, "anneal_lr": True, "anneal_env_steps": 6400})
    assert explicit.resolved()["hparams"]["anneal_env_steps"] == 6400
    assert TrialSpec(**base, hparams=tiny_ppo).resolved()["hparams"]["anneal_env_steps"] == 0


def test_negative_seed_is_a_config_error():
    with pytest.raises(ConfigError, match=r"seeds: seeds must be integers in \[0, 2\^32\)"):
        TrialSpec(**{**TINY, "seeds": (-1,)}).validate()


def test_a_crashing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    import jax.numpy as jnp

    from esbench.envs import Discrete, EnvSpec, build_env, register

    def broken():
        spec = EnvSpec(id="test/Broken-v0", suite="custom", obs_dim=2, action=Discrete(2), max_episode_steps=20)

        def raw_step(key, state, action):
            raise RuntimeError("this env cannot step")

        return build_env(spec, lambda key: (jnp.zeros(2), jnp.zeros(())), raw_step)

    register("test/Broken-v0", broken, overwrite=True)
    bad = TrialSpec(**{**TINY, "env": "test/Broken-v0"})
    good = TrialSpec(**TINY)
    outcome = run_trials([bad, good], ResultStore(tmp_path), progress=False)
    assert list(outcome.failed) == [bad.resolved()["trial_id"]]
    assert "this env cannot step" in outcome.failed[bad.resolved()["trial_id"]]
    assert outcome.ran == [good.resolved()["trial_id"]]
    assert set(load(tmp_path).trial_id) == {good.resolved()["trial_id"]}
