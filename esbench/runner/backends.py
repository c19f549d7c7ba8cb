"""Backends that run a list of trials: `local` (in-process, one group after another) and `ray`.

Trials whose hyperparameter points differ only in values (programs.py) are
grouped and run as one vmapped program, transparently: each still gets its
own result, equal to what it would get alone (`vectorize=False` runs every
trial on its own). Both backends hand every finished trial to a `store`
(anything with `is_finished(trial_id)` and `write(result)`, e.g.
`esbench.results.ResultStore`) from the driver process, so Ray workers need
no shared disk. Trials the store already has are skipped, which is what makes
a killed sweep resume where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import ContextManager, Protocol, Sequence

from esbench import plugins
from esbench.faults import MachineFault, fault_line, is_machine_fault
from esbench.results.schema import TrialResult
from esbench.results.store import write_failure
from esbench.runner import compile_cache, determinism
from esbench.runner.config import ResolvedTrial, TrialSpec, resolve_trial
from esbench.runner.eta import RunEta
from esbench.runner.fitting import MEMORY_FAILURE, CannotFit, fitted_programs
from esbench.runner.interrupt import Interrupted, StopRequest, graceful_stop
from esbench.runner.live_log import make_live_logs
from esbench.runner.trial import RunOptions, run_group
from esbench.validation import ConfigError

BACKENDS = ("local", "ray")
MAX_GROUP = 32  # points per vectorised program: its memory grows with them


class Store(Protocol):
    out_dir: Path

    def is_finished(self, trial_id: str) -> bool: ...
    def write(self, result: TrialResult): ...
    def claim(self, trial_ids: Sequence[str]) -> ContextManager[list[str]]: ...


@dataclass
class SweepOutcome:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # finished before this run
    busy: list[str] = field(default_factory=list)  # being run by another process
    diverged: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def resolve_trials(specs: Sequence[TrialSpec | ResolvedTrial]) -> list[ResolvedTrial]:
    """Every trial resolved (validated, budget planned) before anything runs; a trial listed twice once."""
    trials, seen = [], set()
    for spec in specs:
        trial = (
            spec
            if isinstance(spec, ResolvedTrial)
            else resolve_trial(spec, owner=f"trial [{spec.env} x {spec.algo}]")
        )
        if trial.trial_id not in seen:
            seen.add(trial.trial_id)
            trials.append(trial)
    return trials


def pending(trials: list[ResolvedTrial], store: Store) -> tuple[list[ResolvedTrial], list[str]]:
    """(trials still to run, ids of those the store has)."""
    todo = [t for t in trials if not store.is_finished(t.trial_id)]
    return todo, [t.trial_id for t in trials if store.is_finished(t.trial_id)]


def group_key(trial: ResolvedTrial):
    """Trials with equal keys can run as one program: same everything but the algorithm's value fields.

    The stage is a label, not a shape: a protocol's matched trials share programs with its final trials.
    """
    values = set(getattr(trial.algorithm, "VALUE_FIELDS", ()))
    if not values:
        return trial.trial_id
    static = {k: v for k, v in dataclasses.asdict(trial.cfg).items() if k not in values}
    spec = trial.spec
    return (
        spec.env,
        spec.max_episode_steps,
        spec.algo,
        json.dumps(static, sort_keys=True),
        spec.seeds,
        spec.env_steps,
        spec.num_logs,
        spec.eval_every,
        spec.eval_episodes,
    )


def group_trials(trials: Sequence[ResolvedTrial], vectorize: bool = True) -> list[list[ResolvedTrial]]:
    """Groups of trials to run as one program each (of at most MAX_GROUP), in the order trials first appear."""
    if not vectorize:
        return [[t] for t in trials]
    groups: dict = {}
    for trial in trials:
        groups.setdefault(group_key(trial), []).append(trial)
    return [
        members[i : i + MAX_GROUP] for members in groups.values() for i in range(0, len(members), MAX_GROUP)
    ]


def _describe(group: list[ResolvedTrial]) -> str:
    spec = group[0].spec
    return f"{spec.env} x {spec.algo}" + (f" ({len(group)} points as one program)" if len(group) > 1 else "")


def _record(outcome: SweepOutcome, store: Store, result: TrialResult) -> None:
    store.write(result)
    trial_id = result.config["trial_id"]
    outcome.ran.append(trial_id)
    if result.summary["status"] == "diverged":
        outcome.diverged.append(trial_id)


def _fail(outcome: SweepOutcome, store: Store, trials: Sequence[ResolvedTrial], line: str) -> None:
    """Trials that cannot fit the device: a failure record each (kind "memory"); the sweep goes on."""
    for trial in trials:
        write_failure(store.out_dir, trial.config, MEMORY_FAILURE, line)
        outcome.failed[trial.trial_id] = line
    print(f"FAILED {_describe(list(trials))}: {line}", file=sys.stderr, flush=True)


def run_fitted(group: list[ResolvedTrial], options: RunOptions, stop: StopRequest | None = None):
    """Each program of the group's split (fitting.py), run one after another: yields its results.

    CannotFit before anything runs when the group's smallest program cannot fit."""
    for n, fitted in enumerate(fitted_programs(group, options.memory_guard, options.memory_limit)):
        if n == 0 and fitted.split is not None and options.progress:
            print(f"    {fitted.split.describe()}", file=sys.stderr, flush=True)
        yield run_group(fitted.trials, options, stop, fitted)


def _claimed(
    group: list[ResolvedTrial], held: list[str], store: Store, outcome: SweepOutcome
) -> list[ResolvedTrial]:
    """The members of `group` this process holds and nobody finished meanwhile; the others are counted."""
    mine = []
    for trial in group:
        if trial.trial_id not in held:
            outcome.busy.append(trial.trial_id)
        elif store.is_finished(trial.trial_id):
            outcome.skipped.append(trial.trial_id)
        else:
            mine.append(trial)
    return mine


def run_local(
    trials: list[ResolvedTrial], store: Store, options: RunOptions, stop: StopRequest
) -> SweepOutcome:
    todo, done = pending(trials, store)
    outcome = SweepOutcome(skipped=done)
    groups = group_trials(todo, options.vectorize)
    eta = RunEta(groups, options.eta_history)
    for i, group in enumerate(groups):
        with store.claim([t.trial_id for t in group]) as held:
            group = _claimed(group, held, store, outcome)
            if not group:
                eta.skip(i)
                continue
            eta.claimed(i, group)
            if options.progress:
                print(
                    f"[{i + 1}/{len(groups)}] {_describe(group)}  ({eta.text()})", file=sys.stderr, flush=True
                )
            eta.started(i)
            try:
                for results in run_fitted(group, dataclasses.replace(options, run_eta=eta), stop):
                    for result in results:
                        _record(outcome, store, result)
            except CannotFit as err:  # nothing of it ran; every other group does
                _fail(outcome, store, group, str(err))
                eta.failed(i)
                continue
            except Exception as err:  # one broken trial must not stop the sweep or lose finished work
                if isinstance(err, Interrupted) or is_machine_fault(err):  # the sweep stops, resumably
                    raise
                for trial in group:
                    if trial.trial_id not in outcome.ran:
                        outcome.failed[trial.trial_id] = f"{type(err).__name__}: {err}"
                print(f"FAILED {_describe(group)}: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
                eta.failed(i)
                continue
            eta.finished(i)
    return outcome


def _run_in_worker(
    specs: list[TrialSpec], options: RunOptions, loaded: plugins.Loaded
) -> tuple[list[TrialResult], str | None]:
    """A Ray task: load the driver's plugins (a worker starts with a fresh registry), then run the group's
    split; -> (results, None), or ([], the line) when it cannot fit (the driver records the failure).

    Checkpoints and live logs are written by the worker under `options.out_dir`: on a cluster, that
    needs a disk the workers share (without one, a retried task starts afresh)."""
    plugins.replay(loaded)
    if options.deterministic:  # before the worker's first compile starts its backend
        determinism.enable(say=lambda line: None)
    compile_cache.apply(options.compile_cache)
    try:
        return [r for results in run_fitted(resolve_trials(specs), options) for r in results], None
    except CannotFit as err:
        return [], str(err)


def check_gpu_requests(trials: Sequence[ResolvedTrial], node_gpus: Sequence[float]) -> None:
    """ConfigError, before anything runs, for a GPU request the cluster (its live nodes' GPU counts) cannot
    honour as asked: a fraction of a GPU (the memory guard counts one program per device, not a sharer's
    memory), no GPU on a cluster that has them (a silent CPU run), more GPUs than any one node has."""
    cluster = sum(node_gpus)
    for trial in trials:
        asked, name = trial.spec.num_gpus, f"trial [{trial.spec.env} x {trial.spec.algo}]"
        if asked != int(asked):
            raise ConfigError(
                f"{name}: num_gpus = {asked} is refused: a fraction of a GPU would share its memory with "
                f"programs the memory guard does not count; allowed: a whole number of GPUs (0, 1, 2, ...)"
            )
        if asked == 0 and cluster > 0:
            raise ConfigError(
                f"{name}: num_gpus = 0 on a Ray cluster with {cluster:g} GPU(s) would run it on a CPU; "
                f"set num_gpus: 1 (or more) to use them"
            )
        if asked > max(node_gpus, default=0):
            raise ConfigError(
                f"{name}: num_gpus = {asked:g} cannot be placed: no node of the Ray cluster has that many "
                f"(its nodes have {', '.join(f'{g:g}' for g in node_gpus) or 'no'} GPU(s))"
            )


def run_ray(
    trials: list[ResolvedTrial], store: Store, options: RunOptions, address: str | None = None
) -> SweepOutcome:
    """Each group a Ray task (asking for the trials' `num_gpus` GPUs); the driver claims and writes the results."""
    try:
        import ray
    except ImportError:
        raise ConfigError("backend 'ray' needs Ray: pip install 'esbench[ray]'") from None
    todo, done = pending(trials, store)
    outcome = SweepOutcome(skipped=done)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    worker_options = dataclasses.replace(options, progress=False, run_eta=None)
    try:
        check_gpu_requests(todo, [n["Resources"].get("GPU", 0.0) for n in ray.nodes() if n["Alive"]])
        with contextlib.ExitStack() as claims:
            remote_run = ray.remote(_run_in_worker)
            loaded = plugins.loaded()
            refs = {}
            groups = group_trials(todo, options.vectorize)
            eta = RunEta(groups, options.eta_history)  # compiles run in the workers: its pace includes them
            for i, group in enumerate(groups):
                held = claims.enter_context(store.claim([t.trial_id for t in group]))
                group = _claimed(group, held, store, outcome)
                if group:
                    specs = [t.spec for t in group]
                    task = remote_run.options(num_gpus=group[0].spec.num_gpus)
                    refs[task.remote(specs, worker_options, loaded)] = i, group
                    eta.claimed(i, group)
                else:
                    eta.skip(i)
            remaining = list(refs)
            while remaining:
                ready, remaining = ray.wait(remaining, num_returns=1)
                i, group = refs[ready[0]]
                try:
                    results, cannot_fit = ray.get(ready[0])
                except Exception as err:  # a failed task must not lose the others' finished work
                    for trial in group:
                        outcome.failed[trial.trial_id] = f"{type(err).__name__}: {err}"
                    eta.failed(i)
                    continue
                if cannot_fit is not None:
                    _fail(outcome, store, group, cannot_fit)
                    eta.failed(i)
                    continue
                eta.finished(i)
                for result in results:
                    _record(outcome, store, result)
                if options.progress:
                    print(
                        f"[{len(outcome.ran)}/{len(todo)}] finished {_describe(group)}  ({eta.text()})",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        if started_here:
            ray.shutdown()
    return outcome


def run_trials(
    specs: Sequence[TrialSpec | ResolvedTrial],
    store: Store,
    backend: str = "local",
    address: str | None = None,
    options: RunOptions | None = None,
    **option_fields,
) -> SweepOutcome:
    """Run the trials the store lacks; `options` (or its fields as keywords: progress=False, ...) say how.

    Locally, SIGINT/SIGTERM stop it after the current chunk, with a checkpoint: it raises Interrupted,
    and the same call later resumes. A fault of the machine (a full disk, XLA out of memory) stops it too,
    as a MachineFault whose line says how many trials are stored (the cause is its __cause__); the same
    call, once the cause is fixed, resumes from the last checkpoint.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"backend = {backend!r} is invalid; allowed: {', '.join(BACKENDS)}")
    options = dataclasses.replace(options or RunOptions(), **option_fields)
    if options.out_dir is None:
        options = dataclasses.replace(options, out_dir=Path(store.out_dir))
    make_live_logs(
        options.live_logs, options.out_dir
    )  # an unknown logger or a missing package: before anything runs
    trials = resolve_trials(specs)
    try:
        if backend == "ray":
            return run_ray(trials, store, options, address)
        with graceful_stop() as stop:
            return run_local(trials, store, options, stop)
    except Exception as err:
        if isinstance(err, MachineFault) or not is_machine_fault(err):
            raise
        finished = sum(store.is_finished(t.trial_id) for t in trials)
        kept = f"{finished} of {len(trials)} trials finished and stored in {store.out_dir}"
        raise MachineFault(fault_line(err, kept)) from err
