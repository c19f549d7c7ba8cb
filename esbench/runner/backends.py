"""Backends that run a list of trials: `local` (in-process, one after another) and `ray`.

Both hand every finished trial to a `store` (anything with `is_finished(trial_id)`
and `write(result)`, e.g. `esbench.results.ResultStore`) from the driver process,
so Ray workers need no shared disk. Trials the store already has are skipped,
which is what makes a killed sweep resume where it stopped.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from esbench import plugins
from esbench.results.schema import TrialResult
from esbench.runner.config import ResolvedTrial, TrialSpec, resolve_trial
from esbench.runner.trial import run_trial
from esbench.validation import ConfigError

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


def resolve_trials(specs: Sequence[TrialSpec | ResolvedTrial]) -> list[ResolvedTrial]:
    """Every trial resolved (validated, budget planned) before anything runs; a trial listed twice once."""
    trials, seen = [], set()
    for spec in specs:
        trial = spec if isinstance(spec, ResolvedTrial) else resolve_trial(spec, owner=f"trial [{spec.env} x {spec.algo}]")
        if trial.trial_id not in seen:
            seen.add(trial.trial_id)
            trials.append(trial)
    return trials


def pending(trials: list[ResolvedTrial], store: Store) -> tuple[list[ResolvedTrial], list[str]]:
    """(trials still to run, ids of those the store has)."""
    todo = [t for t in trials if not store.is_finished(t.trial_id)]
    return todo, [t.trial_id for t in trials if store.is_finished(t.trial_id)]


def _record(outcome: SweepOutcome, store: Store, result: TrialResult) -> None:
    store.write(result)
    trial_id = result.config["trial_id"]
    outcome.ran.append(trial_id)
    if result.summary["status"] == "diverged":
        outcome.diverged.append(trial_id)


def run_local(trials: list[ResolvedTrial], store: Store, progress: bool = True) -> SweepOutcome:
    todo, done = pending(trials, store)
    outcome = SweepOutcome(skipped=done)
    for i, trial in enumerate(todo):
        if progress:
            print(f"[{i + 1}/{len(todo)}] {trial.spec.env} x {trial.spec.algo}", file=sys.stderr, flush=True)
        try:
            result = run_trial(trial, progress=progress)
        except Exception as err:  # one broken trial must not stop the sweep or lose finished work
            outcome.failed[trial.trial_id] = f"{type(err).__name__}: {err}"
            print(f"FAILED {trial.spec.env} x {trial.spec.algo}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
            continue
        _record(outcome, store, result)
    return outcome


def _run_in_worker(spec: TrialSpec, imports: tuple[str, ...], paths: tuple[str, ...]) -> TrialResult:
    """A Ray task: load the driver's plugins (a worker starts with a fresh registry), then run the trial."""
    plugins.load(imports, paths)
    return run_trial(spec, progress=False)


def run_ray(trials: list[ResolvedTrial], store: Store, address: str | None = None, progress: bool = True) -> SweepOutcome:
    """Each trial a Ray task (asking for `num_gpus` GPUs); the driver writes the results."""
    try:
        import ray
    except ImportError:
        raise ConfigError("backend 'ray' needs Ray: pip install 'esbench[ray]'") from None
    todo, done = pending(trials, store)
    outcome = SweepOutcome(skipped=done)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        remote_run = ray.remote(_run_in_worker)
        imports, paths = plugins.loaded()
        refs = {remote_run.options(num_gpus=t.spec.num_gpus).remote(t.spec, imports, paths): t for t in todo}
        remaining = list(refs)
        while remaining:
            ready, remaining = ray.wait(remaining, num_returns=1)
            trial = refs[ready[0]]
            try:
                result = ray.get(ready[0])
            except Exception as err:  # a failed task must not lose the others' finished work
                outcome.failed[trial.trial_id] = f"{type(err).__name__}: {err}"
                continue
            _record(outcome, store, result)
            if progress:
                print(f"[{len(outcome.ran)}/{len(todo)}] finished {trial.trial_id}", file=sys.stderr, flush=True)
    finally:
        if started_here:
            ray.shutdown()
    return outcome


def run_trials(specs: Sequence[TrialSpec | ResolvedTrial], store: Store, backend: str = "local",
               address: str | None = None, progress: bool = True) -> SweepOutcome:
    if backend not in BACKENDS:
        raise ConfigError(f"backend = {backend!r} is invalid; allowed: {', '.join(BACKENDS)}")
    trials = resolve_trials(specs)
    if backend == "local":
        return run_local(trials, store, progress)
    return run_ray(trials, store, address, progress)
