"""The remaining time of one `run_trials` call (a sweep, or one protocol stage), group by group.

Each group still to finish costs its compile (if it has not compiled yet) plus its remaining env steps
(budget x points x seeds) times a pace in seconds per env step. What each is taken from, best first:

- pace: the running group's own, measured over its chunks so far; else the saved plan's figure for the
  program (`esbench plan --json`, given with `--plan`) times its (env, algorithm)'s factor below; else
  its (env, algorithm)'s pace measured in this stage, else in an earlier stage of the same command; else
  the mean pace of every group measured so far (rough across envs of very different speeds);
- compile: the plan's compile time times the machine factor; else the mean compile of the same (env,
  algorithm) in this run or an earlier stage; else the mean of every compile so far.

The plan timed each program's untrained policy, and a trained one runs at another pace: ES episodes
lengthen as they learn (a generation simulates its population's longest), and a search's winners differ
from its average point. How far is particular to each (env, algorithm): on the main job CartPole's ES
ran 1.6-1.9x their planned time while Pendulum's ran 1.2-1.5x and Knapsack's OpenES 0.9x. So the factor
applied to a program's planned run is its own (env, algorithm)'s, the geometric mean of its finished
groups' run over their planned run in this command, and an (env, algorithm) not yet run keeps the plan
as it stands: another pair's factor, or the compiles' (a compile cache, or programs that share an
evaluation program, make compiles fast while the runs are not), misled it by up to 1.7x there. A compile
takes the machine factor: the median, over the programs compiled so far, of their compile time over the
plan's. So with a plan the ETA starts from every program's figure; without one it is exact for groups
alike (a search's points) and firms up as each (env, algorithm) runs. docs/plan.md measures how close
both come on the main job.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from esbench.validation import ConfigError


class EtaHistory:
    """What one command's ETAs know beyond their own stage: a saved plan's (compile s, run s outside the
    compile) per program, keyed (env, algo, points, seeds, budget; programs with the same key in the
    plan's order, as its stages run), how the compiles and each (env, algorithm)'s runs so far compared
    with the plan's, and each (env, algorithm)'s pace in the stages that have finished."""

    def __init__(self, times: dict[tuple, list[tuple[float, float]]] | None = None):
        self.times = times or {}
        self.compile_ratios: list[float] = []  # measured over planned, one per program compiled
        self.pair_runs: dict[tuple, list[float]] = {}  # (env, algo) -> [run seconds, env steps]
        self.compiles: dict[tuple, list[float]] = {}  # (env, algo) -> compile seconds of its groups
        self.pair_ratios: dict[tuple, list[float]] = {}  # (env, algo) -> measured over planned runs

    def machine_factor(self) -> float:
        """This machine's time over the plan's: the median compile ratio so far (1 before any)."""
        return statistics.median(self.compile_ratios) if self.compile_ratios else 1.0

    def run_factor(self, pair: tuple) -> float:
        """`pair`'s runs over their planned runs so far (geometric mean); 1 (the plan as it stands) before any."""
        ratios = self.pair_ratios.get(pair)
        return statistics.geometric_mean(ratios) if ratios else 1.0

    def pace(self, pair: tuple | None = None) -> float | None:
        """Seconds per env step of `pair` in the finished stages (None: of every pair); None if unmeasured."""
        runs = [self.pair_runs.get(pair, (0.0, 0.0))] if pair is not None else list(self.pair_runs.values())
        seconds, work = sum(r[0] for r in runs), sum(r[1] for r in runs)
        return seconds / work if work > 0 else None


def planned_times(path: str | Path) -> EtaHistory:
    """The times of a plan saved with `esbench plan --json` (its programs that were timed)."""
    try:
        plan = json.loads(Path(path).read_text())
        programs = plan["programs"]
        times: dict[tuple, list[tuple[float, float]]] = {}
        for p in programs:
            if p.get("status") == "ok" and p.get("projected_s") is not None:
                key = (p["env"], p["algo"], p["trials"], p["seeds"], p["budget"])
                times.setdefault(key, []).append((p["compile_s"], p["projected_s"] - p["compile_s"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ConfigError(f"--plan {path}: not a plan saved with `esbench plan --json` ({err})") from None
    return EtaHistory(times)


def _group_key(group) -> tuple:
    spec = group[0].spec
    return (spec.env, spec.algo, len(group), len(spec.seeds), group[0].schedule.budget)


class RunEta:
    """Events from the runner (started, compiled, advanced, finished) in; `text()` and `remaining_s()` out."""

    def __init__(self, groups, history: EtaHistory | None = None):
        self._clock = time.perf_counter
        self.start = self._clock()
        self.pairs = [(g[0].spec.env, g[0].spec.algo) for g in groups]
        self.budgets = [g[0].schedule.budget for g in groups]
        self.work = [self._work(g) for g in groups]
        self.full = list(self.work)  # a group's whole work, which its planned times are for
        self.history = history if history is not None else EtaHistory()
        self.expected = self._match(groups, self.history.times)
        self.began_at: dict[int, float] = {}
        self.compile_s: dict[int, float] = {}
        self.run_s: dict[int, float] = {}  # seconds outside the compile so far (finished: all of it)
        self.done_work: dict[int, float] = {}  # env steps done in this run
        self.finished_groups: set[int] = set()
        self.current = None
        self.resumed_at = None  # the running group's env steps per seed when it started (a checkpoint's)
        self.announced = False

    @staticmethod
    def _work(group) -> float:
        return group[0].schedule.budget * len(group) * len(group[0].spec.seeds)

    @staticmethod
    def _match(groups, planned) -> list[tuple[float, float] | None]:
        taken: dict[tuple, int] = {}
        out = []
        for group in groups:
            key = _group_key(group)
            options = planned.get(key, [])
            k = taken.get(key, 0)
            out.append(options[min(k, len(options) - 1)] if options else None)
            taken[key] = k + 1
        return out

    # ------------------------------------------------------------------------ events ---

    def claimed(self, index: int, group) -> None:
        """The trials of group `index` this process runs (others may be another process's)."""
        self.work[index] = self.full[index] = self._work(group)

    def skip(self, index: int) -> None:
        """A group another process took: no work of this run."""
        self.work[index] = 0

    def started(self, index: int) -> None:
        self.current, self.resumed_at = index, None
        self.began_at[index] = self._clock()

    def compiled(self, seconds: float) -> None:
        """The running group's compile time (trial.run_group)."""
        i = self.current
        if i is not None:
            first = i not in self.compile_s  # a group split to fit the device compiles once per program
            self.compile_s[i] = self.compile_s.get(i, 0.0) + seconds
            if first and self.expected[i] is not None and self.expected[i][0] > 0:
                self.history.compile_ratios.append(seconds / self.expected[i][0])

    def advanced(self, env_steps_per_seed: float) -> None:
        """The running group's mean env steps per seed so far (the first call: where it resumes from)."""
        i = self.current
        if i is None:
            return
        budget = self.budgets[i]
        if self.resumed_at is None:  # a resumed group's restored env steps are not this run's work
            self.resumed_at = min(env_steps_per_seed, budget)
            self.work[i] *= 1.0 - self.resumed_at / budget
        left = budget - self.resumed_at
        done = min(max(env_steps_per_seed - self.resumed_at, 0.0), left)
        self.done_work[i] = done / left * self.work[i] if left > 0 else 0.0
        self.run_s[i] = self._elapsed_outside_compile(i)

    def finished(self, index: int) -> None:
        if index in self.began_at:
            self.run_s[index] = self._elapsed_outside_compile(index)
            history = self.history
            if index in self.compile_s:
                history.compiles.setdefault(self.pairs[index], []).append(self.compile_s[index])
            if self.work[index]:
                runs = history.pair_runs.setdefault(self.pairs[index], [0.0, 0.0])
                runs[0] += self.run_s[index]
                runs[1] += self.work[index]
                planned = (
                    self.expected[index][1] * self.work[index] / self.full[index]
                    if self.expected[index]
                    else 0
                )
                if planned > 0 and self.run_s[index] > 0:
                    history.pair_ratios.setdefault(self.pairs[index], []).append(self.run_s[index] / planned)
        self.done_work[index] = self.work[index]
        self.finished_groups.add(index)
        if self.current == index:
            self.current = None

    def failed(self, index: int) -> None:
        """The group stopped: only what it did counts as work (nothing, if it failed before running)."""
        self.work[index] = self.done_work.get(index, 0.0)
        self.finished(index)

    # --------------------------------------------------------------------- estimates ---

    def _elapsed_outside_compile(self, i: int) -> float:
        return max(self._clock() - self.began_at[i] - self.compile_s.get(i, 0.0), 0.0)

    def _measured(self, indices) -> tuple[float, float]:
        """(run seconds, env steps) of `indices`' measured groups."""
        seconds = sum(self.run_s.get(i, 0.0) for i in indices if self.done_work.get(i))
        work = sum(self.done_work.get(i, 0.0) for i in indices if self.run_s.get(i) is not None)
        return seconds, work

    def _pace(self, i: int) -> float | None:
        seconds, work = self._measured([i])
        if work > 0:
            return seconds / work
        if self.expected[i] is not None and self.full[i]:
            return self.expected[i][1] * self.history.run_factor(self.pairs[i]) / self.full[i]
        same = [j for j, pair in enumerate(self.pairs) if pair == self.pairs[i]]
        seconds, work = self._measured(same)
        if work > 0:
            return seconds / work
        earlier = self.history.pace(self.pairs[i])  # an earlier stage of this command
        if earlier is not None:
            return earlier
        seconds, work = self._measured(range(len(self.work)))
        if work > 0:
            return seconds / work
        if self.history.pace() is not None:
            return self.history.pace()
        # groups timed elsewhere (Ray workers): the run's pace, compiles in
        done = sum(self.done_work.values())
        return (self._clock() - self.start) / done if done > 0 else None

    def _compile(self, i: int) -> float | None:
        if self.expected[i] is not None:
            return self.expected[i][0] * self.history.machine_factor()
        pair, earlier = self.pairs[i], self.history.compiles
        same = [self.compile_s[j] for j in self.compile_s if self.pairs[j] == pair] or earlier.get(pair, [])
        known = same or list(self.compile_s.values()) or [c for cs in earlier.values() for c in cs]
        return sum(known) / len(known) if known else None

    def remaining_s(self) -> float | None:
        """Seconds left, or None while nothing has been measured."""
        left = 0.0
        for i, work in enumerate(self.work):
            if not work or i in self.finished_groups:
                continue
            if i not in self.compile_s:
                compile_s = self._compile(i)
                if compile_s is None:
                    return None
                spent = self._clock() - self.began_at[i] if i in self.began_at else 0.0
                left += max(compile_s - spent, 0.0)
            pace = self._pace(i)
            if pace is None:
                return None
            left += (work - self.done_work.get(i, 0.0)) * pace
        return left

    def text(self) -> str:
        total = sum(self.work)
        left = self.remaining_s()
        if left is None:
            return f"run: {len(self.work)} group(s), {total:,.0f} env steps; its ETA follows the first chunk"
        done = sum(self.done_work.values())
        elapsed = self._clock() - self.start
        return f"run: {done / total:.0%} of its env steps in {_duration(elapsed)}, ETA {_duration(left)}"

    def first_projection(self) -> str | None:
        """Once, after the run's first chunk: the whole run's projected time, and what it rests on."""
        left = self.remaining_s()
        if left is None or self.announced:
            return None
        self.announced = True
        elapsed = self._clock() - self.start
        planned = sum(e is not None for e in self.expected)
        basis = (
            f"the saved plan's {planned} of {len(self.expected)} programs, scaled to this run's compiles and paces"
            if planned
            else "each (env, algorithm) at its own pace once measured, the pace so far until then"
        )
        return f"run: projected {_duration(elapsed + left)} in all from its first chunk ({basis})"


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"
