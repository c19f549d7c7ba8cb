"""Programs that fit the device: a group's split, chosen before the group runs.

    for fitted in fitted_programs(group, options):   # compiled lazily, one program at a time
        run_group(fitted.trials, options, stop, fitted)

The limit is memory.memory_limit (--memory-limit, else the device's memory less
the headroom). A group whose compiled chunk program (memory.program_memory,
the guard's figure) fits runs unsplit, exactly as before: same program, same
results, same trial ids. One that does not is split, in this order:

1. points per program: the group's points in sub-groups of k, run one after another, each sub-group's
   results stored as soon as it finishes (its checkpoints are its own).

(Seeds per program and population slices, the next steps of issue 27, are not
implemented: the smallest program is 1 point with all its seeds and the whole
population.) Memory is close to linear in points, so the next candidate is
estimated from the last compile (the per-point share of its peak),
then compiled and checked; the chosen one always compiled within the limit.
Splits are resource settings: every seed of every point computes exactly what
it computes unsplit (each point is its own vmapped lane, with its own
counter-based keys), so results and trial ids are the unsplit group's, bit-identical on this
CPU (tests/test_fitting.py; on a GPU within rounding: a different batch size
may pick different kernels). The split is printed beside the group's progress
line and recorded in each trial's summary.json as "split" (absent: unsplit).

A group that cannot fit even at its smallest split (1 point) raises
CannotFit, which is not a MachineFault: the backends store a failure record per
trial (results.store.write_failure, kind "memory"), list them in
SweepOutcome.failed, and run every other group (exit code 1). A record is
removed when its trial later finishes (store.write). --no-memory-guard runs the
group unsplit and unchecked.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from esbench.runner.memory import gb, memory_limit, program_memory
from esbench.runner.programs import compile_programs

MEMORY_FAILURE = "memory"  # the kind of the failure record of a group that cannot fit


class CannotFit(Exception):
    """A group's smallest program needs more memory than the limit; nothing of it ran."""


@dataclass(frozen=True)
class Split:
    """How a group of `points` points x `seeds` seeds runs: programs of points_per x seeds_per."""

    points: int
    seeds: int
    points_per: int
    seeds_per: int

    @property
    def programs(self) -> int:
        return math.ceil(self.points / self.points_per) * math.ceil(self.seeds / self.seeds_per)

    def describe(self) -> str:
        def n(k, what):
            return f"{k} {what}" + ("s" if k != 1 else "")

        return (
            f"split: {n(self.points_per, 'point')} x {n(self.seeds_per, 'seed')} per program, "
            f"{n(self.programs, 'program')}"
        )

    def as_dict(self) -> dict:
        return {
            "points_per_program": self.points_per,
            "seeds_per_program": self.seeds_per,
            "programs": self.programs,
        }


@dataclass(frozen=True)
class Fitted:
    """One program of a group's split: its trials, the seeds it runs, its compiled programs."""

    trials: Sequence[Any]
    seeds: tuple[int, ...]
    programs: Any
    compile_s: float
    split: Split | None  # None: the group runs unsplit


def _compile(trials, seeds) -> tuple[Any, float, int | None]:
    start = time.perf_counter()
    programs = compile_programs(trials, np.asarray(seeds, np.uint32))
    needs = program_memory(programs.compiled_chunk)
    return programs, time.perf_counter() - start, None if needs is None else needs.peak_bytes


def _name(trials) -> str:
    spec = trials[0].spec
    return f"{spec.env} x {spec.algo}"


def _next(current: int, peak: int, limit: int) -> int:
    """The largest count whose share of `peak` (measured at `current`) fits `limit`, below `current`."""
    return max(1, min(current - 1, int(limit * current // max(peak, 1))))


def fitted_programs(
    group: Sequence[Any], memory_guard: bool = True, limit: int | None = None
) -> Iterator[Fitted]:
    """The programs that run `group`, one after another, each compiled when its turn comes (module docstring).

    limit: --memory-limit's bytes (None: the device's, memory.memory_limit). CannotFit (before anything
    runs) when 1 point does not fit."""
    seeds = tuple(group[0].spec.seeds)
    programs, compile_s, peak = _compile(group, seeds)
    limit, source = memory_limit(limit) if memory_guard else (None, "")
    if limit is None or peak is None or peak <= limit:
        yield Fitted(group, seeds, programs, compile_s, None)
        return
    points = len(group)
    while points > 1 and peak > limit:  # 1. points per program
        points = _next(points, peak, limit)
        programs, compile_s, peak = _compile(group[:points], seeds)
    if peak > limit:
        raise CannotFit(
            f"memory: {_name(group)} cannot fit {gb(limit)} ({source}): its smallest program "
            f"(1 point x {len(seeds)} seed(s)) needs {gb(peak)}; nothing of it ran. Shrink pop_size, the "
            f"network or the env's batch, or override with --memory-limit SIZE or --no-memory-guard"
        )
    split = Split(len(group), len(seeds), points, len(seeds))
    for start in range(0, len(group), points):
        part = group[start : start + points]
        if start:  # the first was compiled above; a last, smaller part needs less
            programs, compile_s, _ = _compile(part, seeds)
        yield Fitted(part, seeds, programs, compile_s, split)
