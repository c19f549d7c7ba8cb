"""`esbench compare A B`: synthetic results folders with known answers, and a real run against itself and a rerun."""

import json

import numpy as np
import pytest
import scipy.stats
from conftest import tiny_spec

from esbench import cli
from esbench.report.compare import NoTrialsError, compare_folders
from esbench.results import ResultStore, TrialResult
from esbench.results.schema import metrics_frame
from esbench.runner import run_trials


def write_trial(
    folder,
    trial_id,
    finals,
    env="CartPole-v1",
    algo="eggroll",
    stage="final",
    hparams=None,
    protocol_version=1,
    wall_clock=1.0,
    summary=None,
):
    """A trial whose seed i ends (log point 1) with eval return finals[i]; log point 0 evaluates to 0."""
    rows = []
    for seed, final in enumerate(finals):
        for log_point, ret in ((0, 0.0), (1, float(final))):
            rows.append(
                {
                    "seed": seed,
                    "log_point": log_point,
                    "update": log_point,
                    "env_steps": 100 * log_point,
                    "simulated_env_steps": 100 * log_point,
                    "wall_clock_s": wall_clock * log_point,
                    "train_return": np.nan if log_point == 0 else ret,
                    "eval_return_mean": ret,
                    "eval_return_std": 0.0,
                    "throughput_sps": 1e3 / wall_clock,
                    "diverged": False,
                }
            )
    config = {
        "trial_id": trial_id,
        "env": env,
        "algo": algo,
        "stage": stage,
        "hparams": hparams or {"sigma": 0.1},
        "seeds": list(range(len(finals))),
        "env_steps": 100,
        "protocol_version": protocol_version,
    }
    ResultStore(folder).write(
        TrialResult(config, metrics_frame(rows), {"status": "ok", **(summary or {})}, b"")
    )


def welch(y, x):
    """The expected interval of mean(y) - mean(x), from scipy's own Welch test."""
    ci = scipy.stats.ttest_ind(y, x, equal_var=False).confidence_interval(0.95)
    return ci.low, ci.high


@pytest.fixture
def folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    # same config, other code version (so another trial id), B higher by 10: differs
    write_trial(a, "shift-a", [10, 12, 14, 16, 18], protocol_version=1)
    write_trial(b, "shift-b", [20, 22, 24, 26, 28], protocol_version=2)
    # same config, B overlapping A: same
    write_trial(a, "overlap-a", [1, 5, 9], env="Pendulum-v1", protocol_version=1)
    write_trial(b, "overlap-b", [2, 6, 8], env="Pendulum-v1", protocol_version=2)
    # the same trial, only its timing differs: bit-identical
    write_trial(a, "same-id", [3, 4, 5], algo="openes", wall_clock=1.0)
    write_trial(b, "same-id", [3, 4, 5], algo="openes", wall_clock=2.5)
    # one seed a side: no interval
    write_trial(a, "one-a", [7], algo="ppo", protocol_version=1)
    write_trial(b, "one-b", [9], algo="ppo", protocol_version=2)
    # same (env, algo, stage), another sigma: listed, not compared
    write_trial(a, "sigma-a", [1, 2], env="Pendulum-v1", algo="openes", hparams={"sigma": 0.1})
    write_trial(b, "sigma-b", [1, 2], env="Pendulum-v1", algo="openes", hparams={"sigma": 0.3})
    # a stage only A has
    write_trial(a, "search-a", [1, 2], stage="search")
    return a, b


def test_known_differences_intervals_and_verdicts(folders):
    a, b = folders
    cmp = compare_folders(a, b)
    rows = {(r["env"], r["algo"]): r for r in cmp.rows}
    assert len(rows) == 4

    shift = rows["CartPole-v1", "eggroll"]
    assert shift["mean_a"] == 14 and shift["mean_b"] == 24 and shift["difference"] == 10
    assert shift["interval"] == pytest.approx(welch([20, 22, 24, 26, 28], [10, 12, 14, 16, 18]))
    assert shift["verdict"] == "differs" and shift["interval"][0] > 0

    overlap = rows["Pendulum-v1", "eggroll"]
    assert overlap["difference"] == pytest.approx(16 / 3 - 5)
    assert overlap["interval"] == pytest.approx(welch([2, 6, 8], [1, 5, 9]))
    assert overlap["verdict"] == "same"

    assert rows["CartPole-v1", "openes"]["verdict"] == "bit-identical"
    assert (
        rows["CartPole-v1", "ppo"]["verdict"] == "untested" and rows["CartPole-v1", "ppo"]["interval"] is None
    )

    assert cmp.differing == [
        {
            "env": "Pendulum-v1",
            "algo": "openes",
            "stage": "final",
            "trial_id_a": "sigma-a",
            "trial_id_b": "sigma-b",
            "fields": ["hparams.sigma"],
        }
    ]
    assert cmp.only_a == [
        {"env": "CartPole-v1", "algo": "eggroll", "stage": "search", "trial_id": "search-a"}
    ]
    assert cmp.only_b == [] and not cmp.same_sweep
    assert cmp.counts() == {"bit-identical": 1, "same": 1, "differs": 1, "untested": 1}


def test_cli_text_json_and_exit_codes(folders, capsys):
    a, b = map(str, folders)
    assert cli.main(["compare", a, b]) == 0
    text = capsys.readouterr().out
    assert "different sweeps" in text and "configs differ in hparams.sigma" in text and "only in A" in text
    assert cli.main(["compare", a, b, "--fail-on-differ"]) == 1
    capsys.readouterr()
    assert cli.main(["compare", a, b, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["counts"]["differs"] == 1 and payload["same_sweep"] is False


def test_bad_input_folder_without_trials(tmp_path, folders, capsys):
    (tmp_path / "empty" / "trials").mkdir(parents=True)
    with pytest.raises(NoTrialsError, match="no finished trials"):
        compare_folders(tmp_path / "empty", folders[0])
    assert cli.main(["compare", str(tmp_path / "empty"), str(folders[0])]) == cli.EXIT_BAD_INPUT
    assert cli.main(["compare", str(tmp_path / "nowhere"), str(folders[0])]) == cli.EXIT_BAD_INPUT
    assert "no results in" in capsys.readouterr().err


def test_a_run_against_itself_and_a_rerun(tmp_path, capsys):
    spec = tiny_spec("eggroll", seeds=(0, 1))
    for name in ("run", "rerun"):
        run_trials([spec], ResultStore(tmp_path / name), progress=False)
    for other in (
        "run",
        "rerun",
    ):  # a rerun in the same process is the same program: bit-identical but for timing
        cmp = compare_folders(tmp_path / "run", tmp_path / other)
        assert cmp.same_sweep and [r["verdict"] for r in cmp.rows] == ["bit-identical"]
    assert cli.main(["compare", str(tmp_path / "run"), str(tmp_path / "run"), "--fail-on-differ"]) == 0
    text = capsys.readouterr().out
    assert "1 bit-identical" in text and "different device layouts" not in text
    one_device = {
        "device_kind": "cpu",
        "device_count": 1,
        "mesh_axes": [],
        "mesh_shape": [],
        "sharded": {},
    }  # what every summary records, --deterministic off
    assert cmp.layouts["A"] == [{"layout": one_device, "deterministic": False, "trials": 1}]
    assert "layout A: 1 x cpu, nothing sharded; --deterministic off (1 trial(s))" in text


def test_layouts_listed_per_folder_and_a_pair_across_layouts_marked(tmp_path, capsys):
    eight = {"device_kind": "cpu", "device_count": 8, "mesh_axes": ["batch"], "mesh_shape": [8]}
    seeds, population = (
        {**eight, "sharded": {"seeds": "batch"}},
        {**eight, "sharded": {"population": "batch"}},
    )
    a, b = tmp_path / "a", tmp_path / "b"
    write_trial(a, "t1", [3, 4, 5], summary={"layout": seeds, "deterministic": True})
    write_trial(b, "t1", [3, 4, 5], summary={"layout": population, "deterministic": False})
    write_trial(a, "t2", [1, 2, 3], algo="ppo", summary={"layout": seeds, "deterministic": True})
    write_trial(b, "t2", [1, 2, 3], algo="ppo")  # a summary from before layouts were recorded
    cmp = compare_folders(a, b)
    assert [(r["algo"], r["layouts_differ"]) for r in cmp.rows] == [("eggroll", True), ("ppo", True)]
    assert cmp.layouts["A"] == [{"layout": seeds, "deterministic": True, "trials": 2}]
    assert cli.main(["compare", str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert "layout A: 8 x cpu, mesh batch=8, seeds over batch; --deterministic on (2 trial(s))" in text
    assert "layout B: 8 x cpu, mesh batch=8, population over batch; --deterministic off (1 trial(s))" in text
    assert "layout B: not recorded; --deterministic not recorded (1 trial(s))" in text
    assert "bit-identical*" in text and "* 2 pair(s) ran on different device layouts" in text
