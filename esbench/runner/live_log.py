"""Live logs: stream every log point of every seed to TensorBoard or W&B while a trial runs.

    logs = make_live_logs(["tensorboard", "wandb"], out_dir)   # ConfigError before anything runs
    for log in logs: log.start(trial_id, config)
    try:
        ...  for each log point: for log in logs: log.log(rows)   # one row per seed
        for log in logs: log.finish(summary)
    finally:
        for log in logs: log.close()                               # no-op after finish

Each seed is its own run (a TensorBoard run folder, a W&B run), since the x-axis,
`step = row["env_steps"]`, is per seed. Every finite number in a row except
"seed" and "log_point" is one scalar (booleans as 0/1); NaN, inf and
non-numbers are skipped. Tags (`tag()`):

    train/return  eval/return_mean  eval/return_std
    perf/throughput_sps  perf/wall_clock_s
    progress/env_steps  progress/simulated_env_steps  progress/update  progress/diverged
    metrics/<name>       for an algorithm metric "m_<name>" (sigma, lr, policy_loss, ...)
    other/<field>        for any other numeric field

TensorBoard (`esbench[tensorboard]`, tensorboardX; no TensorFlow): one event
file per seed in `out_dir/tensorboard/<trial_id>/seed_<seed>/`, one event per
log point holding its scalars, written and flushed within `log` (so a running
trial can be watched); the config and the seed's summary go in as text
("config", "summary"). Watch it with `tensorboard --logdir out_dir/tensorboard`.

W&B (`esbench[wandb]`): offline only, nothing leaves the machine. One run per
(trial, seed) in `out_dir/wandb/offline-run-*/`, project "esbench",
group = trial id, name "<trial_id>-seed<seed>", config = the trial's config
plus "seed". W&B's step is env_steps, which must strictly grow from one log
point to the next (W&B drops, with a warning, a row whose step is not above the
last one's). Rows reach W&B's service at once and its `.wandb` file within
about a second (`wandb beta leet <dir>` shows a running run). The seed's summary goes into
the run summary and `finish` ends the run; `close` without `finish` ends it
as failed (exit code 1). Settings are passed to `wandb.init` (no prompts,
no stdout capture, no git/system probing or stats sampler); the one variable
read from the environment, WANDB_ERROR_REPORTING=false (the service's crash
reports), is set only around `wandb.init` and restored. Upload later with
`wandb sync out_dir/wandb/offline-run-*`.

In `finish`, a summary entry keyed by every seed ({"0": ..., "1": ...}, as
"final_eval_return" is) gives each seed's run its own value; every other entry
is copied whole.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import json
import math
import numbers
import os
import time
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from esbench.validation import ConfigError, suggest

LOGGERS = ("tensorboard", "wandb")
_PACKAGES = {"tensorboard": "tensorboardX", "wandb": "wandb"}  # the module each sink imports
_SKIP = ("seed", "log_point")
_WANDB_FLUSH_S = 1.0  # W&B writes its .wandb file this often (its default: 15 s)
_files = itertools.count()  # event file suffixes, unique in this process
_TAGS = {
    "train_return": "train/return",
    "eval_return_mean": "eval/return_mean",
    "eval_return_std": "eval/return_std",
    "throughput_sps": "perf/throughput_sps",
    "wall_clock_s": "perf/wall_clock_s",
    "env_steps": "progress/env_steps",
    "simulated_env_steps": "progress/simulated_env_steps",
    "update": "progress/update",
    "diverged": "progress/diverged",
}


class LiveLog(Protocol):
    def start(self, trial_id: str, config: dict) -> None: ...
    def log(self, rows: list[dict]) -> None: ...
    def finish(self, summary: dict) -> None: ...
    def close(self) -> None: ...


def make_live_logs(kinds: Sequence[str], out_dir: str | Path) -> list[LiveLog]:
    """One sink per kind (duplicates once); ConfigError for an unknown kind or a missing package."""
    logs: list[LiveLog] = []
    for kind in dict.fromkeys(kinds):
        if kind not in LOGGERS:
            raise ConfigError(
                f"--log {kind!r} is not a live logger; allowed: {', '.join(LOGGERS)}.{suggest(kind, LOGGERS)}"
            )
        try:
            module = importlib.import_module(_PACKAGES[kind])
        except ImportError as err:
            raise ConfigError(
                f"--log {kind} needs the {_PACKAGES[kind]} package ({err}); "
                f"install it with: pip install 'esbench[{kind}]'"
            ) from None
        logs.append(TensorBoardLog(out_dir, module) if kind == "tensorboard" else WandbLog(out_dir, module))
    return logs


def tag(field: str) -> str:
    """The scalar's name for a row field."""
    if field in _TAGS:
        return _TAGS[field]
    return f"metrics/{field[2:]}" if field.startswith("m_") else f"other/{field}"


def scalars(row: dict) -> dict[str, float]:
    """The row's finite numbers as {tag: float}, "seed" and "log_point" left out."""
    out = {}
    for field, value in row.items():
        if field in _SKIP:
            continue
        if isinstance(value, np.ndarray) and value.shape == ():
            value = value[()]
        if isinstance(value, (bool, np.bool_, numbers.Real)) and math.isfinite(value := float(value)):
            out[tag(field)] = value
    return out


def seed_summary(summary: dict, seeds: Sequence[int], seed: int) -> dict:
    """`summary` as seen by one seed: entries keyed by every seed give that seed's value."""
    keys = {str(s) for s in seeds}
    return {
        k: v[str(seed)] if isinstance(v, dict) and keys and {str(s) for s in v} == keys else v
        for k, v in summary.items()
    }


class _PerSeed:
    """One handle (event file writer, W&B run) per seed, opened on first use; shared by both sinks."""

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.trial_id: str | None = None
        self.config: dict = {}
        self.handles: dict[int, Any] = {}
        self.last_step: dict[int, int] = {}

    def start(self, trial_id: str, config: dict) -> None:
        self.close()
        self.trial_id, self.config = trial_id, dict(config)
        for seed in config.get("seeds", ()):
            self._handle(int(seed))

    def log(self, rows: list[dict]) -> None:
        touched = {}
        for row in rows:
            seed, step = int(row["seed"]), int(row["env_steps"])
            touched[seed] = handle = self._handle(seed)
            self._write(handle, scalars(row), step)
            self.last_step[seed] = step
        for handle in touched.values():
            self._flush(handle)

    def finish(self, summary: dict) -> None:
        seeds = self.config.get("seeds") or sorted(self.handles)
        for seed, handle in self.handles.items():
            self._summarise(handle, seed_summary(summary, seeds, seed), self.last_step.get(seed, 0))
        self._close_all(failed=False)

    def close(self) -> None:
        """End whatever is still open (a trial that stopped before `finish`); safe to call again."""
        self._close_all(failed=True)

    def _handle(self, seed: int):
        if self.trial_id is None:
            raise RuntimeError("live log: start(trial_id, config) must come before log()")
        if seed not in self.handles:
            self.handles[seed] = self._open(seed)
        return self.handles[seed]

    def _close_all(self, failed: bool) -> None:
        handles, self.handles = self.handles, {}
        self.last_step = {}
        with contextlib.ExitStack() as stack:  # ends every handle even if one raises
            for handle in handles.values():
                stack.callback(self._end, handle, failed)

    # The sink's part.
    def _open(self, seed: int): ...
    def _write(self, handle, values: dict[str, float], step: int) -> None: ...
    def _flush(self, handle) -> None: ...
    def _summarise(self, handle, summary: dict, step: int) -> None: ...
    def _end(self, handle, failed: bool) -> None: ...


def _as_text(value: dict) -> str:
    """JSON as a Markdown code block (TensorBoard's text tab renders Markdown)."""
    return "\n".join("    " + line for line in json.dumps(value, indent=2, default=str).splitlines())


class TensorBoardLog(_PerSeed):
    """Writes events synchronously (tensorboardX's EventsWriter): SummaryWriter.flush() does not wait for
    its queue, so a log point could sit in memory for up to `flush_secs`."""

    def __init__(self, out_dir: str | Path, tensorboardX):
        super().__init__(out_dir)
        self._tbx = tensorboardX
        for name in ("event_file_writer", "summary", "proto.event_pb2", "proto.summary_pb2"):
            importlib.import_module(f"tensorboardX.{name}")

    def _event(self, writer, summary, step: int) -> None:
        writer.write_event(self._tbx.proto.event_pb2.Event(wall_time=time.time(), step=step, summary=summary))

    def _open(self, seed: int):
        logdir = self.out_dir / "tensorboard" / self.trial_id / f"seed_{seed}"
        logdir.mkdir(parents=True, exist_ok=True)
        # The file name has the time to the second and the host: the suffix keeps two writers apart.
        writer = self._tbx.event_file_writer.EventsWriter(
            str(logdir / "events"), f".{os.getpid()}.{next(_files)}"
        )
        self._event(writer, self._tbx.summary.text("config", _as_text(self.config | {"seed": seed})), 0)
        return writer

    def _write(self, writer, values: dict[str, float], step: int) -> None:
        Summary = self._tbx.proto.summary_pb2.Summary
        self._event(
            writer, Summary(value=[Summary.Value(tag=k, simple_value=v) for k, v in values.items()]), step
        )

    def _flush(self, writer) -> None:
        writer.flush()

    def _summarise(self, writer, summary: dict, step: int) -> None:
        self._event(writer, self._tbx.summary.text("summary", _as_text(summary)), step)

    def _end(self, writer, failed: bool) -> None:
        writer.close()


@contextlib.contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the block only (those the user set are left as they are)."""
    added = [k for k in values if k not in os.environ]
    os.environ.update({k: values[k] for k in added})
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


class WandbLog(_PerSeed):
    def __init__(self, out_dir: str | Path, wandb):
        super().__init__(out_dir)
        self._wandb = wandb

    def _open(self, seed: int):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        settings = self._wandb.Settings(
            silent=True,
            console="off",
            disable_git=True,
            disable_code=True,
            save_code=False,
            disable_job_creation=True,
            x_disable_stats=True,
            x_disable_meta=True,
            x_disable_machine_info=True,
            x_save_requirements=False,
            x_transaction_log_flush_interval=_WANDB_FLUSH_S,
        )
        with _environ(WANDB_ERROR_REPORTING="false"):
            return self._wandb.init(
                mode="offline",
                dir=str(self.out_dir),
                project="esbench",
                group=self.trial_id,
                name=f"{self.trial_id}-seed{seed}",
                config=self.config | {"seed": seed},
                tags=[str(self.config[k]) for k in ("env", "algo") if k in self.config],
                reinit="create_new",
                settings=settings,
            )

    def _write(self, run, values: dict[str, float], step: int) -> None:
        run.log(values, step=step, commit=True)

    def _flush(self, run) -> None:
        pass  # commit=True hands each row to W&B's service at once; it is on disk within _WANDB_FLUSH_S

    def _summarise(self, run, summary: dict, step: int) -> None:
        run.summary.update(json.loads(json.dumps(summary, default=str)))

    def _end(self, run, failed: bool) -> None:
        run.finish(exit_code=1 if failed else 0)
