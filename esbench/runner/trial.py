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
from typing import Callable, Sequence

import jax
import numpy as np
from flax import serialization

from esbench.provenance import PROTOCOL_VERSION, device_description, package_versions
from esbench.results.schema import TrialResult, metrics_frame
from esbench.runner.config import ResolvedTrial, TrialSpec, resolve_trial
from esbench.runner.programs import INT32_MAX, Programs, compile_programs
from esbench.runner.progress import TrialProgress
from esbench.runner.record import TrialRecord


def _timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def _counter(values) -> np.ndarray:
    return np.clip(np.asarray(values, np.int64), 0, INT32_MAX).astype(np.int32)


def run_chunks(trials: Sequence[ResolvedTrial], programs: Programs, state, records: list[TrialRecord],
               progress: bool = True, on_chunk: Callable[[int], None] | None = None):
    """The chunk loop from where the records stand to the end of the plan; returns the final state."""
    plan, spec = trials[0].plan, trials[0].spec
    seeds = np.asarray(spec.seeds, np.uint32)
    name = trials[0].trial_id if len(trials) == 1 else f"{len(trials)} trials of {spec.env} x {spec.algo}"
    with TrialProgress(name, plan.budget, enabled=progress) as bar:
        for chunk in range(records[0].log_point + 1, plan.num_logs + 1):
            if all(r.all_diverged for r in records):
                break
            goal = _counter([plan.target(chunk) - r.env_steps for r in records])
            room = _counter([plan.budget - r.env_steps for r in records])
            more = _counter([plan.max_updates - r.updates for r in records])
            (state, counts, metrics), seconds = _timed(programs.chunk, state, goal, room, more)
            returns, eval_seconds = None, 0.0
            if chunk % spec.eval_every == 0 or chunk == plan.num_logs:
                returns, eval_seconds = _timed(programs.evaluate_at, state, seeds, chunk)
                returns = np.asarray(returns)
            counts, metrics = jax.device_get((counts, metrics))
            finite = np.asarray(programs.finite(state))
            for p, record in enumerate(records):
                record.chunk({k: v[p] for k, v in counts.items()}, {k: v[p] for k, v in metrics.items()}, finite[p],
                             seconds, None if returns is None else returns[p], eval_seconds / len(records))
            steps = np.mean([r.env_steps.mean() for r in records])
            bar.advance(int(steps), float(np.nanmean([r.mean_train_return() for r in records])),
                        sum(int(c.sum()) for c in [counts["env_steps"]]) / seconds)
            if on_chunk is not None:
                on_chunk(chunk)
    return state


def trial_summary(trial: ResolvedTrial, record: TrialRecord, compile_s: float, group: Sequence[str]) -> dict:
    return {
        **record.summary(),
        "compile_s": compile_s,
        "budget": trial.plan.budget,
        "max_env_steps_per_update": trial.plan.max_env_steps_per_update,
        # trials run as one program share compile and wall-clock time
        "vectorized_with": [trial_id for trial_id in group if trial_id != trial.trial_id],
        "device": device_description(),
        "versions": package_versions([trial.env.spec.suite]),
        "protocol_version": PROTOCOL_VERSION,
    }


def run_group(trials: Sequence[ResolvedTrial], progress: bool = True,
              on_chunk: Callable[[int], None] | None = None) -> list[TrialResult]:
    """Run trials that share shapes (programs.py) as one program; one result per trial, in order."""
    seeds = np.asarray(trials[0].spec.seeds, np.uint32)
    start = time.perf_counter()
    programs = compile_programs(trials, seeds)
    state = jax.block_until_ready(programs.init())
    compile_s = time.perf_counter() - start

    records = [TrialRecord(tuple(t.spec.seeds)) for t in trials]
    returns, seconds = _timed(programs.evaluate_at, state, seeds, 0)
    for record, point_returns in zip(records, np.asarray(returns)):
        record.initial(point_returns, seconds / len(trials))
    state = run_chunks(trials, programs, state, records, progress, on_chunk)

    params = jax.device_get(programs.policy(state))
    ids = [t.trial_id for t in trials]
    results = []
    for p, (trial, record) in enumerate(zip(trials, records)):
        point = jax.tree_util.tree_map(lambda x: x[p], params)
        policy_bytes = serialization.msgpack_serialize(serialization.to_state_dict(point))
        results.append(TrialResult(trial.config, metrics_frame(record.rows),
                                   trial_summary(trial, record, compile_s, ids), policy_bytes))
    return results


def run_trial(trial: ResolvedTrial | TrialSpec, progress: bool = True,
              on_chunk: Callable[[int], None] | None = None) -> TrialResult:
    """Run one trial and return its config, metrics, summary and final policies (nothing is written)."""
    if isinstance(trial, TrialSpec):
        trial = resolve_trial(trial)
    return run_group([trial], progress, on_chunk)[0]
