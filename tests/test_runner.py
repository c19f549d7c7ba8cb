"""The sweep runner: validation, budgets of env steps inside episodes, vmapped seeds and hyperparameter
points, several devices, resume after kill -9, divergence, Ray."""

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys

import jax
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import NON_TIME_COLUMNS, TINY_EPISODE, TINY_HPARAMS, tiny_spec

from esbench import cli
from esbench.algorithms import eggroll, openes
from esbench.results import ResultStore, load, load_summaries
from esbench.runner import ConfigError, TrialSpec, expand_sweep, resolve_trial, run_trial, run_trials
from esbench.runner.backends import group_trials
from esbench.runner.protocol import prepare_protocol
from esbench.runner.trial import RunOptions, run_group
from esbench.validation import build

BASE_SWEEP = """
envs: [CartPole-v1]
algorithms:
  eggroll: {pop_size: 8, rank: 1, layer_size: 8, n_layers: 1}
trial: {seeds: 1, env_steps: 480, num_logs: 2, eval_episodes: 2, max_episode_steps: 20}
"""

BAD_SWEEPS = [
    ("unknown hyperparameter", BASE_SWEEP.replace("rank: 1", "rnak: 1"), "algorithms.eggroll.rnak"),
    (
        "wrong type",
        BASE_SWEEP.replace("pop_size: 8", "pop_size: big"),
        "pop_size = 'big' is invalid; allowed: an even integer",
    ),
    (
        "negative budget",
        BASE_SWEEP.replace("env_steps: 480", "env_steps: -5"),
        "env_steps = -5 is invalid; allowed: an integer >= 1",
    ),
    ("impossible budget", BASE_SWEEP.replace("env_steps: 480", "env_steps: 4"), "smaller than one update"),
    (
        "empty grid",
        BASE_SWEEP + "search: {grid: {eggroll: {sigma: []}}}\n",
        "search.grid.eggroll.sigma.choice: expected a non-empty list",
    ),
    ("unknown env", BASE_SWEEP.replace("CartPole-v1", "CartPol-v1"), "unknown environment id 'CartPol-v1'"),
    ("unknown algorithm", BASE_SWEEP.replace("eggroll:", "egroll:"), "unknown algorithm 'egroll'"),
    (
        "unknown top-level key",
        BASE_SWEEP + "budget: {}\n",
        "sweep.budget: unknown key. Did you mean 'budgets'?",
    ),
    ("unknown trial key", BASE_SWEEP.replace("num_logs", "num_log"), "trial.num_log: unknown key"),
    (
        "bad seeds",
        BASE_SWEEP.replace("seeds: 1", "seeds: [1, 1]"),
        "seeds = (1, 1) is invalid; allowed: a non-empty list of distinct",
    ),
    (
        "unknown import",
        BASE_SWEEP + "imports: [no_such_plugin_module]\n",
        "--import no_such_plugin_module: cannot import it",
    ),
    ("bad yaml", "envs: [CartPole-v1\n", "not valid YAML"),
    (
        "bad checkpoint_every",
        BASE_SWEEP + "checkpoint_every: 0\n",
        "checkpoint_every = 0 is invalid; allowed: an integer >= 1",
    ),
]


@pytest.mark.parametrize("label,body,message", BAD_SWEEPS, ids=[b[0] for b in BAD_SWEEPS])
def test_bad_sweep_gives_one_clear_error_and_writes_nothing(
    tmp_path, capsys, write_sweep, label, body, message
):
    out = tmp_path / "out"
    code = cli.main(["sweep", str(write_sweep(body)), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert message in err, err
    assert err.count("error:") == 1
    assert not out.exists()


PER_ENV_SWEEP = """
envs: [CartPole-v1, Pendulum-v1]
algorithms: {eggroll: {}, openes: {}, ppo: {}}
budgets:
  some:
    algorithms_per_env: {default: [ppo], CartPole-v1: [ppo, eggroll]}
"""


def test_algorithms_per_env_chooses_each_envs_algorithms_in_the_files_order():
    data = yaml.safe_load(PER_ENV_SWEEP)
    pairs = [(s.env, s.algo) for s in expand_sweep(data, "some")]
    assert pairs == [("CartPole-v1", "eggroll"), ("CartPole-v1", "ppo"), ("Pendulum-v1", "ppo")]
    data["budgets"]["some"]["algorithms_per_env"] = ["openes"]  # a list: every env
    assert [(s.env, s.algo) for s in expand_sweep(data, "some")] == [
        ("CartPole-v1", "openes"),
        ("Pendulum-v1", "openes"),
    ]


@pytest.mark.parametrize(
    "value,message",
    [
        (
            "{default: [ppo], CartPol-v1: [ppo]}",
            "algorithms_per_env.CartPol-v1: not one of the budget's envs",
        ),
        ("{default: [pp]}", "algorithms_per_env.default: 'pp' is not one of the sweep's algorithms"),
        ("{default: []}", "algorithms_per_env.default = [] is invalid; allowed: a non-empty list of"),
        ("{CartPole-v1: [ppo]}", "algorithms_per_env: no algorithms for Pendulum-v1 and no 'default'"),
    ],
)
def test_bad_algorithms_per_env_names_the_problem(value, message):
    data = yaml.safe_load(PER_ENV_SWEEP.replace("{default: [ppo], CartPole-v1: [ppo, eggroll]}", value))
    with pytest.raises(ConfigError, match=re.escape(message)):
        expand_sweep(data, "some")


def test_the_matched_stage_refuses_an_env_with_one_es():
    data = yaml.safe_load(PER_ENV_SWEEP)
    data["budgets"]["some"]["protocol"] = {"matched": True}
    with pytest.raises(ConfigError, match="CartPole-v1 runs eggroll alone"):
        prepare_protocol(data, "some")


def test_unknown_hyperparameter_suggests_the_close_name():
    with pytest.raises(
        ConfigError, match=r"learnin_rate: unknown hyperparameter for eggroll. Did you mean 'learning_rate'\?"
    ):
        resolve_trial(TrialSpec(env="CartPole-v1", algo="eggroll", hparams={"learnin_rate": 0.1}))


def test_cli_run_bad_set_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(
        [
            "run",
            "--env",
            "CartPole-v1",
            "--algo",
            "eggroll",
            "--set",
            "optimizer=rmsprop",
            "--env-steps",
            "1000",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == cli.EXIT_BAD_INPUT
    assert "optimizer = 'rmsprop' is invalid; allowed: sgd, adam, adamw" in capsys.readouterr().err
    assert not out.exists()


def test_vmapped_seeds_reproduce_separate_runs():
    both = run_trial(tiny_spec(seeds=(0, 1)), progress=False).metrics
    for seed in (0, 1):
        alone = run_trial(tiny_spec(seeds=(seed,)), progress=False).metrics
        mine = both[both.seed == seed].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[NON_TIME_COLUMNS], alone[NON_TIME_COLUMNS], check_exact=True)


def test_budget_counts_env_steps_inside_episodes():
    """Each seed updates until its env steps reach the chunk's target ceil(c * budget / num_logs); an update
    starts only while the budget has room for its fewest steps (pop x episodes), so a seed ends at most one
    generation over the budget. Logged counts add up: env steps = sum of the updates' valid steps."""
    spec = tiny_spec(seeds=(0, 1), env_steps=2000, num_logs=4)
    trial = resolve_trial(spec)
    result = run_trial(trial, progress=False)
    m, s = result.metrics, result.summary
    assert list(m.log_point.unique()) == [0, 1, 2, 3, 4]
    assert (m[m.log_point == 0][["update", "env_steps", "simulated_env_steps"]] == 0).all().all()
    most = trial.schedule.max_env_steps_per_update
    assert most == 8 * 1 * TINY_EPISODE and trial.schedule.min_env_steps_per_update == 8
    for seed, rows in m.groupby("seed"):
        rows = rows.sort_values("log_point")
        steps, updates = rows.env_steps.to_numpy(), rows["update"].to_numpy()
        assert np.all(np.diff(steps) > 0) and np.all(np.diff(updates) > 0)
        for c in (1, 2, 3):  # reached the chunk's target, by less than one generation
            target = -(-c * 2000 // 4)
            assert target <= steps[c] < target + most
        assert 2000 - 8 < steps[-1] < 2000 + most  # the budget: no room left, or spent
        assert (
            rows.simulated_env_steps.iloc[-1] <= updates[-1] * most
        )  # early exit never costs more than the limit
        assert s["env_steps"][str(seed)] == steps[-1] and s["updates"][str(seed)] == updates[-1]


def test_ppo_runs_exactly_the_updates_that_fit():
    spec = tiny_spec("ppo", seeds=(0, 1), env_steps=4 * 8 * 7 + 5, num_logs=3)
    m = run_trial(spec, progress=False).metrics
    assert sorted(m[m.log_point == 3]["update"].unique()) == [7]  # floor(budget / batch)
    assert (m.env_steps == m.simulated_env_steps).all() and (m.env_steps == m["update"] * 32).all()


@pytest.mark.parametrize("name", ["eggroll", "openes"])
def test_early_exit_gives_the_masked_rollouts_returns_and_valid_steps(name, cartpole):
    """A generation that stops when every episode has ended equals the one that simulates all 500 steps
    and masks the rest: same returns, same valid steps, same update; it only simulates fewer steps."""
    algo = {"eggroll": eggroll, "openes": openes}[name]
    cfg = build(algo.Config, {**TINY_HPARAMS[name], "n_parallel_evaluations": 2}, name)
    masked = dataclasses.replace(cfg, early_exit=False)
    state = algo.init(jax.random.PRNGKey(0), cartpole, cfg)
    fast, fast_m = jax.jit(lambda s: algo.update(s, cartpole, cfg))(state)
    slow, slow_m = jax.jit(lambda s: algo.update(s, cartpole, masked))(state)
    for key in ("train_return", "valid_env_steps", "fitness_std", "fitness_max"):
        np.testing.assert_array_equal(np.asarray(fast_m[key]), np.asarray(slow_m[key]), err_msg=key)
    jax.tree_util.tree_map(np.testing.assert_array_equal, fast.params, slow.params)
    assert int(slow_m["simulated_env_steps"]) == 8 * 2 * 500
    assert int(fast_m["valid_env_steps"]) <= int(fast_m["simulated_env_steps"]) < 8 * 2 * 500


@pytest.mark.parametrize("algo", ["eggroll", "ppo"])
def test_hyperparameter_points_run_as_one_program_with_the_results_they_get_alone(algo):
    """A grid over value fields (sigma / learning rate, clip) forms one group; each trial's metrics equal its
    run alone: bit for bit for ES, to float32 rounding for PPO (its batched matmuls sum in another order)."""
    grid = (
        [{"sigma": s, "learning_rate": lr} for s in (0.1, 0.5) for lr in (0.01, 0.1)]
        if algo == "eggroll"
        else [{"learning_rate": lr, "clip_eps": c} for lr in (1e-3, 3e-4) for c in (0.1, 0.2)]
    )
    trials = [resolve_trial(tiny_spec(algo, hparams=point, seeds=(0, 1))) for point in grid]
    assert [len(g) for g in group_trials(trials)] == [4]
    assert [len(g) for g in group_trials(trials, vectorize=False)] == [1, 1, 1, 1]
    assert len(group_trials(trials + [resolve_trial(tiny_spec(algo, hparams={"layer_size": 16}))])) == 2
    together = run_group(trials, RunOptions(progress=False))
    for trial, result in zip(trials, together):
        alone = run_group([trial], RunOptions(progress=False))[0]
        pd.testing.assert_frame_equal(
            result.metrics[NON_TIME_COLUMNS], alone.metrics[NON_TIME_COLUMNS], check_exact=True
        )
        extra = [c for c in alone.metrics.columns if c.startswith("m_")]
        tolerance = {"rtol": 0, "atol": 0} if algo == "eggroll" else {"rtol": 1e-5, "atol": 1e-6}
        np.testing.assert_allclose(result.metrics[extra], alone.metrics[extra], **tolerance)
        if algo == "eggroll":
            assert result.policy_bytes == alone.policy_bytes
        assert result.summary["vectorized_with"] == [t.trial_id for t in trials if t is not trial]


DEVICES_SCRIPT = """
import json, sys; sys.path.insert(0, 'tests')
import jax, numpy as np; from flax import serialization; from conftest import tiny_spec
from esbench.runner import resolve_trial, run_trial
from esbench.runner.programs import compile_programs
spec = tiny_spec(seeds=SEEDS, hparams={'pop_size': 16})
r = run_trial(spec, progress=False)
hlo = compile_programs([resolve_trial(spec)], np.asarray(SEEDS, np.uint32)).compiled_chunk.as_text()
print(json.dumps({'devices': jax.local_device_count(), 'gathers': hlo.count('all-gather'),
                  'policy': jax.tree_util.tree_map(lambda x: x.tolist(), serialization.msgpack_restore(r.policy_bytes)),
                  'metrics': r.metrics.drop(columns=['wall_clock_s', 'throughput_sps']).to_json()}))
"""


@pytest.mark.parametrize("seeds", [(0, 1), (0,)], ids=["seeds split", "population split"])
def test_two_devices_give_the_results_of_one(seeds):
    """On 2 (forced) CPU devices the seeds are split over them, or, with one seed, each generation's population
    (its program then gathers the fitnesses and reduces the update across devices): the same metrics as on one
    device, bit for bit, and the same policies to float32 rounding (measured: 1 ulp in one bias)."""
    outputs = []
    for flags in ("", "--xla_force_host_platform_device_count=2"):
        env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
        done = subprocess.run(
            [sys.executable, "-c", DEVICES_SCRIPT.replace("SEEDS", repr(seeds))],
            env=env,
            capture_output=True,
            text=True,
            cwd=os.path.dirname(os.path.dirname(__file__)),
            check=True,
        )
        outputs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert [o["devices"] for o in outputs] == [1, 2]
    # the population split gathers the fitnesses (split seeds only agree on when the chunk's loop ends)
    assert outputs[0]["gathers"] == 0 and (outputs[1]["gathers"] > 0) == (len(seeds) == 1)
    assert outputs[0]["metrics"] == outputs[1]["metrics"]
    jax.tree_util.tree_map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7),
        outputs[0]["policy"],
        outputs[1]["policy"],
    )


def test_diverging_trial_is_marked_and_sweep_continues(tmp_path):
    bad = tiny_spec(hparams={"learning_rate": 1e38, "sigma": 1e10, "optimizer": "sgd", "lr_decay": 1.0})
    good = tiny_spec(hparams={"layer_size": 16})  # another shape: not in the bad trial's program
    outcome = run_trials([bad, good], ResultStore(tmp_path), progress=False)
    assert len(outcome.ran) == 2
    summaries = load_summaries(tmp_path).set_index("trial_id")
    assert summaries.loc[bad.trial_id, "status"] == "diverged"
    assert summaries.loc[good.trial_id, "status"] == "finished"
    df = load(tmp_path)
    assert df[df.trial_id == bad.trial_id].diverged.iloc[-1]


# Six trials of different shapes (pop_size is not a value field, so each is its own program).
KILL_SWEEP = """
envs: [CartPole-v1]
algorithms:
  eggroll: {rank: 1, layer_size: 8, n_layers: 1}
search: {grid: {eggroll: {pop_size: [8, 10, 12, 14, 16, 18]}}}
trial: {seeds: 1, env_steps: 480, num_logs: 2, eval_episodes: 2, max_episode_steps: 20}
"""
# A plugin that SIGKILLs its own process right after the store has written the second trial: a kill at a
# known point, not at a moment chosen by a clock.
KILL_AFTER_TWO = """
import os, signal
from esbench.results import store

written = []
original = store.write_trial

def write_then_die(out_dir, result):
    path = original(out_dir, result)
    written.append(path)
    if len(written) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return path

store.write_trial = write_then_die
"""


def test_killed_sweep_resumes_without_rerunning_finished_trials(tmp_path, write_sweep):
    path = write_sweep(KILL_SWEEP)
    (tmp_path / "die_after_two.py").write_text(KILL_AFTER_TWO)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "esbench.cli",
        "sweep",
        str(path),
        "--out",
        str(out),
        "--quiet",
        "--import",
        "die_after_two",
    ]
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr
    trials = out / "trials"
    before = {
        p.name: (p / "summary.json").stat().st_mtime_ns
        for p in trials.glob("*")
        if not p.name.startswith(".")
    }
    assert len(before) == 2

    assert cli.main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    after = {
        p.name: (p / "summary.json").stat().st_mtime_ns
        for p in trials.glob("*")
        if not p.name.startswith(".")
    }
    assert len(after) == 6
    assert all(after[name] == mtime for name, mtime in before.items()), "finished trials were re-run"
    df = load(out)
    assert df.trial_id.nunique() == 6
    assert not df.duplicated(["trial_id", "seed", "log_point"]).any()
    specs = expand_sweep(__import__("yaml").safe_load(KILL_SWEEP))
    assert set(df.trial_id) == {s.trial_id for s in specs}


def test_ray_backend_matches_local(tmp_path):
    pytest.importorskip("ray")
    specs = [
        tiny_spec(seeds=(0, 1)),
        tiny_spec(hparams={"sigma": 0.1}, seeds=(0, 1)),
        tiny_spec(hparams={"layer_size": 16}),
    ]
    run_trials(specs, ResultStore(tmp_path / "local"), backend="local", progress=False)
    run_trials(specs, ResultStore(tmp_path / "ray"), backend="ray", progress=False)
    local = load(tmp_path / "local").sort_values(["trial_id", "seed", "log_point"]).reset_index(drop=True)
    remote = load(tmp_path / "ray").sort_values(["trial_id", "seed", "log_point"]).reset_index(drop=True)
    assert len(local) == len(remote) > 0
    pd.testing.assert_frame_equal(
        local[["trial_id", *NON_TIME_COLUMNS]], remote[["trial_id", *NON_TIME_COLUMNS]]
    )


def test_numbers_written_as_yaml_strings_are_accepted():
    # YAML 1.1 reads 3e-4 (no dot) as a string; the config layer takes it as the number it means.
    trial = resolve_trial(tiny_spec(hparams={"learning_rate": "3e-4", "pop_size": "8"}))
    assert trial.cfg.learning_rate == 3e-4 and trial.cfg.pop_size == 8
    with pytest.raises(ConfigError, match="learning_rate = 'fast' is invalid; allowed: a number > 0"):
        resolve_trial(tiny_spec(hparams={"learning_rate": "fast"}))


def test_ppo_anneal_horizon_defaults_to_the_trial_budget():
    base = dict(env_steps=3200)
    annealed = resolve_trial(tiny_spec("ppo", hparams={"anneal_lr": True}, **base))
    assert annealed.config["hparams"]["anneal_env_steps"] == 3200 == annealed.cfg.anneal_env_steps
    explicit = resolve_trial(tiny_spec("ppo", hparams={"anneal_lr": True, "anneal_env_steps": 6400}, **base))
    assert explicit.config["hparams"]["anneal_env_steps"] == 6400
    assert resolve_trial(tiny_spec("ppo", **base)).config["hparams"]["anneal_env_steps"] == 0


def test_negative_seed_is_a_config_error():
    with pytest.raises(
        ConfigError, match=r"seeds = \(-1,\) is invalid; allowed: a non-empty list of distinct integers"
    ):
        resolve_trial(tiny_spec(seeds=(-1,)))


def test_trial_ids_know_the_protocol_version(monkeypatch):
    from esbench.runner import config

    before = tiny_spec().trial_id
    assert resolve_trial(tiny_spec()).config["protocol_version"] == config.PROTOCOL_VERSION
    monkeypatch.setattr(config, "PROTOCOL_VERSION", config.PROTOCOL_VERSION + 1)
    assert tiny_spec().trial_id != before


def test_a_crashing_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    import jax.numpy as jnp

    from esbench.envs import Discrete, EnvSpec, build_env, register

    def broken():
        spec = EnvSpec(
            id="test/Broken-v0", suite="custom", obs_dim=2, action=Discrete(2), max_episode_steps=20
        )

        def raw_step(key, state, action):
            raise RuntimeError("this env cannot step")

        return build_env(spec, lambda key: (jnp.zeros(2), jnp.zeros(())), raw_step)

    register("test/Broken-v0", broken, overwrite=True)
    bad = tiny_spec(env="test/Broken-v0")
    good = tiny_spec()
    outcome = run_trials([bad, good], ResultStore(tmp_path), progress=False)
    assert list(outcome.failed) == [bad.trial_id]
    assert "this env cannot step" in outcome.failed[bad.trial_id]
    assert outcome.ran == [good.trial_id]
    assert set(load(tmp_path).trial_id) == {good.trial_id}
