"""Progress bar of a running trial: env steps, train return and throughput (rich)."""

from __future__ import annotations

import math
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class TrialProgress:
    """`with TrialProgress(name, total_env_steps) as bar: bar.advance(env_steps, ret, sps)`."""

    def __init__(self, name: str, total_env_steps: int, enabled: bool = True):
        self.name = name
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
            console=console,
            disable=not enabled,
            transient=False,
        )
        self.task = self.progress.add_task(name, total=total_env_steps, ret="-", sps="-")

    def __enter__(self) -> "TrialProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def advance(self, env_steps: int, train_return: float, sps: float) -> None:
        ret = "nan" if math.isnan(train_return) else f"{train_return:.4g}"
        self.progress.update(self.task, completed=env_steps, ret=ret, sps=f"{sps:,.0f}")


class RunEta:
    """The whole run's remaining time, projected from the groups finished so far (compile and evaluation included).

    A group's work is its env steps (budget x points x seeds); the run's remaining time is the remaining
    work at the seconds per env step the finished groups took. Exact for groups alike (a protocol stage's),
    rough across envs of very different speeds; `esbench plan` measures each program instead.
    """

    def __init__(self, groups):
        import time

        self._clock = time.perf_counter
        self.start = self._clock()
        self.work = [g[0].plan.budget * len(g) * len(g[0].spec.seeds) for g in groups]
        self.done = 0

    def finished(self, index: int) -> None:
        self.done += self.work[index]

    def skip(self, index: int) -> None:
        """A group another process took: no work of this run."""
        self.work[index] = 0

    def text(self) -> str:
        total = sum(self.work)
        if not self.done:
            return f"run: {len(self.work)} group(s), {total:,} env steps; its ETA follows the first group"
        elapsed = self._clock() - self.start
        left = elapsed / self.done * (total - self.done)
        return f"run: {self.done / total:.0%} of its env steps in {_duration(elapsed)}, ETA {_duration(left)}"


def _duration(seconds: float) -> str:
    minutes, s = divmod(int(seconds), 60)
    hours, m = divmod(minutes, 60)
    return f"{hours}h{m:02d}m" if hours else f"{m}m{s:02d}s"
