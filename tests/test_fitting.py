"""Programs that fit the device (runner/fitting.py): a split group computes what the unsplit one does, and a
group that cannot fit fails alone with a failure record while the others run."""

import dataclasses
import json

import pandas as pd
import pytest
from conftest import NON_TIME_COLUMNS, TINY_HPARAMS, tiny_spec

from esbench import cli
from esbench.results import ResultStore
from esbench.results.store import load_failures, read_trial, trial_path
from esbench.runner import backends, fitting, resolve_trial
from esbench.runner.backends import run_trials
from esbench.runner.memory import HEADROOM_BYTES, accelerator_limit, memory_limit
from esbench.runner.roofline import accelerator
from esbench.validation import ConfigError

SIGMAS = (0.1, 0.2, 0.3)


def _peak(trials) -> int:
    return fitting._compile(trials, tuple(trials[0].spec.seeds))[2]


@pytest.fixture(scope="module")
def grid():
    """Three points of one shape (one group) and their programs' peaks at 1 and 3 points."""
    trials = [resolve_trial(tiny_spec("eggroll", hparams={"sigma": s}, seeds=(0, 1))) for s in SIGMAS]
    assert len(backends.group_trials(trials)) == 1
    one, three = _peak(trials[:1]), _peak(trials)
    assert one < three
    return trials, one, three


def test_a_split_group_gives_the_unsplit_results_bit_for_bit(grid, tmp_path, capsys):
    trials, one, three = grid
    unsplit = run_trials(trials, ResultStore(tmp_path / "unsplit"), progress=False)
    split = run_trials(trials, ResultStore(tmp_path / "split"), memory_limit=one)
    assert sorted(split.ran) == sorted(unsplit.ran) == sorted(t.trial_id for t in trials)
    assert not split.failed
    assert "split: 1 point x 2 seeds per program, 3 programs" in capsys.readouterr().err
    for trial in trials:
        folder_a, folder_b = (trial_path(tmp_path / name, trial.trial_id) for name in ("unsplit", "split"))
        _, metrics_a, summary_a = read_trial(folder_a)
        _, metrics_b, summary_b = read_trial(folder_b)
        pd.testing.assert_frame_equal(
            metrics_a[NON_TIME_COLUMNS], metrics_b[NON_TIME_COLUMNS], check_exact=True
        )
        extra = [c for c in metrics_a.columns if c.startswith("m_")]
        pd.testing.assert_frame_equal(metrics_a[extra], metrics_b[extra], check_exact=True)
        assert (folder_a / "policy.msgpack").read_bytes() == (folder_b / "policy.msgpack").read_bytes()
        assert "split" not in summary_a
        assert summary_b["split"] == {"points_per_program": 1, "seeds_per_program": 2, "programs": 3}


def test_the_points_per_program_are_the_most_that_fit(grid):
    trials, one, three = grid
    limit = (one + three) // 2
    parts = list(fitting.fitted_programs(trials, limit=limit))
    sizes = [len(p.trials) for p in parts]
    assert sum(sizes) == 3 and sizes[0] in (1, 2) and all(p.split.points_per == sizes[0] for p in parts)
    assert _peak(trials[: sizes[0]]) <= limit
    if sizes[0] == 1:
        assert _peak(trials[:2]) > limit
    (whole,) = fitting.fitted_programs(trials, limit=three)
    assert whole.split is None and len(whole.trials) == 3


def test_a_group_that_cannot_fit_fails_alone_with_a_record(grid, tmp_path):
    """The big group cannot fit at 1 point: it gets failure records, and the small group runs."""
    trials, one, three = grid
    big = resolve_trial(tiny_spec("eggroll", hparams={"pop_size": 64, "layer_size": 64}, seeds=(0, 1)))
    big_peak = _peak([big])
    assert big_peak > three
    store = ResultStore(tmp_path / "out")
    outcome = run_trials([big, *trials], store, progress=False, memory_limit=three)
    assert sorted(outcome.ran) == sorted(t.trial_id for t in trials)
    assert list(outcome.failed) == [big.trial_id]
    line = outcome.failed[big.trial_id]
    assert line.startswith("memory: CartPole-v1 x eggroll cannot fit")
    assert "its smallest program (1 point x 2 seed(s)) needs" in line
    records = load_failures(tmp_path / "out")
    assert list(records) == [big.trial_id]
    assert records[big.trial_id]["kind"] == "memory" and records[big.trial_id]["reason"] == line
    # the guard off: it runs unchecked, and its record goes once it has finished
    again = run_trials([big], store, progress=False, memory_limit=three, memory_guard=False)
    assert again.ran == [big.trial_id] and load_failures(tmp_path / "out") == {}


def test_the_cli_exits_1_when_a_group_cannot_fit(tmp_path, capsys):
    tiny = [f"--set={k}={v}" for k, v in TINY_HPARAMS["eggroll"].items()]
    args = ["--env", "CartPole-v1", "--algo", "eggroll", "--env-steps", "960", "--num-logs", "2"]
    args += ["--eval-episodes", "1", "--max-episode-steps", "20", "--seeds", "1", *tiny]
    code = cli.main(["run", *args, "--out", str(tmp_path / "r"), "--memory-limit", "1kB", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert "memory: CartPole-v1 x eggroll cannot fit 1.0 kB (--memory-limit): its smallest program" in err
    assert len(load_failures(tmp_path / "r")) == 1


def test_one_memory_limit_for_the_guard_and_the_plan():
    assert memory_limit(123) == (123, "--memory-limit")
    limit, source = memory_limit()
    assert limit is None or ("headroom" in source and limit >= 0)
    l40s = accelerator("l40s")
    assert (l40s.memory_gb, l40s.bandwidth_tbs, l40s.fp32_tflops, l40s.tf32_tflops) == (
        48,
        0.864,
        91.6,
        183.0,
    )
    assert accelerator_limit(48) == int(48e9 * 0.75) - HEADROOM_BYTES
    json.dumps(fitting.Split(3, 2, 1, 2).as_dict())
    assert fitting.Split(3, 4, 2, 4).describe() == "split: 2 points x 4 seeds per program, 2 programs"


def test_gpu_requests_a_ray_cluster_cannot_honour_are_refused_in_one_line():
    def asking(num_gpus):
        return [resolve_trial(tiny_spec("eggroll", num_gpus=num_gpus))]

    backends.check_gpu_requests(asking(0), [0.0, 0.0])  # a CPU cluster
    backends.check_gpu_requests(asking(2), [4.0, 1.0])
    with pytest.raises(ConfigError, match=r"num_gpus = 0.5 is refused: a fraction of a GPU"):
        backends.check_gpu_requests(asking(0.5), [4.0])
    with pytest.raises(
        ConfigError, match=r"num_gpus = 0 on a Ray cluster with 5 GPU\(s\) would run it on a CPU"
    ):
        backends.check_gpu_requests(asking(0), [4.0, 1.0])
    with pytest.raises(ConfigError, match=r"num_gpus = 8 cannot be placed: .* \(its nodes have 4, 1 GPU"):
        backends.check_gpu_requests(asking(8), [4.0, 1.0])


SPLIT_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from conftest import tiny_spec
from esbench.results import ResultStore
from esbench.runner import checkpoint, resolve_trial
from esbench.runner.backends import run_trials

saved, original = [], checkpoint.Checkpointer.save
def save_then_die(self, *args, **kwargs):  # SIGKILL after the 4th checkpoint: in the second sub-group
    path = original(self, *args, **kwargs)
    saved.append(path)
    if len(saved) == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    return path
checkpoint.Checkpointer.save = save_then_die
trials = [resolve_trial(tiny_spec("eggroll", hparams={{"sigma": s}}, seeds=(0, 1))) for s in {sigmas!r}]
run_trials(trials, ResultStore({out!r}), progress=False, memory_limit={limit}, checkpoint_every=1)
"""


def test_a_split_group_killed_mid_run_resumes_to_the_unsplit_results(grid, tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    trials, one, three = grid
    out = tmp_path / "split"
    script = SPLIT_RUN.format(tests=str(Path(__file__).parent), sigmas=SIGMAS, out=str(out), limit=one)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    finished = [t.trial_id for t in trials if ResultStore(out).is_finished(t.trial_id)]
    assert 1 <= len(finished) < 3  # the first sub-group stored, the killed one not
    resumed = run_trials(trials, ResultStore(out), progress=False, memory_limit=one, checkpoint_every=1)
    assert sorted(resumed.skipped) == sorted(finished) and not resumed.failed
    run_trials(trials, ResultStore(tmp_path / "unsplit"), progress=False)
    for trial in trials:
        folder_a, folder_b = (trial_path(tmp_path / name, trial.trial_id) for name in ("unsplit", "split"))
        metrics_a, metrics_b = read_trial(folder_a)[1], read_trial(folder_b)[1]
        columns = NON_TIME_COLUMNS + [c for c in metrics_a.columns if c.startswith("m_")]
        pd.testing.assert_frame_equal(metrics_a[columns], metrics_b[columns], check_exact=True)
        assert (folder_a / "policy.msgpack").read_bytes() == (folder_b / "policy.msgpack").read_bytes()


def test_a_ray_cluster_with_gpus_runs_a_split_group_and_fails_the_one_that_cannot_fit(grid, tmp_path):
    """A local Ray cluster declaring 4 GPUs (the trials ask for 1 each; JAX still computes on this CPU): the
    group that needs a split gives the unsplit local results, the one that cannot fit fails alone."""
    ray = pytest.importorskip("ray")
    trials, one, three = grid
    on_gpu = [resolve_trial(dataclasses.replace(t.spec, num_gpus=1)) for t in trials]
    big = resolve_trial(
        tiny_spec("eggroll", hparams={"pop_size": 64, "layer_size": 64}, seeds=(0, 1), num_gpus=1)
    )
    local = run_trials(on_gpu, ResultStore(tmp_path / "local"), progress=False)
    ray.init(num_cpus=2, num_gpus=4, include_dashboard=False, log_to_driver=False)
    try:
        outcome = run_trials(
            [big, *on_gpu], ResultStore(tmp_path / "ray"), backend="ray", progress=False, memory_limit=one
        )
    finally:
        ray.shutdown()
    assert sorted(outcome.ran) == sorted(local.ran) == sorted(t.trial_id for t in on_gpu)
    assert list(outcome.failed) == [big.trial_id] and outcome.failed[big.trial_id].startswith("memory: ")
    assert list(load_failures(tmp_path / "ray")) == [big.trial_id]
    for trial in on_gpu:
        (_, a, _), (_, b, summary) = (
            read_trial(trial_path(tmp_path / n, trial.trial_id)) for n in ("local", "ray")
        )
        pd.testing.assert_frame_equal(a[NON_TIME_COLUMNS], b[NON_TIME_COLUMNS], check_exact=True)
        assert summary["split"]["points_per_program"] == 1
