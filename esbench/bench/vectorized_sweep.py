"""What vectorised sweeps buy: a grid of hyperparameter points run as one program, and one by one.

The grid is `sigmas` x `learning_rates` of one ES algorithm on one env (the
issue's 12 points: 3 x 4 on CartPole). Its trials are grouped by the runner
itself (`group_trials`): with `vectorize=True` the points share every shape,
so they compile once and run as one program vmapped over (point x seed);
with `vectorize=False` each compiles and runs alone. Both ways are timed end
to end (compile, training and evaluation: what a user waits for), in this
order, in one process:

    vectorized_s, one_by_one_s   wall-clock seconds of the whole grid
    vectorized_sweep_speedup     one_by_one_s / vectorized_s
    same_results                 every trial's final evaluation returns equal both ways (ES: bit-identical)

and where each way's time went (`vectorized_parts`, `one_by_one_parts`), from the trials' own summaries:

    compile_s   the groups' compiles (and init)
    train_s     the groups' chunk programs
    eval_s      the evaluations
    host_s      the rest of the wall clock: resolving, grouping, recording (Python)
    occupancy   useful updates / (update-loop iterations x lanes): a program runs a chunk's update
                loop until its slowest lane (point x seed) reaches the chunk's goal, the others
                masked; an ES update runs its episodes until the longest ends (lengths differ by point)
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import pandas as pd

from esbench.bench.early_exit import HPARAMS
from esbench.bench.measure import AT_LEAST_ONE, distinct, failure_reason
from esbench.bench.training import paper_hparams
from esbench.runner.backends import group_trials
from esbench.runner.config import TrialSpec, resolve_trial
from esbench.runner.trial import RunOptions, run_group
from esbench.validation import rule, validate

_POSITIVE_VALUES = rule(lambda v: distinct(v) and all(x > 0 for x in v), "one or more distinct numbers > 0")


@dataclasses.dataclass(frozen=True)
class VectorizedSweepSettings:
    """The grid and its trials; the defaults are the quick mode (a 2-core CPU in a few minutes)."""

    env: str = "CartPole-v1"
    algo: str = dataclasses.field(
        default="eggroll", metadata=rule(lambda v: v in ("eggroll", "openes"), "eggroll, openes")
    )
    sigmas: tuple[float, ...] = dataclasses.field(default=(0.05, 0.2, 0.5), metadata=_POSITIVE_VALUES)
    learning_rates: tuple[float, ...] = dataclasses.field(
        default=(0.001, 0.01, 0.03, 0.1), metadata=_POSITIVE_VALUES
    )
    env_steps: int = dataclasses.field(default=100_000, metadata=AT_LEAST_ONE)  # per seed, inside episodes
    pop_size: int = dataclasses.field(
        default=64, metadata=rule(lambda v: v >= 2 and v % 2 == 0, "an even integer >= 2")
    )
    layer_size: int = dataclasses.field(default=32, metadata=AT_LEAST_ONE)
    n_layers: int = dataclasses.field(default=2, metadata=AT_LEAST_ONE)
    seeds: int = dataclasses.field(default=2, metadata=AT_LEAST_ONE)
    num_logs: int = dataclasses.field(default=5, metadata=AT_LEAST_ONE)

    def validate(self, owner: str = "bench.vectorized_sweep") -> None:
        validate(self, owner)


FULL = dict(env_steps=2_000_000, pop_size=1024, layer_size=256, n_layers=3, seeds=3)


def grid(settings: VectorizedSweepSettings) -> list[TrialSpec]:
    """The grid's trials, sigma outermost."""
    hparams, _ = paper_hparams(settings.algo, settings.env)
    hparams.update(
        HPARAMS, pop_size=settings.pop_size, layer_size=settings.layer_size, n_layers=settings.n_layers
    )
    return [
        TrialSpec(
            env=settings.env,
            algo=settings.algo,
            hparams={**hparams, "sigma": s, "learning_rate": lr},
            seeds=tuple(range(settings.seeds)),
            env_steps=settings.env_steps,
            num_logs=settings.num_logs,
        )
        for s in settings.sigmas
        for lr in settings.learning_rates
    ]


def _loop_iterations(results) -> int:
    """Update-loop iterations a group's program ran: per chunk, its lanes' most updates."""
    frame = pd.concat([r.metrics.assign(point=i) for i, r in enumerate(results)])
    updates = frame.pivot_table(index="log_point", columns=["point", "seed"], values="update").sort_index()
    return int(updates.diff().fillna(updates).max(axis=1).sum())


def _run_grid(trials, vectorize: bool) -> tuple[float, int, dict[str, dict], dict]:
    """(wall-clock seconds, number of compiled groups, trial id -> final evaluation returns per seed, parts)."""
    start = time.perf_counter()
    groups = group_trials(trials, vectorize)
    finals = {}
    parts = dict(compile_s=0.0, train_s=0.0, eval_s=0.0, useful_updates=0, lane_iterations=0)
    for group in groups:
        results = run_group(group, RunOptions(progress=False))
        for trial, result in zip(group, results):
            finals[trial.trial_id] = result.summary["final_eval_return"]
            parts["eval_s"] += result.summary["eval_s"]  # each trial's share of the group's evaluations
            parts["useful_updates"] += sum(result.summary["updates"].values())
        first = results[0].summary  # compile and chunk seconds are the group's, the same in each summary
        parts["compile_s"] += first["compile_s"]
        parts["train_s"] += first["run_s"]
        parts["lane_iterations"] += _loop_iterations(results) * len(group) * len(group[0].spec.seeds)
    wall = time.perf_counter() - start
    parts["host_s"] = wall - parts["compile_s"] - parts["train_s"] - parts["eval_s"]
    parts["occupancy"] = (
        parts["useful_updates"] / parts["lane_iterations"] if parts["lane_iterations"] else None
    )
    return wall, len(groups), finals, parts


def measure(settings: VectorizedSweepSettings, progress: Optional[Callable[[str], Any]] = None) -> dict:
    record: dict[str, Any] = {
        "env": settings.env,
        "algorithm": settings.algo,
        "points": 0,
        "status": "ok",
        "reason": None,
        "vectorized_s": None,
        "vectorized_groups": None,
        "one_by_one_s": None,
        "one_by_one_groups": None,
        "same_results": None,
        "vectorized_parts": None,
        "one_by_one_parts": None,
    }
    speedup = None
    try:
        trials = [resolve_trial(spec, "bench.vectorized_sweep") for spec in grid(settings)]
        record["points"] = len(trials)
        if progress:
            progress(f"vectorized sweep: {len(trials)} points as one program")
        record["vectorized_s"], record["vectorized_groups"], together, record["vectorized_parts"] = _run_grid(
            trials, True
        )
        if progress:
            progress(f"vectorized sweep: {len(trials)} points one by one")
        record["one_by_one_s"], record["one_by_one_groups"], alone, record["one_by_one_parts"] = _run_grid(
            trials, False
        )
        record["same_results"] = together == alone
        speedup = record["one_by_one_s"] / record["vectorized_s"]
    except Exception as err:
        record.update(status="failed", reason=failure_reason(err))
    return {"records": [record], "vectorized_sweep_speedup": speedup}
