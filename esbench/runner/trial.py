"""Run one trial: compile its programs, loop over chunks logging after each, summarise.

    compile init, chunk, policy, evaluation (timed apart), evaluate the untrained policy (log point 0);
    loop chunks: run one (block_until_ready, wall-clock), every `eval_every` chunks evaluate
    policy(state) over fresh episodes; log a row per seed;
    summary: status, final returns, timings, device, versions.

A seed whose parameters or returns become non-finite is marked `diverged`;
the others carry on (all diverged: the trial stops early).
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import numpy as np
from flax import serialization

from esbench.provenance import PROTOCOL_VERSION, device_description, package_versions
from esbench.results.schema import TrialResult, metrics_frame
from esbench.runner.config import ResolvedTrial, TrialSpec, resolve_trial
from esbench.runner.programs import Programs, compile_programs, seed_keys
from esbench.runner.progress import TrialProgress
from esbench.runner.record import TrialRecord


def _timed(fn, *args):
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    return out, time.perf_counter() - start


def run_chunks(trial: ResolvedTrial, programs: Programs, state, record: TrialRecord, progress: bool = True,
               on_chunk: Callable[[int], None] | None = None):
    """The chunk loop from where `record` stands to the end of the plan; returns the final state."""
    plan, spec = trial.plan, trial.spec
    seeds = np.asarray(spec.seeds, np.uint32)
    with TrialProgress(trial.trial_id, plan.env_steps, enabled=progress) as bar:
        while record.log_point < plan.n_chunks and not record.all_diverged:
            (state, metrics), seconds = _timed(programs.chunk, state)
            chunk = record.log_point + 1
            returns, eval_seconds = None, 0.0
            if chunk % spec.eval_every == 0 or chunk == plan.n_chunks:
                returns, eval_seconds = _timed(programs.evaluate_at, state, seeds, chunk)
            record.chunk(jax.device_get(metrics), np.asarray(programs.finite(state)), seconds,
                         plan.env_steps_per_update, returns, eval_seconds)
            bar.advance(chunk * plan.updates_per_chunk * plan.env_steps_per_update, record.mean_train_return(),
                        plan.updates_per_chunk * plan.env_steps_per_update / seconds)
            if on_chunk is not None:
                on_chunk(chunk)
    return state


def trial_summary(trial: ResolvedTrial, record: TrialRecord, compile_s: float) -> dict:
    return {
        **record.summary(),
        "compile_s": compile_s,
        "env_steps_per_update": trial.plan.env_steps_per_update,
        "updates_per_chunk": trial.plan.updates_per_chunk,
        "device": device_description(),
        "versions": package_versions([trial.env.spec.suite]),
        "protocol_version": PROTOCOL_VERSION,
    }


def run_trial(trial: ResolvedTrial | TrialSpec, progress: bool = True,
              on_chunk: Callable[[int], None] | None = None) -> TrialResult:
    """Run a trial and return its config, metrics, summary and final policies (nothing is written)."""
    if isinstance(trial, TrialSpec):
        trial = resolve_trial(trial)
    seeds = np.asarray(trial.spec.seeds, np.uint32)
    init_keys = jax.vmap(lambda s: seed_keys(s)[0])(seeds)

    start = time.perf_counter()
    programs = compile_programs(trial, init_keys)
    state = jax.block_until_ready(programs.init(init_keys))
    compile_s = time.perf_counter() - start

    record = TrialRecord(tuple(trial.spec.seeds))
    record.initial(*_timed(programs.evaluate_at, state, seeds, 0))
    state = run_chunks(trial, programs, state, record, progress, on_chunk)

    params = jax.device_get(programs.policy(state))
    policy_bytes = serialization.msgpack_serialize(serialization.to_state_dict(params))
    return TrialResult(trial.config, metrics_frame(record.rows), trial_summary(trial, record, compile_s), policy_bytes)
