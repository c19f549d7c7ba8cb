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

    def __init__(self, name: str, total_env_steps: int, enabled: bool = True, run_eta=None):
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
