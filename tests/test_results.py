"""The results store: atomic trial folders, loading, corrupt folders reported, trained policies reloaded."""

import shutil

import jax
import numpy as np
import pytest

from esbench.algorithms.evaluate import evaluate_policy
from esbench.results import (
    CorruptResultsError,
    ResultStore,
    damaged_trials,
    load,
    load_summaries,
    load_trained_policy,
    trial_path,
)
from esbench.runner import TrialSpec, run_trial
from esbench.runner.programs import evaluation_key

SPEC = TrialSpec(
    env="CartPole-v1",
    algo="eggroll",
    hparams={"pop_size": 8, "rank": 1, "layer_size": 8, "n_layers": 1},
    seeds=(3, 5),
    env_steps=8 * 20 * 4,
    num_logs=2,
    eval_episodes=3,
    max_episode_steps=20,
)


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    result = run_trial(SPEC, progress=False)
    ResultStore(out).write(result)
    return out, result


def test_load_returns_every_row_with_trial_columns(stored):
    out, result = stored
    df = load(out)
    assert len(df) == len(result.metrics) == 2 * 3  # seeds x log points (before training, 2 chunks)
    assert set(df.columns) >= {
        "trial_id",
        "env",
        "algo",
        "seed",
        "env_steps",
        "wall_clock_s",
        "train_return",
        "eval_return_mean",
        "eval_return_std",
        "throughput_sps",
        "diverged",
    }
    assert (df.trial_id == result.config["trial_id"]).all() and (df.env == "CartPole-v1").all()
    summaries = load_summaries(out)
    assert summaries.loc[0, "status"] == "finished" and summaries.loc[0, "device"].startswith("cpu")
    assert summaries.loc[0, "versions"]["gymnax"] == "1.0.1"


def test_reloaded_policy_reproduces_the_final_evaluation(stored):
    out, result = stored
    trial_id = result.config["trial_id"]
    last_log_point = result.summary["chunks"]
    for seed in SPEC.seeds:
        policy = load_trained_policy(out, trial_id, seed)
        stats = jax.jit(
            lambda k: evaluate_policy(
                k, policy.env, policy.params, SPEC.eval_episodes, policy.deterministic, policy.activation
            )
        )(evaluation_key(seed, last_log_point))
        expected = result.summary["final_eval_return"][str(seed)]
        assert float(np.mean(stats.returns)) == pytest.approx(expected, rel=1e-6)
        action = policy.act(np.zeros(policy.env.spec.obs_dim, np.float32), jax.random.PRNGKey(0))
        assert action.shape == () and 0 <= int(action) < 2
    with pytest.raises(ValueError, match=r"seed = 4 is invalid for trial .*; allowed: its seeds"):
        load_trained_policy(out, trial_id, 4)


def _tree(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_incomplete_and_interrupted_folders_are_reported_not_read(stored, tmp_path, capsys):
    out, result = stored
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    trial_id = result.config["trial_id"]
    (trial_path(copy, trial_id) / "metrics.parquet").unlink()
    (copy / "trials" / ".tmp-killed-123").mkdir()
    before = _tree(copy)
    df = load(copy)
    assert df.empty
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith("esbench: ") for line in lines)  # one line each
    assert trial_id in lines[1] and "missing metrics.parquet" in lines[1] and ".tmp-killed-123" in lines[0]
    assert damaged_trials(copy) == {trial_id: lines[1].split(": ", 2)[2]}
    with pytest.raises(CorruptResultsError):
        load(copy, strict=True)
    assert _tree(copy) == before  # nothing in the damaged folder is changed


def test_a_truncated_metrics_file_is_named_once_and_left_out(stored, tmp_path, capsys):
    out, result = stored
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    trial_id = result.config["trial_id"]
    metrics = trial_path(copy, trial_id) / "metrics.parquet"
    metrics.write_bytes(metrics.read_bytes()[:100])
    assert load(copy).empty and load_summaries(copy).empty
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"esbench: left out trial {trial_id}: ")
    assert "metrics.parquet" in lines[0]


def test_rewriting_a_trial_replaces_it_whole(stored, tmp_path):
    out, result = stored
    store = ResultStore(tmp_path)
    store.write(result)
    store.write(result)
    assert store.is_finished(result.config["trial_id"])
    assert [p.name for p in (tmp_path / "trials").iterdir()] == [result.config["trial_id"]]
    assert len(load(tmp_path)) == len(result.metrics)


def test_missing_results_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results in"):
        load(tmp_path / "nowhere")
