"""Long runs survive and can be watched: mid-trial checkpoints and exact resume after SIGKILL, checkpoints
that never mix, graceful stop, one process per trial, live logs streamed from a running sweep.

Kills happen at known points (a plugin module, loaded with --import, kills its own process after a given
checkpoint or chunk), never at a moment chosen by a clock.
"""

import json
import signal
import subprocess
import sys

import pandas as pd
import pytest
from conftest import NON_TIME_COLUMNS

from esbench import cli
from esbench.results import ResultStore, load, load_summaries
from esbench.runner import expand_sweep, load_sweep_file
from esbench.runner.checkpoint import CHECKPOINTS_DIR

# One trial, 4 chunks of EGGROLL on CartPole, two seeds.
ONE_TRIAL = """
envs: [CartPole-v1]
algorithms:
  eggroll: {pop_size: 8, rank: 1, layer_size: 8, n_layers: 1, n_parallel_evaluations: 1}
trial: {seeds: 2, env_steps: 3000, num_logs: 4, eval_episodes: 2, max_episode_steps: 50}
"""
# Kill this process (SIGKILL) right after the second checkpoint is saved.
DIE_AFTER_CHECKPOINT = """
import os, signal
from esbench.runner import checkpoint

saved = []
original = checkpoint.Checkpointer.save

def save_then_die(self, *args, **kwargs):
    path = original(self, *args, **kwargs)
    saved.append(path)
    if len(saved) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return path

checkpoint.Checkpointer.save = save_then_die
"""
# Send this process SIGTERM (or SIGINT) once the first chunk is recorded: the graceful stop.
SIGNAL_AFTER_FIRST_CHUNK = """
import os, signal
from esbench.runner import record

original = record.TrialRecord.chunk
sent = []

def chunk_then_signal(self, *args, **kwargs):
    rows = original(self, *args, **kwargs)
    if not sent:
        sent.append(True)
        os.kill(os.getpid(), signal.{name})
    return rows

record.TrialRecord.chunk = chunk_then_signal
"""


def sweep_command(path, out, *extra):
    return [sys.executable, "-m", "esbench.cli", "sweep", str(path), "--out", str(out), "--quiet", *extra]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The sweep run straight through: what every interrupted-and-resumed run must reproduce."""
    folder = tmp_path_factory.mktemp("straight")
    path = folder / "sweep.yaml"
    path.write_text(ONE_TRIAL)
    assert cli.main(["sweep", str(path), "--out", str(folder / "out"), "--quiet"]) == 0
    return load(folder / "out"), policies(folder / "out")


def policies(out) -> dict:
    return {
        p.name: (p / "policy.msgpack").read_bytes()
        for p in (out / "trials").iterdir()
        if not p.name.startswith(".")
    }


def same_as(out, expected) -> None:
    metrics, expected_policies = expected
    got = load(out).sort_values(["seed", "log_point"]).reset_index(drop=True)
    want = metrics.sort_values(["seed", "log_point"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        got[["trial_id", *NON_TIME_COLUMNS]], want[["trial_id", *NON_TIME_COLUMNS]], check_exact=True
    )
    extra = sorted(c for c in want.columns if c.startswith("m_"))
    pd.testing.assert_frame_equal(got[extra], want[extra], check_exact=True)
    assert policies(out) == expected_policies


def test_sigkilled_trial_resumes_from_its_checkpoint_bit_for_bit(tmp_path, write_sweep, uninterrupted):
    path = write_sweep(
        ONE_TRIAL + "checkpoint_every: 1\n"
    )  # the sweep file's field (the others: --checkpoint-every)
    (tmp_path / "die_after_checkpoint.py").write_text(DIE_AFTER_CHECKPOINT)
    out = tmp_path / "out"
    done = subprocess.run(
        sweep_command(path, out, "--import", "die_after_checkpoint"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    (checkpoint,) = (out / CHECKPOINTS_DIR).iterdir()
    assert json.loads((checkpoint / "meta.json").read_text())["records"][0]["log_point"] == 2
    assert not list((out / "trials").glob("CartPole*"))  # killed mid-trial: nothing finished

    assert cli.main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    same_as(out, uninterrupted)
    assert not (out / CHECKPOINTS_DIR / checkpoint.name).exists()  # removed once the trial finished


@pytest.mark.parametrize("damage", ["protocol_version", "other_config", "truncated"])
def test_a_checkpoint_that_does_not_fit_is_reported_and_the_trial_starts_afresh(
    tmp_path, write_sweep, capsys, uninterrupted, damage
):
    path = write_sweep(ONE_TRIAL)
    (tmp_path / "die_after_checkpoint.py").write_text(DIE_AFTER_CHECKPOINT)
    out = tmp_path / "out"
    subprocess.run(
        sweep_command(path, out, "--checkpoint-every", "1", "--import", "die_after_checkpoint"),
        cwd=tmp_path,
        capture_output=True,
    )
    (checkpoint,) = (out / CHECKPOINTS_DIR).iterdir()
    meta = json.loads((checkpoint / "meta.json").read_text())
    if damage == "protocol_version":
        meta["protocol_version"] -= 1
    elif damage == "other_config":
        meta["configs_sha256"] = "0" * 64
    (checkpoint / "meta.json").write_text(json.dumps(meta))
    if damage == "truncated":
        state = checkpoint / "state.msgpack"
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])

    assert cli.main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "not used" in line]
    reason = {
        "protocol_version": "protocol version",
        "other_config": "other trial configs",
        "truncated": "truncated or damaged",
    }[damage]
    assert len(lines) == 1 and reason in lines[0] and "starting 1 trial(s) afresh" in lines[0], lines
    same_as(out, uninterrupted)  # started afresh, never resumed into the wrong state


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_signal_stops_after_the_chunk_with_a_checkpoint_and_a_resume_message(
    tmp_path, write_sweep, uninterrupted, name
):
    path = write_sweep(ONE_TRIAL)
    (tmp_path / "stop_after_first_chunk.py").write_text(SIGNAL_AFTER_FIRST_CHUNK.replace("{name}", name))
    out = tmp_path / "out"
    done = subprocess.run(
        sweep_command(path, out, "--import", "stop_after_first_chunk"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == cli.EXIT_INTERRUPTED, done.stderr
    assert "stopped after chunk 1 of 4" in done.stderr and "rerun the same command to resume" in done.stderr
    (checkpoint,) = (out / CHECKPOINTS_DIR).iterdir()
    assert json.loads((checkpoint / "meta.json").read_text())["records"][0]["log_point"] == 1

    assert cli.main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0
    same_as(out, uninterrupted)


FOUR_SHAPES = """
envs: [CartPole-v1]
algorithms:
  eggroll: {rank: 1, layer_size: 8, n_layers: 1, n_parallel_evaluations: 1}
search: {grid: {eggroll: {pop_size: [8, 10, 12, 14]}}}
trial: {seeds: 1, env_steps: 800, num_logs: 2, eval_episodes: 2, max_episode_steps: 20}
"""
# Appends "<pid> <trial id>" to started.txt whenever this process starts running a group.
LOG_STARTS = """
import os
from esbench.runner import backends

original = backends.run_group

def logged(group, *args, **kwargs):
    with open("started.txt", "a") as f:
        f.writelines(f"{os.getpid()} {t.trial_id}\\n" for t in group)
    return original(group, *args, **kwargs)

backends.run_group = logged
"""


def test_a_trial_another_process_holds_is_left_to_it(tmp_path, write_sweep):
    path = write_sweep(FOUR_SHAPES)
    out = tmp_path / "out"
    specs = expand_sweep(load_sweep_file(path))
    held_id = specs[1].trial_id
    with ResultStore(out).claim([held_id]) as held:  # as another sweep running it would
        assert held == [held_id]
        done = subprocess.run(sweep_command(path, out), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "ran 3 trial(s), skipped 0 already finished, 1 left to another process running them" in done.stdout
    assert held_id not in set(load(out).trial_id)
    assert cli.main(["sweep", str(path), "--out", str(out), "--quiet"]) == 0  # released: now it runs
    assert set(load(out).trial_id) == {s.trial_id for s in specs}


def test_two_sweeps_on_one_folder_never_run_a_trial_twice(tmp_path, write_sweep):
    path = write_sweep(FOUR_SHAPES)
    (tmp_path / "log_starts.py").write_text(LOG_STARTS)
    out = tmp_path / "out"
    procs = [
        subprocess.Popen(
            sweep_command(path, out, "--import", "log_starts"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=900) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    started = [line.split() for line in (tmp_path / "started.txt").read_text().splitlines()]
    ids = [trial_id for _, trial_id in started]
    assert len(ids) == len(set(ids)) == 4, started  # every trial run once, by one of the two
    summaries = load_summaries(out)
    assert len(summaries) == 4 and summaries.status.eq("finished").all()
    assert not [p for p in (out / "trials").iterdir() if p.name.startswith(".tmp-")]


def test_live_logs_stream_every_log_point_of_every_seed(tmp_path, write_sweep):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    path = write_sweep(ONE_TRIAL)
    out = tmp_path / "out"
    assert (
        cli.main(["sweep", str(path), "--out", str(out), "--quiet", "--log", "tensorboard", "--log", "wandb"])
        == 0
    )
    metrics = load(out)
    (trial_id,) = set(metrics.trial_id)
    for seed, rows in metrics.groupby("seed"):
        events = EventAccumulator(str(out / "tensorboard" / trial_id / f"seed_{seed}"))
        events.Reload()
        logged = {e.step: e.value for e in events.Scalars("eval/return_mean")}
        assert logged == pytest.approx(dict(zip(rows.env_steps, rows.eval_return_mean)))
    runs = sorted((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 2 and all(list(run.glob("*.wandb")) for run in runs)


def test_a_state_holding_an_env_suites_own_classes_checkpoints_bit_for_bit():
    """PPO carries its envs' states; jumanji's are plain dataclasses that flax's serialization refused (a cpu
    protocol run's Knapsack PPO group failed at its first checkpoint)."""
    import jax
    import numpy as np

    from esbench.envs import make
    from esbench.runner.checkpoint import state_from_bytes, state_to_bytes

    _, env_state = make("jumanji/Knapsack-v1").reset(jax.random.PRNGKey(0))
    state = {
        "env": env_state,
        "key": jax.random.PRNGKey(1),
        "params": np.arange(6, dtype=np.float32).reshape(2, 3),
    }
    back = state_from_bytes(state, state_to_bytes(state))
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(state)
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(back)):
        assert np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)
    with pytest.raises(ValueError, match=r"leaf \d+ is float32\[2, 3\], the state.s float32\[3, 2\]"):
        state_from_bytes({**state, "params": np.zeros((3, 2), np.float32)}, state_to_bytes(state))
