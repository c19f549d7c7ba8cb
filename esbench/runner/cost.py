"""What one group's programs cost: compile time, memory, throughput and a projection of its whole run.

    cost = measure_group(trials, steps=2)      # compiles the group's programs exactly as run_group does

1. compile (compile_programs and init, timed together as run_group times them);
2. read the chunk program's memory analysis (memory.py: the guard's own figure); a program that
   cannot fit is flagged and not run;
3. run one update (warm-up), then time `steps` updates: the chunk program with a goal no seed
   reaches and a cap of `steps` updates (a warm-up over LONG_UPDATE_S is the measurement itself);
   time one evaluation after a warm one.

Projection of the group's trials (they run as one program):

    run_s      = budget / (env steps per seed per second)       # each seed runs its own budget, all in parallel
    projected  = compile_s + run_s + evaluations * eval_s

ES episodes may end early, so an update's env steps depend on the policy: the
measured updates are the untrained policy's, and the projection assumes the
env steps per second they reached hold over the whole run (an update's cost
follows its longest episode; see `simulated_env_steps`).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import jax
import numpy as np

from esbench.runner.memory import MemoryRefused, check_fits, program_memory
from esbench.runner.programs import INT32_MAX, compile_programs
from esbench.runner.roofline import Accelerator, trips_estimate, update_cost

LONG_UPDATE_S = 10.0  # a warm-up update this long is timed as the measurement (paper shapes on a CPU)


@dataclass
class ProgramCost:
    """One compiled group: its measurement and its trials' projected cost."""

    env: str
    algo: str
    stage: str
    trials: int  # points in the program
    seeds: int
    budget: int  # env steps per seed
    compile_s: float | None = None
    argument_bytes: int | None = None
    output_bytes: int | None = None
    temp_bytes: int | None = None
    peak_bytes: int | None = None
    update_s: float | None = None  # one update of every point and seed
    env_steps_per_update: float | None = None  # per seed, measured (inside episodes)
    env_steps_per_s: float | None = None  # all points and seeds together
    eval_s: float | None = None  # one evaluation of every point and seed
    evaluations: int = 0
    projected_s: float | None = None
    flops_per_update: float | None = None  # every point and seed, loops counted by their trips (roofline.py)
    bytes_per_update: float | None = None
    bound_per_update_s: float | None = None  # the accelerator's lower bound on one update
    roofline_s: float | None = None  # ... on all the updates of the run
    roofline_at_limit_s: float | None = (
        None  # ... were every episode to run to its limit: the budget's least work
    )
    fits_device: bool | None = (
        None  # peak_bytes within the device's memory (plan.py: --memory-gb, the accelerator's)
    )
    status: str = (
        "ok"  # ok | too big | failed | over time (measure_in_child: projected_s is then a lower bound)
    )
    note: str = ""
    shared_with: list = field(default_factory=list)  # other groups of the same shapes, measured once

    def as_dict(self) -> dict:
        return asdict(self)


def evaluations(schedule, eval_every: int) -> int:
    """Evaluations a trial runs: log point 0, then every `eval_every` chunks and the last."""
    return 1 + sum(
        1 for c in range(1, schedule.num_logs + 1) if c % eval_every == 0 or c == schedule.num_logs
    )


def _counter(trials, seeds, value) -> jax.Array:
    return np.full((len(trials), seeds), value, np.int32)


def measure_group(
    trials,
    stage: str = "",
    steps: int = 2,
    accelerator: Accelerator | None = None,
    memory_limit: int | None = None,
    report: Callable[[str, ProgramCost], None] | None = None,
) -> ProgramCost:
    """Compile and time one group's programs (see the module's docstring); nothing is written.

    report(phase, cost so far): called once compiled ("compiled": compile time, memory and, with an
    accelerator, the bound as if every episode ran to its limit) and once the updates are timed ("timed")."""
    first = trials[0]
    spec, schedule = first.spec, first.schedule
    seeds = np.asarray(spec.seeds, np.uint32)
    cost = unmeasured(trials, stage, evaluations=evaluations(schedule, spec.eval_every))
    start = time.perf_counter()
    programs = compile_programs(trials, seeds)
    compile_s = time.perf_counter() - start  # init is run (and timed) below, once it is known to fit
    needs = program_memory(programs.compiled_chunk)
    if needs is not None:
        cost.argument_bytes, cost.output_bytes = needs.argument_bytes, needs.output_bytes
        cost.temp_bytes, cost.peak_bytes = needs.temp_bytes, needs.peak_bytes
    counted: dict = {}  # the update's loop bodies, compiled once for both bounds
    if (
        accelerator is not None
    ):  # every episode to its limit: the budget's least work, alike for every program
        _bound(
            cost,
            programs,
            accelerator,
            schedule.budget / schedule.max_env_steps_per_update,
            first.env.spec.max_episode_steps,
            counted,
        )
        cost.roofline_at_limit_s = cost.roofline_s
    try:
        cost.note = check_fits(trials, needs, memory_limit)
    except MemoryRefused as refusal:
        cost.compile_s, cost.status, cost.note = compile_s, "too big", str(refusal)
        if accelerator is not None:
            cost.note += "; its bound counts every episode to its limit (not run)"
        return cost

    start = time.perf_counter()
    state = jax.block_until_ready(programs.init())
    cost.compile_s = compile_s + time.perf_counter() - start
    if report is not None:
        report("compiled", dataclasses.replace(cost))
    no_goal, room = _counter(trials, len(seeds), INT32_MAX), _counter(trials, len(seeds), INT32_MAX)
    start = time.perf_counter()
    state, counts, _ = jax.block_until_ready(
        programs.chunk(state, no_goal, room, _counter(trials, len(seeds), 1))
    )
    seconds = time.perf_counter() - start
    if (
        seconds < LONG_UPDATE_S
    ):  # else the warm-up is the measurement: a first call's overhead is small beside it
        start = time.perf_counter()
        state, counts, _ = jax.block_until_ready(
            programs.chunk(state, no_goal, room, _counter(trials, len(seeds), steps))
        )
        seconds = time.perf_counter() - start
    counts = jax.device_get(counts)
    updates = float(np.mean(counts["updates"]))
    per_seed = float(np.mean(counts["env_steps"])) / updates

    cost.update_s = seconds / updates
    cost.env_steps_per_update = per_seed
    cost.env_steps_per_s = float(np.sum(counts["env_steps"])) / seconds
    run_updates = min(schedule.budget / per_seed, schedule.max_updates)
    if accelerator is not None:
        simulated = float(np.mean(counts["simulated_env_steps"])) / updates
        _bound(
            cost,
            programs,
            accelerator,
            run_updates,
            trips_estimate(simulated, schedule.max_env_steps_per_update, first.env.spec.max_episode_steps),
            counted,
        )
    if report is not None:
        report("timed", dataclasses.replace(cost))
    jax.block_until_ready(programs.evaluate_at(state, seeds, 1))
    start = time.perf_counter()
    jax.block_until_ready(programs.evaluate_at(state, seeds, 2))
    cost.eval_s = time.perf_counter() - start
    cost.projected_s = projection(cost, run_updates)
    return cost


def projection(cost: ProgramCost, updates: float) -> float:
    """compile + updates x update time + evaluations x evaluation time (evaluations not timed: left out)."""
    return cost.compile_s + updates * cost.update_s + cost.evaluations * (cost.eval_s or 0.0)


def unmeasured(trials, stage: str, **fields) -> ProgramCost:
    """A group's ProgramCost before (or without) any measurement."""
    spec = trials[0].spec
    return ProgramCost(
        spec.env, spec.algo, stage, len(trials), len(spec.seeds), trials[0].schedule.budget, **fields
    )


def error_line(err: BaseException) -> str:
    """`Type: first line` of an error: a program's failure in a plan's table."""
    first = (str(err).strip().splitlines() or [""])[0][:300]
    return f"{type(err).__name__}: {first}"


def _bound(
    cost: ProgramCost,
    programs,
    accelerator: Accelerator,
    run_updates: float,
    episode_trips: float,
    counted: dict | None = None,
) -> None:
    """The roofline fields of `cost`: one update's loop-corrected counts, the accelerator's bound on the run's
    updates."""
    cost.flops_per_update, cost.bytes_per_update = update_cost(
        programs.update,
        programs.state_shapes,
        programs.values,
        episode_trips,
        programs.compiled_chunk,
        counted,
    )
    cost.bound_per_update_s = accelerator.bound_s(cost.flops_per_update, cost.bytes_per_update)
    cost.roofline_s = run_updates * cost.bound_per_update_s
