"""The results store: one folder per sweep, one sub-folder per finished trial.

    OUT/trials/<trial_id>/config.json      resolved trial config
    OUT/trials/<trial_id>/metrics.parquet  one row per seed x log point
    OUT/trials/<trial_id>/summary.json     status, final returns, timings, device, versions
    OUT/trials/<trial_id>/policy.msgpack   final policy params of every seed (leading seed axis)

    OUT/failed/<trial_id>.json             a trial that could not run (kind "memory": its program cannot fit
                                           the device at any split), the one-line reason; removed once it runs

A trial folder is written under a temporary name and renamed into place, so a
folder named by a trial id is always complete; a killed run leaves at most a
`.tmp-*` folder, which `load` reports and the next run replaces. A folder that a
disk or a hand damaged afterwards (a truncated file) is left out of every load with
one line naming the trial and the file (`damaged_trials` lists them); nothing in
the folder is changed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator, Sequence

import pandas as pd
from filelock import FileLock, Timeout
from flax import serialization

from esbench.results.schema import METRIC_COLUMNS, TRIAL_COLUMNS, TrialResult, check_metrics

TRIALS_DIR = "trials"
TMP_PREFIX = ".tmp-"
LOCKS_DIR = ".locks"  # one lock file per trial being run, so two processes never run the same trial
FILES = ("config.json", "metrics.parquet", "summary.json", "policy.msgpack")
PROTOCOL_FILE = "protocol.json"
FAILED_DIR = "failed"
# lines about a folder's state, said once per process (load and load_summaries both read it)
_said: set[str] = set()


def _say_once(line: str) -> None:
    if line not in _said:
        _said.add(line)
        print(f"esbench: {line}", file=sys.stderr, flush=True)


class CorruptResultsError(RuntimeError):
    """A trial folder that is missing files or cannot be read."""


class ResultStore:
    """The sink a sweep writes into: which trials are finished, and writing a new one."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out_dir = Path(out_dir)

    def is_finished(self, trial_id: str) -> bool:
        return is_finished(self.out_dir, trial_id)

    def write(self, result: TrialResult) -> Path:
        return write_trial(self.out_dir, result)

    @contextlib.contextmanager
    def claim(self, trial_ids: Sequence[str]) -> Iterator[list[str]]:
        """Hold the run locks of the trials no other process holds; yields their ids (the others are busy).

        The locks are OS file locks (filelock), released when the block ends or the process dies, so a
        killed sweep leaves no stale claim behind.
        """
        folder = trials_dir(self.out_dir) / LOCKS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        held = []
        with contextlib.ExitStack() as stack:
            for trial_id in trial_ids:
                lock = FileLock(folder / f"{trial_id}.lock")
                try:
                    lock.acquire(timeout=0)
                except Timeout:
                    continue
                stack.callback(lock.release)
                held.append(trial_id)
            yield held


def trials_dir(out_dir: str | os.PathLike) -> Path:
    return Path(out_dir) / TRIALS_DIR


def trial_path(out_dir: str | os.PathLike, trial_id: str) -> Path:
    return trials_dir(out_dir) / trial_id


def is_finished(out_dir: str | os.PathLike, trial_id: str) -> bool:
    path = trial_path(out_dir, trial_id)
    return all((path / name).is_file() for name in FILES)


def count_finished(out_dir: str | os.PathLike) -> int:
    """How many finished trials the folder holds (0 if it has none yet)."""
    root = trials_dir(out_dir)
    if not root.is_dir():
        return 0
    return sum(is_finished(out_dir, p.name) for p in root.iterdir() if not p.name.startswith("."))


def write_folder(final: Path, fill: Callable[[Path], None], tmp_prefix: str = TMP_PREFIX) -> Path:
    """Make folder `final` atomically: `fill(tmp)` writes a temp folder beside it, then one rename.

    A folder already at `final` is moved aside first and removed after, so one whole copy always exists.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{tmp_prefix}{final.name}-", dir=final.parent))
    try:
        fill(tmp)
        old = None
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f"{tmp_prefix}old-{final.name}-", dir=final.parent))
            os.rename(final, old / final.name)
        try:
            os.rename(tmp, final)
        except BaseException:
            if old is not None:  # put the previous copy back: a failed swap must not lose it
                os.rename(old / final.name, final)
                shutil.rmtree(old, ignore_errors=True)
            raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Write file `path` atomically: the block writes the yielded temp path, renamed onto `path` after.

    A failed write (a full disk) leaves `path` as it was, whole or absent, and no temp file. The temp
    file lies in a private folder beside `path` (same file system, so the rename is atomic), and gets
    the usual permissions, which a `mkstemp` file (0600) would not.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{path.name}-", dir=path.parent))
    try:
        yield folder / path.name
        os.replace(folder / path.name, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def write_trial(out_dir: str | os.PathLike, result: TrialResult) -> Path:
    """Write a trial atomically: all files into a temp folder, then one rename."""
    check_metrics(result.metrics)

    def fill(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(result.config, indent=2, sort_keys=True))
        result.metrics.to_parquet(tmp / "metrics.parquet", index=False)
        (tmp / "summary.json").write_text(json.dumps(result.summary, indent=2, sort_keys=True, default=float))
        (tmp / "policy.msgpack").write_bytes(result.policy_bytes)

    path = write_folder(trials_dir(out_dir) / result.config["trial_id"], fill)
    failure_path(out_dir, result.config["trial_id"]).unlink(missing_ok=True)  # it ran after all
    return path


def failure_path(out_dir: str | os.PathLike, trial_id: str) -> Path:
    return Path(out_dir) / FAILED_DIR / f"{trial_id}.json"


def write_failure(out_dir: str | os.PathLike, config: dict, kind: str, reason: str) -> Path:
    """Record, atomically, that a trial could not run: its config, the kind of failure and the one-line reason."""
    path = failure_path(out_dir, config["trial_id"])
    record = {
        "trial_id": config["trial_id"],
        "kind": kind,
        "reason": reason,
        "config": config,
        "time": time.time(),
    }
    with atomic_file(path) as tmp:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    return path


def read_failure(out_dir: str | os.PathLike, trial_id: str) -> dict | None:
    """The failure record of a trial that could not run (None: none, or unreadable)."""
    path = failure_path(out_dir, trial_id)
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        _say_once(f"cannot read the failure record {path}; treating the trial as not yet run")
        return None


def load_failures(out_dir: str | os.PathLike) -> dict[str, dict]:
    """Every trial of `out_dir` that could not run: trial id -> its failure record."""
    folder = Path(out_dir) / FAILED_DIR
    if not folder.is_dir():
        return {}
    records = (read_failure(out_dir, p.stem) for p in sorted(folder.glob("*.json")))
    return {r["trial_id"]: r for r in records if r is not None}


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not text at all (UnicodeDecodeError)
        raise CorruptResultsError(f"cannot read {path}: {err}") from err


def read_trial(path: str | os.PathLike) -> tuple[dict, pd.DataFrame, dict]:
    """(config, metrics, summary) of one trial folder; CorruptResultsError if incomplete."""
    path = Path(path)
    missing = [name for name in FILES if not (path / name).is_file()]
    if missing:
        raise CorruptResultsError(f"trial folder {path} is incomplete: missing {', '.join(missing)}")
    config = read_json(path / "config.json")
    summary = read_json(path / "summary.json")
    try:
        metrics = pd.read_parquet(path / "metrics.parquet")
    except Exception as err:  # pyarrow raises several types for damaged files
        raise CorruptResultsError(f"cannot read {path / 'metrics.parquet'}: {err}") from err
    return config, metrics, summary


def _trial_folders(out_dir: str | os.PathLike, strict: bool) -> list[Path]:
    root = trials_dir(out_dir)
    if not root.is_dir():
        raise FileNotFoundError(
            f"no results in {out_dir}: expected a folder {root} (written by `esbench run` or `esbench sweep`)"
        )
    folders = []
    for path in sorted(root.iterdir()):
        if not path.is_dir() or path.name == LOCKS_DIR:
            continue
        if path.name.startswith(TMP_PREFIX):
            msg = f"ignoring unfinished trial folder {path} (a run was interrupted while writing it)"
            if strict:
                raise CorruptResultsError(msg)
            _say_once(msg)
            continue
        folders.append(path)
    return folders


def _scan(
    out_dir: str | os.PathLike, strict: bool
) -> tuple[list[tuple[dict, pd.DataFrame, dict]], dict[str, str]]:
    """(config, metrics, summary) of every readable trial, and {trial folder: why not} of the others."""
    readable, damaged = [], {}
    for path in _trial_folders(out_dir, strict):
        try:
            readable.append(read_trial(path))
        except CorruptResultsError as err:
            if strict:
                raise
            damaged[path.name] = str(err)
    return readable, damaged


def _readable_trials(out_dir: str | os.PathLike, strict: bool):
    """(config, metrics, summary) of every complete trial; each other one left out with one line, or raised if
    strict."""
    readable, damaged = _scan(out_dir, strict)
    for trial_id, why in damaged.items():
        _say_once(f"left out trial {trial_id}: {why}")
    return readable


def damaged_trials(out_dir: str | os.PathLike) -> dict[str, str]:
    """Trial folders of `out_dir` that cannot be read (missing or damaged files): folder name -> why."""
    return _scan(out_dir, strict=False)[1]


def _trial_fields(config: dict) -> dict:
    return {
        "trial_id": config["trial_id"],
        "env": config["env"],
        "algo": config["algo"],
        "stage": config.get("stage", "sweep"),
    }


def load(out_dir: str | os.PathLike, strict: bool = False) -> pd.DataFrame:
    """One DataFrame over every trial in `out_dir`: a row per trial x seed x log point.

    Columns: trial_id, env, algo, stage, then the metric columns of
    `esbench.results.schema`. Incomplete or unreadable trial folders are
    left out with one line each on stderr (or raise, with `strict=True`), never
    silently read.
    """
    frames = []
    for config, metrics, _ in _readable_trials(out_dir, strict):
        fields = _trial_fields(config)
        frames.append(
            pd.concat([pd.DataFrame({k: [v] * len(metrics) for k, v in fields.items()}), metrics], axis=1)
        )
    if not frames:
        return pd.DataFrame(columns=[*TRIAL_COLUMNS, *METRIC_COLUMNS])
    return pd.concat(frames, ignore_index=True)


def load_summaries(out_dir: str | os.PathLike, strict: bool = False) -> pd.DataFrame:
    """One row per trial: trial_id, env, algo, stage, hparams, seeds, then its summary (status, timings, device)."""
    return pd.DataFrame(
        [
            {**_trial_fields(config), "hparams": config["hparams"], "seeds": config["seeds"], **summary}
            for config, _, summary in _readable_trials(out_dir, strict)
        ]
    )


def load_configs(out_dir: str | os.PathLike, strict: bool = False) -> list[dict]:
    """The resolved config (config.json) of every trial in `out_dir`."""
    return [config for config, _, _ in _readable_trials(out_dir, strict)]


def load_protocol(out_dir: str | os.PathLike) -> dict | None:
    """The record `esbench reproduce` keeps of its stages (sampler, seeds, selection), or None."""
    path = Path(out_dir) / PROTOCOL_FILE
    return read_json(path) if path.is_file() else None


def load_policy_params(out_dir: str | os.PathLike, trial_id: str) -> dict:
    """The raw state dict of the final policy params of every seed (leading seed axis)."""
    path = trial_path(out_dir, trial_id) / "policy.msgpack"
    if not path.is_file():
        raise CorruptResultsError(f"no saved policy at {path}")
    return serialization.msgpack_restore(path.read_bytes())
