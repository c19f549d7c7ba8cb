"""Live logs: what the sinks write is read back with each tool's own reader, value by value, step by step."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from esbench.runner.live_log import LOGGERS, make_live_logs
from esbench.validation import ConfigError

TRIAL = "CartPole_v1-eggroll-0123456789"
SEEDS = (3, 7)
CONFIG = {
    "env": "CartPole-v1",
    "algo": "eggroll",
    "hparams": {"sigma": 0.05, "hidden": [16, 16]},
    "seeds": list(SEEDS),
    "env_steps": 4096,
    "trial_id": TRIAL,
}
SUMMARY = {
    "status": "finished",
    "seed_status": {"3": "finished", "7": "diverged"},
    "final_eval_return": {"3": 180.5, "7": None},
    "run_s": 1.25,
    "versions": {"jax": "0.9.0"},
}
NAN = float("nan")

# The tags the module documents, written out here so the test does not reuse the module's own mapping.
TAGS = {
    "update": "progress/update",
    "env_steps": "progress/env_steps",
    "simulated_env_steps": "progress/simulated_env_steps",
    "wall_clock_s": "perf/wall_clock_s",
    "train_return": "train/return",
    "eval_return_mean": "eval/return_mean",
    "eval_return_std": "eval/return_std",
    "throughput_sps": "perf/throughput_sps",
    "diverged": "progress/diverged",
    "m_sigma": "metrics/sigma",
    "m_policy_loss": "metrics/policy_loss",
}


def _row(seed, log_point, env_steps, train, eval_mean, eval_std, sps, diverged, sigma, loss):
    return {
        "seed": seed,
        "log_point": log_point,
        "update": 4 * log_point,
        "env_steps": env_steps,
        "simulated_env_steps": 2 * env_steps + seed,
        "wall_clock_s": 0.37 * log_point + 0.01 * seed,
        "train_return": train,
        "eval_return_mean": eval_mean,
        "eval_return_std": eval_std,
        "throughput_sps": sps,
        "diverged": diverged,
        "m_sigma": sigma,
        "m_policy_loss": loss,
    }


# 3 log points x 2 seeds; each seed has its own env_steps; NaN where not measured (and a diverged seed);
# numpy scalars as the runner hands them over.
LOG_POINTS = [
    [
        _row(3, 0, 0, NAN, 9.5, 1.25, NAN, False, 0.05, NAN),
        _row(7, 0, 0, NAN, 11.0, 2.5, NAN, np.bool_(False), np.float32(0.05), NAN),
    ],
    [
        _row(3, 1, 1000, 20.25, NAN, NAN, 1234.5, False, 0.049, -0.125),
        _row(7, 1, np.int64(1200), np.float64(30.5), NAN, NAN, 1300.0, False, 0.048, 0.25),
    ],
    [
        _row(3, 2, 2048, 55.0, 60.75, 3.5, 2345.25, False, 0.047, -0.5),
        _row(7, 2, 2400, NAN, NAN, NAN, 2400.0, True, NAN, NAN),
    ],
]


def expected(seed: int) -> dict[str, dict[int, float]]:
    """{tag: {env_steps: value}} of every finite field of `seed`'s rows."""
    out: dict[str, dict[int, float]] = {}
    for rows in LOG_POINTS:
        for row in rows:
            if row["seed"] != seed:
                continue
            for field, tag in TAGS.items():
                if math.isfinite(value := float(row[field])):
                    out.setdefault(tag, {})[int(row["env_steps"])] = value
    return out


def run_all(logs, points=LOG_POINTS, summary=SUMMARY):
    for log in logs:
        log.start(TRIAL, CONFIG)
    for rows in points:
        for log in logs:
            log.log(rows)
    for log in logs:
        log.finish(summary)


# --- TensorBoard: tensorboard's own EventAccumulator reads the event files back ---------------------------


def read_tensorboard(run_dir: Path) -> tuple[dict[str, dict[int, float]], dict[str, str]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    scalars = {tag: {e.step: e.value for e in acc.Scalars(tag)} for tag in acc.Tags()["scalars"]}
    texts = {
        tag.split("/")[0]: acc.Tensors(tag)[-1].tensor_proto.string_val[0].decode()
        for tag in acc.Tags()["tensors"]
    }
    return scalars, texts


def as_float32(table: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """Event files store scalars as float32."""
    return {tag: {step: float(np.float32(v)) for step, v in values.items()} for tag, values in table.items()}


def test_tensorboard_writes_every_finite_value_at_its_env_step_per_seed(tmp_path):
    (log,) = make_live_logs(["tensorboard"], tmp_path)
    log.start(TRIAL, CONFIG)
    log.log(LOG_POINTS[0])
    # Flushed after every log call: a running trial's first log point is already on disk.
    first, _ = read_tensorboard(tmp_path / "tensorboard" / TRIAL / "seed_3")
    assert first == {tag: {0: v[0]} for tag, v in as_float32(expected(3)).items() if 0 in v}
    for rows in LOG_POINTS[1:]:
        log.log(rows)
    log.finish(SUMMARY)
    log.close()  # after finish: nothing left to do

    assert sorted(p.name for p in (tmp_path / "tensorboard" / TRIAL).iterdir()) == ["seed_3", "seed_7"]
    for seed in SEEDS:
        scalars, texts = read_tensorboard(tmp_path / "tensorboard" / TRIAL / f"seed_{seed}")
        assert scalars == as_float32(expected(seed))  # every finite value at its step; NaN absent
        config = json.loads(texts["config"])
        summary = json.loads(texts["summary"])
        assert config == CONFIG | {"seed": seed}
        assert summary["final_eval_return"] == SUMMARY["final_eval_return"][str(seed)]
        assert summary["seed_status"] == SUMMARY["seed_status"][str(seed)]
        assert summary["versions"] == {"jax": "0.9.0"} and summary["run_s"] == 1.25
    assert expected(7)["metrics/sigma"] == {0: float(np.float32(0.05)), 1200: 0.048}
    assert "train/return" not in first  # NaN at log point 0: nothing written


# --- W&B: offline runs, read back with W&B's own reader of the run's .wandb log (`wandb leet inspect`) --------


def wandb_records(path: Path) -> list[dict]:
    """The records of a .wandb file, one dict each, as `wandb leet inspect --json` prints them."""
    out = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def read_wandb_run(path: Path) -> dict:
    """{run, config, history {tag: {step: value}}, summary, exit_code} of one offline run's .wandb file."""
    run = {"history": {}, "summary": {}, "exit_code": None}
    for record in wandb_records(path):
        if record["type"] == "run":
            run["run"] = record["run"]
            run["config"] = record["run"]["config"]["update"]
        elif record["type"] == "history":
            items = dict(record["history"]["item"])
            step = items.pop("_step")
            for name, value in items.items():
                if not name.startswith("_"):
                    run["history"].setdefault(name, {})[step] = value
        elif record["type"] == "summary":
            run["summary"].update(record["summary"].get("update", {}))
        elif record["type"] == "exit":
            run["exit_code"] = record["exit"].get("exit_code", 0)
    return run


def read_wandb(out_dir: Path) -> dict[str, dict]:
    """read_wandb_run of every offline run under `out_dir`, by the run's display name."""
    runs = [read_wandb_run(path) for path in sorted(out_dir.glob("wandb/offline-run-*/run-*.wandb"))]
    return {run["run"]["display_name"]: run for run in runs}


def test_wandb_offline_writes_one_run_per_seed_with_every_finite_value_at_its_env_step(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_ERROR_REPORTING", raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")  # the user's own setting does not take the sink online
    (log,) = make_live_logs(["wandb"], tmp_path)
    log.start(TRIAL, CONFIG)
    log.log(LOG_POINTS[0])
    # A running run's .wandb file gets its rows within about a second (W&B's default: 15 s).
    path = sorted(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))[0]
    deadline = time.monotonic() + 10
    while not (live := read_wandb_run(path))["history"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert live["history"], "a log point is not in the running run's .wandb file 10 s after log()"
    seed = int(live["config"]["seed"])
    assert live["history"] == {t: {0: v[0]} for t, v in expected(seed).items() if 0 in v}
    for rows in LOG_POINTS[1:]:
        log.log(rows)
    log.finish(SUMMARY)
    log.close()
    assert "WANDB_ERROR_REPORTING" not in os.environ  # set around wandb.init only

    runs = read_wandb(tmp_path)
    assert sorted(runs) == [f"{TRIAL}-seed{s}" for s in SEEDS]
    for seed in SEEDS:
        run = runs[f"{TRIAL}-seed{seed}"]
        assert run["run"]["project"] == "esbench" and run["run"]["run_group"] == TRIAL
        assert sorted(run["run"]["tags"]) == ["CartPole-v1", "eggroll"]
        assert {k: v for k, v in run["config"].items() if k != "_wandb"} == CONFIG | {"seed": seed}
        assert run["history"] == expected(seed)  # every finite value at its step, exactly; NaN absent
        assert run["summary"]["final_eval_return"] == SUMMARY["final_eval_return"][str(seed)]
        assert run["summary"]["seed_status"] == SUMMARY["seed_status"][str(seed)]
        assert run["summary"]["status"] == "finished" and run["summary"]["versions"] == {"jax": "0.9.0"}
        assert run["exit_code"] == 0


def test_close_without_finish_ends_every_sink_and_marks_wandb_runs_failed(tmp_path):
    logs = make_live_logs(["wandb", "tensorboard", "wandb"], tmp_path)  # a repeated kind counts once
    assert len(logs) == 2
    for log in logs:
        log.start(TRIAL, CONFIG | {"seeds": [3]})
        log.log(LOG_POINTS[0][:1])
        log.close()  # the trial raised before finish
        log.close()
        log.finish(SUMMARY)  # nothing open any more: a no-op
    runs = read_wandb(tmp_path)
    assert list(runs) == [f"{TRIAL}-seed3"] and runs[f"{TRIAL}-seed3"]["exit_code"] == 1
    assert runs[f"{TRIAL}-seed3"]["history"] == {t: {0: v[0]} for t, v in expected(3).items() if 0 in v}
    scalars, _ = read_tensorboard(tmp_path / "tensorboard" / TRIAL / "seed_3")
    assert scalars["eval/return_mean"] == {0: 9.5}


def test_log_before_start_is_an_error(tmp_path):
    (log,) = make_live_logs(["tensorboard"], tmp_path)
    with pytest.raises(RuntimeError, match="start"):
        log.log(LOG_POINTS[0])


# --- errors -----------------------------------------------------------------------------------------------


def test_unknown_kind_names_it_and_the_allowed_values(tmp_path):
    with pytest.raises(
        ConfigError, match=r"'tensorbord'.*allowed: tensorboard, wandb.*Did you mean 'tensorboard'"
    ):
        make_live_logs(["tensorbord"], tmp_path)
    assert LOGGERS == ("tensorboard", "wandb")
    assert make_live_logs([], tmp_path) == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind, module", [("tensorboard", "tensorboardX"), ("wandb", "wandb")])
def test_missing_package_says_which_extra_to_install(tmp_path, monkeypatch, kind, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(
        ConfigError, match=rf"--log {kind} needs the {module} package.*pip install 'esbench\[{kind}\]'"
    ):
        make_live_logs([kind], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_importing_the_module_imports_neither_package():
    code = (
        "import sys, esbench.runner.live_log; "
        "print(sorted(m for m in ('wandb', 'tensorboardX', 'tensorboard') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
