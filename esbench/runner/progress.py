"""Progress bar of a running trial: env steps, train return and throughput (rich)."""

from __future__ import annotations

import math
import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrialProgress:
    """`with TrialProgress(name, total_env_steps) as bar: bar.advance(env_steps, ret, sps)`."""

    def __init__(
        self, name: str, total_env_steps: int, enabled: bool = True, run_eta: "RunEta | None" = None
    ):
        self.name = name
        self.run_eta = run_eta
        self.enabled = enabled
        console = Console(file=sys.stderr)
        if not console.is_terminal:
            # Logs and pipes get one final line per trial; rich's default 80 columns would cut it to ellipses.
            console = Console(file=sys.stderr, width=160)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("env steps  return {task.fields[ret]}  {task.fields[sps]} steps/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[run]}"),
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task(name, total=total_env_steps, ret="-", sps="-", run="")

    def __enter__(self) -> "TrialProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def advance(self, env_steps: int, train_return: float, sps: float) -> None:
        ret = "nan" if math.isnan(train_return) else f"{train_return:.4g}"
        run = ""
        if self.run_eta is not None:
            self.run_eta.advanced(env_steps)
            run = self.run_eta.text()
            first = self.run_eta.first_projection()
            if first and self.enabled:
                self.progress.console.print(first)
        self.progress.update(self.task, completed=env_steps, ret=ret, sps=f"{sps:,.0f}", run=run)


class RunEta:
    """The whole run's remaining time, from what the run has done so far: its first chunk on.

    A group's work is its env steps (budget x points x seeds). The run so far gives a compile time per
    group (their mean) and seconds per env step (the time outside compiles over the work done, the
    running group's chunks included); the remaining time is

        groups not yet compiled x mean compile + remaining work x seconds per env step.

    Exact for groups alike (a protocol stage's), rough across envs of very different speeds;
    `esbench plan` measures each program instead.
    """

    def __init__(self, groups):
        import time

        self._clock = time.perf_counter
        self.start = self._clock()
        self.work = [self._work(g) for g in groups]
        self.budgets = [g[0].schedule.budget for g in groups]
        self.done = 0
        self.current, self.partial = None, 0.0  # the running group and its work done in this run
        self.resumed_at = None  # the running group's env steps per seed when it started (a checkpoint's)
        self.compiles: list[float] = []
        self.begun: set[int] = set()  # groups started (compiled or compiling)
        self.announced = False

    @staticmethod
    def _work(group) -> float:
        return group[0].schedule.budget * len(group) * len(group[0].spec.seeds)

    def claimed(self, index: int, group) -> None:
        """The trials of group `index` this process runs (others may be another process's)."""
        self.work[index] = self._work(group)

    def started(self, index: int) -> None:
        self.current, self.partial, self.resumed_at = index, 0.0, None
        self.begun.add(index)

    def compiled(self, seconds: float) -> None:
        """The running group's compile time (trial.run_group)."""
        self.compiles.append(seconds)

    def advanced(self, env_steps_per_seed: float) -> None:
        """The running group's mean env steps per seed so far (the first call: where it resumes from)."""
        if self.current is None:
            return
        budget = self.budgets[self.current]
        if self.resumed_at is None:  # a resumed group's restored env steps are not this run's work
            self.resumed_at = min(env_steps_per_seed, budget)
            self.work[self.current] *= 1.0 - self.resumed_at / budget
        left = budget - self.resumed_at
        done = min(max(env_steps_per_seed - self.resumed_at, 0.0), left)
        self.partial = done / left * self.work[self.current] if left > 0 else 0.0

    def finished(self, index: int) -> None:
        self.done += self.work[index]
        if self.current == index:
            self.current, self.partial = None, 0.0

    def failed(self, index: int) -> None:
        """The group stopped: only what it did counts as work (nothing, if it failed before running)."""
        self.work[index] = self.partial if self.current == index else 0.0
        self.finished(index)

    def skip(self, index: int) -> None:
        """A group another process took: no work of this run."""
        self.work[index] = 0

    def remaining_s(self) -> float | None:
        done = self.done + self.partial
        if not done:
            return None
        elapsed = self._clock() - self.start
        per_step = max(elapsed - sum(self.compiles), 0.0) / done
        mean_compile = sum(self.compiles) / len(self.compiles) if self.compiles else 0.0
        groups_left = sum(1 for i, w in enumerate(self.work) if w and i not in self.begun)
        return groups_left * mean_compile + (sum(self.work) - done) * per_step

    def text(self) -> str:
        total = sum(self.work)
        left = self.remaining_s()
        if left is None:
            return f"run: {len(self.work)} group(s), {total:,} env steps; its ETA follows the first chunk"
        elapsed = self._clock() - self.start
        done = self.done + self.partial
        return f"run: {done / total:.0%} of its env steps in {_duration(elapsed)}, ETA {_duration(left)}"

    def first_projection(self) -> str | None:
        """Once, after the run's first chunk: the whole run's projected time."""
        left = self.remaining_s()
        if left is None or self.announced:
            return None
        self.announced = True
        elapsed = self._clock() - self.start
        return (
            f"run: projected {_duration(elapsed + left)} in all from its first chunk "
            f"(each group compiling as the first did, every env step at its pace)"
        )


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"
