"""Backends that run a list of trials: `local` (in-process, one after another) and `ray`.

Both hand every finished trial to a `store` (anything with `is_finished(trial_id)`
and `write(result)`, e.g. `esbench.results.ResultStore`) from the driver process,
so Ray workers need no shared disk. Trials the store already has are skipped,
which is what makes a killed sweep resume where it stopped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Protocol

from esbench.runner.config import ConfigError, TrialSpec
from esbench.runner.trial import TrialResult, make_trial_env, plan_trial, run_trial

BACKENDS = ("local", "ray")


class Store(Protocol):
    def is_finished(self, trial_id: str) -> bool: ...
    def write(self, result: TrialResult): ...


@dataclass
class SweepOutcome:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def check_budgets(specs: list[TrialSpec]) -> None:
    """Every trial's budget fits at least one update; checked before anything runs."""
    for spec in specs:
        cfg = spec.algo_config()
        try:
            plan_trial(spec, make_trial_env(spec.resolved()), cfg)
        except ConfigError as err:
            raise ConfigError(f"trial [{spec.env} x {spec.algo}]: {err}") from None


def pending(specs: list[TrialSpec], store: Store) -> tuple[list[TrialSpec], list[str]]:
    """(trials still to run, ids of those the store has); a trial listed twice runs once."""
    todo, done, seen = [], [], set()
    for spec in specs:
        trial_id = spec.resolved()["trial_id"]
        if trial_id in seen:
            continue
        seen.add(trial_id)
        if store.is_finished(trial_id):
            done.append(trial_id)
        else:
            todo.append(spec)
    return todo, done


def _record(outcome: SweepOutcome, store: Store, result: TrialResult) -> None:
    store.write(result)
    trial_id = result.config["trial_id"]
    outcome.ran.append(trial_id)
    if result.summary["status"] == "diverged":
        outcome.diverged.append(trial_id)


def run_local(specs: list[TrialSpec], store: Store, progress: bool = True) -> SweepOutcome:
    todo, done = pending(specs, store)
    outcome = SweepOutcome(skipped=done)
    for i, spec in enumerate(todo):
        if progress:
            print(f"[{i + 1}/{len(todo)}] {spec.env} x {spec.algo}", file=sys.stderr, flush=True)
        try:
            result = run_trial(spec, progress=progress)
        except Exception as err:  # one broken trial must not stop the sweep or lose finished work
            outcome.failed[spec.resolved()["trial_id"]] = f"{type(err).__name__}: {err}"
            print(f"FAILED {spec.env} x {spec.algo}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            continue
        _record(outcome, store, result)
    return outcome


def run_ray(specs: list[TrialSpec], store: Store, address: str | None = None, progress: bool = True) -> SweepOutcome:
    """Each trial a Ray task (asking for `num_gpus` GPUs); the driver writes the results."""
    try:
        import ray
    except ImportError:
        raise ConfigError("backend 'ray' needs Ray: pip install 'esbench[ray]'") from None
    todo, done = pending(specs, store)
    outcome = SweepOutcome(skipped=done)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote_run = ray.remote(run_trial)
        refs = {remote_run.options(num_gpus=spec.num_gpus).remote(spec, False): spec for spec in todo}
        remaining = list(refs)
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1)
            spec = refs[ready[0]]
            try:
                result = ray.get(ready[0])
            except Exception as err:  # a failed task must not lose the others' finished work
                outcome.failed[spec.resolved()["trial_id"]] = f"{type(err).__name__}: {err}"
                continue
            _record(outcome, store, result)
            if progress:
                print(f"[{len(outcome.ran)}/{len(todo)}] finished {result.config['trial_id']}", file=sys.stderr, flush=True)
    finally:
        if started_here:
            ray.shutdown()
    return outcome


def run_trials(specs: list[TrialSpec], store: Store, backend: str = "local", address: str | None = None,
               progress: bool = True) -> SweepOutcome:
    if backend not in BACKENDS:
        raise ConfigError(f"backend: {backend!r} is not allowed; allowed values: {', '.join(BACKENDS)}")
    check_budgets(specs)
    if backend == "local":
        return run_local(specs, store, progress)
    return run_ray(specs, store, address, progress)
