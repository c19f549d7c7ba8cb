"""Run trials: compile a group's programs, loop over chunks logging after each, summarise each trial.

    compile init, chunk, policy, evaluation (timed apart); evaluate the untrained policy (log point 0);
    for chunk c = 1 .. num_logs: each seed runs updates until its env steps reach the chunk's target
    (block_until_ready, wall-clock); every `eval_every` chunks evaluate policy(state) over fresh
    episodes; log a row per seed;
    summary per trial: status, final returns, timings, device, versions.

A group is one trial or several whose hyperparameter points differ only in
values (programs.py); they run as one program and each gets its own result,
the same as it would alone. A seed whose parameters or returns become
non-finite is marked `diverged`; the others carry on (all diverged: the group
stops early).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np
from flax import serialization

from esbench.provenance import PROTOCOL_VERSION, device_description, package_versions
from esbench.results.schema import TrialResult, metrics_frame
from esbench.runner import determinism
from esbench.runner.checkpoint import Checkpointer
from esbench.runner.config import ResolvedTrial, TrialSpec, resolve_trial
from esbench.runner.fitting import Fitted
from esbench.runner.interrupt import Interrupted, StopRequest
from esbench.runner.live_log import make_live_logs
from esbench.runner.memory import check_fits, program_memory
from esbench.runner.programs import INT32_MAX, Programs, compile_programs
from esbench.runner.progress import TrialProgress
from esbench.runner.record import TrialRecord


def _timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def _counter(values) -> np.ndarray:
    return np.clip(np.asarray(values, np.int64), 0, INT32_MAX).astype(np.int32)


@dataclass(frozen=True)
class RunOptions:
    """How trials run, beside what they compute (nothing here changes a result)."""

    progress: bool = True
    out_dir: Path | None = None  # checkpoints and live logs go under it (none without it)
    checkpoint_every: int | None = None  # chunks between checkpoints; None: about once a minute of training
    keep_checkpoints: bool = False
    live_logs: tuple[str, ...] = ()  # "tensorboard", "wandb"
    vectorize: bool = True  # trials sharing shapes run as one program
    memory_guard: bool = True  # refuse a group whose compiled program cannot fit (memory.py)
    memory_limit: int | None = None  # bytes a group's program may use (None: what the device has)
    # the persistent compilation cache folder, or "off" (compile_cache.py); None: as the process has it
    compile_cache: str | None = None
    deterministic: bool = False  # XLA's deterministic GPU ops (determinism.py)
    run_eta: Any = None  # eta.RunEta of the whole run (local backend): its ETA beside the trial's
    eta_history: Any = None  # eta.EtaHistory shared by one command's ETAs (with --plan: the plan's times)


def run_chunks(
    trials: Sequence[ResolvedTrial],
    programs: Programs,
    state,
    records: list[TrialRecord],
    progress: bool = True,
    after_chunk: Callable[[int, object], None] | None = None,
    run_eta=None,
):
    """The chunk loop from where the records stand to the end of the schedule; returns the final state.

    `after_chunk(chunk, state)` runs after each chunk's rows are recorded (live logs, checkpoints, stop).
    """
    schedule, spec = trials[0].schedule, trials[0].spec
    seeds = np.asarray(spec.seeds, np.uint32)
    name = trials[0].trial_id if len(trials) == 1 else f"{len(trials)} trials of {spec.env} x {spec.algo}"
    with TrialProgress(name, schedule.budget, enabled=progress, run_eta=run_eta) as bar:
        bar.advance(int(np.mean([r.env_steps.mean() for r in records])), float("nan"), float("nan"))
        for chunk in range(records[0].log_point + 1, schedule.num_logs + 1):
            if all(r.all_diverged for r in records):
                break
            goal = _counter([schedule.target(chunk) - r.env_steps for r in records])
            room = _counter([schedule.budget - r.env_steps for r in records])
            max_updates = _counter([schedule.max_updates - r.updates for r in records])
            (state, counts, metrics), seconds = _timed(programs.chunk, state, goal, room, max_updates)
            returns, eval_seconds = None, 0.0
            if chunk % spec.eval_every == 0 or chunk == schedule.num_logs:
                returns, eval_seconds = _timed(programs.evaluate_at, state, seeds, chunk)
                returns = np.asarray(returns)
            counts, metrics = jax.device_get((counts, metrics))
            finite = np.asarray(programs.finite(state))
            for p, record in enumerate(records):
                record.chunk(
                    {k: v[p] for k, v in counts.items()},
                    {k: v[p] for k, v in metrics.items()},
                    finite[p],
                    seconds,
                    None if returns is None else returns[p],
                    eval_seconds / len(records),
                )
            bar.advance(
                int(np.mean([r.env_steps.mean() for r in records])),
                float(np.nanmean([r.mean_train_return() for r in records])),
                float(counts["env_steps"].sum()) / seconds,
            )
            if after_chunk is not None:
                after_chunk(chunk, state)
    return state


def trial_summary(
    trial: ResolvedTrial,
    record: TrialRecord,
    compile_s: float,
    group: Sequence[str],
    layout: dict,
    split: dict | None = None,
) -> dict:
    """What summary.json records; `layout` is the device layout the group ran with (programs.DeviceLayout),
    `split` fitting.Split.as_dict() of a group split to fit the device (absent from an unsplit one's)."""
    return {
        **record.summary(),
        "compile_s": compile_s,
        "budget": trial.schedule.budget,
        "max_env_steps_per_update": trial.schedule.max_env_steps_per_update,
        # trials run as one program share compile and wall-clock time
        "vectorized_with": [trial_id for trial_id in group if trial_id != trial.trial_id],
        "device": device_description(),
        "layout": layout,
        "deterministic": determinism.is_on(),  # XLA's deterministic GPU ops (a CPU run is deterministic)
        "versions": package_versions([trial.env.spec.suite]),
        "protocol_version": PROTOCOL_VERSION,
        **({"split": split} if split is not None else {}),
    }


def _start(trials, programs: Programs, state, checkpointer: Checkpointer | None):
    """(state, records): resumed from the group's checkpoint, or fresh with the evaluation at log point 0."""
    resumed = checkpointer.load(trials, state) if checkpointer is not None else None
    if resumed is not None:
        state, records, _ = resumed
        if programs.sharding is not None:
            state = jax.device_put(state, programs.sharding)
        return state, records
    seeds = np.asarray(trials[0].spec.seeds, np.uint32)
    records = [TrialRecord(tuple(t.spec.seeds)) for t in trials]
    returns, seconds = _timed(programs.evaluate_at, state, seeds, 0)
    for record, point_returns in zip(records, np.asarray(returns)):
        record.initial(point_returns, seconds / len(trials))
    return state, records


def run_group(
    trials: Sequence[ResolvedTrial],
    options: RunOptions = RunOptions(),
    stop: StopRequest | None = None,
    fitted: Fitted | None = None,
) -> list[TrialResult]:
    """Run trials that share shapes (programs.py) as one program; one result per trial, in order.

    With `options.out_dir`, the group checkpoints (and resumes from its checkpoint) and streams live logs;
    when `stop` is requested it checkpoints after the current chunk and raises Interrupted.
    fitted: the group's programs as fitting.fitted_programs compiled them (its split goes in the
    summaries); without it they are compiled here and the memory guard refuses them (MemoryRefused).
    """
    start = time.perf_counter()
    if fitted is None:
        programs = compile_programs(trials, np.asarray(trials[0].spec.seeds, np.uint32))
        if options.memory_guard:  # before anything of the group runs
            check_fits(trials, program_memory(programs.compiled_chunk), options.memory_limit)
    else:
        programs = fitted.programs
    state = jax.block_until_ready(programs.init())
    compile_s = time.perf_counter() - start + (fitted.compile_s if fitted is not None else 0.0)
    split = fitted.split.as_dict() if fitted is not None and fitted.split is not None else None
    if options.run_eta is not None:
        options.run_eta.compiled(compile_s)

    checkpointer = None
    if options.out_dir is not None:
        checkpointer = Checkpointer(options.out_dir, options.checkpoint_every, options.keep_checkpoints)
    state, records = _start(trials, programs, state, checkpointer)
    logs = [make_live_logs(options.live_logs, options.out_dir) if options.live_logs else [] for _ in trials]
    last_saved = time.perf_counter()

    def after_chunk(chunk: int, state) -> None:
        nonlocal last_saved
        for trial_logs, record in zip(logs, records):
            for log in trial_logs:
                log.log(record.rows[-len(record.seeds) :])
        stopping = stop is not None and stop.requested
        if checkpointer is not None and (
            stopping or checkpointer.due(chunk, time.perf_counter() - last_saved)
        ):
            checkpointer.save(trials, state, records, compile_s)
            last_saved = time.perf_counter()
        if stopping:
            where = f" (checkpoint in {checkpointer.folder(trials)})" if checkpointer is not None else ""
            raise Interrupted(f"stopped after chunk {chunk} of {trials[0].schedule.num_logs}{where}")

    try:
        for trial, trial_logs, record in zip(trials, logs, records):
            for log in trial_logs:
                log.start(trial.trial_id, trial.config)
                log.log(record.rows)
        state = run_chunks(trials, programs, state, records, options.progress, after_chunk, options.run_eta)
        params = jax.device_get(programs.policy(state))
        ids = [t.trial_id for t in trials]
        results = []
        for p, (trial, record) in enumerate(zip(trials, records)):
            point = jax.tree_util.tree_map(lambda x: x[p], params)
            policy_bytes = serialization.msgpack_serialize(serialization.to_state_dict(point))
            results.append(
                TrialResult(
                    trial.config,
                    metrics_frame(record.rows),
                    trial_summary(trial, record, compile_s, ids, programs.layout, split),
                    policy_bytes,
                )
            )
            for log in logs[p]:
                log.finish(results[-1].summary)
    finally:
        for trial_logs in logs:
            for log in trial_logs:
                log.close()
    if checkpointer is not None:
        checkpointer.remove(trials)
    return results


def run_trial(trial: ResolvedTrial | TrialSpec, progress: bool = True) -> TrialResult:
    """Run one trial and return its config, metrics, summary and final policies (nothing is written)."""
    if isinstance(trial, TrialSpec):
        trial = resolve_trial(trial)
    return run_group([trial], RunOptions(progress=progress))[0]
