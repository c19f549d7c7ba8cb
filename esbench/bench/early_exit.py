"""What stopping ES rollouts early buys: one training run with `early_exit` on and off, wall-clock compared.

For every (environment, ES algorithm) the same trial runs twice through the
runner (`run_group`), once with `early_exit: true` (a generation stops
stepping when every episode of every member has ended) and once with
`early_exit: false` (every episode simulated to its limit, the steps after
its end masked). The two runs compute the same thing (same returns, same
env steps inside episodes, tests/test_es.py), so their log points pair up:

    speedup           training seconds without / with early exit, over the whole run (compile excluded)
    speedup_to_solve  the same at the first log point whose mean evaluation return reaches SOLVED[env]
                      (None where the env has no threshold here, or the run did not reach it)
    env_steps_per_s   env steps inside episodes per training second, each way
    simulated_share   simulated env steps / env steps inside episodes, each way (1.0: nothing wasted)

The payload's `early_exit_speedup` is {env: {algorithm: speedup}}.

Hyperparameters: the paper's row, with the population, the network and
`HPARAMS` replaced as the settings say (the cpu budget's scaling), so a
2-core CPU runs the quick mode in minutes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import numpy as np

from esbench.bench.measure import AT_LEAST_ONE, distinct, failure_reason
from esbench.bench.training import paper_hparams
from esbench.runner.config import TrialSpec, resolve_trial
from esbench.runner.trial import RunOptions, run_group
from esbench.validation import rule, validate

# Mean evaluation returns that count as solved: gymnax's CartPole-v1 threshold, and Pendulum's usual -200.
SOLVED = {"CartPole-v1": 475.0, "Pendulum-v1": -200.0}
# Small populations move little under plain SGD with the official update (sigma / sqrt(N) scale): adam,
# as the cpu budget.
HPARAMS = {"n_parallel_evaluations": 1, "optimizer": "adam"}


@dataclasses.dataclass(frozen=True)
class EarlyExitSettings:
    """Which (env, ES algorithm) pairs and how long they train; the defaults are the quick mode (a 2-core CPU)."""

    envs: tuple[str, ...] = dataclasses.field(
        default=("CartPole-v1", "Pendulum-v1", "jumanji/Knapsack-v1"),
        metadata=rule(distinct, "one or more distinct environment ids"),
    )
    algos: tuple[str, ...] = dataclasses.field(
        default=("eggroll", "openes"),
        metadata=rule(
            lambda v: distinct(v) and set(v) <= {"eggroll", "openes"}, "one or more of eggroll, openes"
        ),
    )
    env_steps: int = dataclasses.field(default=500_000, metadata=AT_LEAST_ONE)  # per seed, inside episodes
    pop_size: int = dataclasses.field(
        default=64, metadata=rule(lambda v: v >= 2 and v % 2 == 0, "an even integer >= 2")
    )
    layer_size: int = dataclasses.field(default=32, metadata=AT_LEAST_ONE)
    n_layers: int = dataclasses.field(default=2, metadata=AT_LEAST_ONE)
    seeds: int = dataclasses.field(default=2, metadata=AT_LEAST_ONE)
    num_logs: int = dataclasses.field(default=10, metadata=AT_LEAST_ONE)

    def validate(self, owner: str = "bench.early_exit") -> None:
        validate(self, owner)


FULL = dict(
    envs=("CartPole-v1", "Pendulum-v1", "jumanji/Knapsack-v1", "brax/inverted_double_pendulum"),
    env_steps=10_000_000,
    pop_size=1024,
    layer_size=256,
    n_layers=3,
    seeds=3,
    num_logs=20,
)


def trial_spec(env_id: str, algo: str, settings: EarlyExitSettings, early_exit: bool) -> TrialSpec:
    hparams, _ = paper_hparams(algo, env_id)
    hparams.update(
        HPARAMS,
        pop_size=settings.pop_size,
        layer_size=settings.layer_size,
        n_layers=settings.n_layers,
        early_exit=early_exit,
    )
    return TrialSpec(
        env=env_id,
        algo=algo,
        hparams=hparams,
        seeds=tuple(range(settings.seeds)),
        env_steps=settings.env_steps,
        num_logs=settings.num_logs,
    )


def _curve(result) -> dict[str, list]:
    """Per log point, means over seeds: training seconds, env steps inside episodes, simulated steps, eval return."""
    by_point = result.metrics.groupby("log_point")
    return {
        name: [float(v) for v in by_point[column].mean()]
        for name, column in (
            ("wall_clock_s", "wall_clock_s"),
            ("env_steps", "env_steps"),
            ("simulated_env_steps", "simulated_env_steps"),
            ("eval_return", "eval_return_mean"),
        )
    }


def _first_solved(curve: dict, threshold: Optional[float]) -> Optional[int]:
    if threshold is None:
        return None
    return next((i for i, r in enumerate(curve["eval_return"]) if r >= threshold), None)


def measure_pair(env_id: str, algo: str, settings: EarlyExitSettings) -> dict:
    """One (env, algorithm) record; a failure is recorded, not raised."""
    record: dict[str, Any] = {
        "env": env_id,
        "algorithm": algo,
        "status": "ok",
        "reason": None,
        "trial_ids": {},
        "curves": {},
        "same_returns": None,
        "speedup": None,
        "solved_return": SOLVED.get(env_id),
        "solved_at_env_steps": None,
        "speedup_to_solve": None,
        "env_steps_per_s": {},
        "simulated_share": {},
    }
    try:
        for mode, flag in (("early_exit", True), ("full_episodes", False)):
            trial = resolve_trial(
                trial_spec(env_id, algo, settings, flag), f"bench.early_exit[{env_id} x {algo}]"
            )
            curve = _curve(run_group([trial], RunOptions(progress=False))[0])
            record["trial_ids"][mode], record["curves"][mode] = trial.trial_id, curve
            record["env_steps_per_s"][mode] = curve["env_steps"][-1] / curve["wall_clock_s"][-1]
            record["simulated_share"][mode] = curve["simulated_env_steps"][-1] / curve["env_steps"][-1]
        on, off = record["curves"]["early_exit"], record["curves"]["full_episodes"]
        record["same_returns"] = bool(
            np.array_equal(on["eval_return"], off["eval_return"], equal_nan=True)
            and on["env_steps"] == off["env_steps"]
        )
        record["speedup"] = off["wall_clock_s"][-1] / on["wall_clock_s"][-1]
        solved = _first_solved(on, record["solved_return"])
        if solved:  # log point 0 (before training) is no time to compare
            record["solved_at_env_steps"] = on["env_steps"][solved]
            record["speedup_to_solve"] = off["wall_clock_s"][solved] / on["wall_clock_s"][solved]
    except Exception as err:
        record.update(status="failed", reason=failure_reason(err))
    return record


def measure(settings: EarlyExitSettings, progress: Optional[Callable[[str], Any]] = None) -> dict:
    records = []
    for env_id in settings.envs:
        for algo in settings.algos:
            if progress:
                progress(f"early exit: {env_id}, {algo}")
            records.append(measure_pair(env_id, algo, settings))
    speedups: dict[str, dict[str, Optional[float]]] = {}
    for r in records:
        speedups.setdefault(r["env"], {})[r["algorithm"]] = r["speedup"]
    return {"records": records, "early_exit_speedup": speedups}
