"""`esbench bench`: throughput benchmarks, one kind per entry of `KINDS` (see benchmarks/README.md).

    forward   one generation's population forward pass and update: pure inference,
              EGGROLL (r = 1, 4, 16) and OpenES, over population sizes and layer widths
    training  env steps/s of one `update` of every registered algorithm, run by the runner's programs
    early_exit        one ES training run with and without early exit: `early_exit_speedup` per env and algorithm
    vectorized_sweep  a sigma x learning-rate grid as one program and one by one: `vectorized_sweep_speedup`

    s = settings("training", "quick", scale="1/8", envs=None)   # validated; None: the mode's value
    outcome = run(["training"], "quick", "benchmarks/results", training=s)
    outcome.payloads["training"], outcome.paths, outcome.failed

Modes: "quick" (the settings' defaults) finishes on a 2-core CPU in minutes;
"full" is for a GPU. `run` writes <out>/<kind>_<mode>_<platform>.json per
kind (and the kind's other files: forward's .png).

A new kind of benchmark is one measuring function, `(settings, progress) ->
{"records": [...], ...}` beside its settings dataclass, and one entry in
`KINDS`: `settings`, `run`, the JSON's provenance, the CLI's `--only` choices
and the printed tables follow from the entry.
"""

from __future__ import annotations

import dataclasses
import os
import time
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from esbench.bench import early_exit, forward, report, training, vectorized_sweep
from esbench.envs import resolve
from esbench.provenance import device_info, package_versions
from esbench.validation import build, invalid

MODES = ("quick", "full")


@dataclasses.dataclass(frozen=True)
class Kind:
    """A benchmark kind: its settings, how it measures, how it is shown."""

    # frozen dataclass, fields with `esbench.validation` rules, defaults = the quick mode, validate(owner)
    settings: type
    full: dict  # the full mode's values, where they differ from the defaults
    measure: Callable[
        ..., dict
    ]  # (settings, progress) -> {"records": [dicts with a "status"], other payload keys}
    table: Callable  # payload -> rich Table
    files: Optional[Callable[[dict, Path], dict]] = (
        None  # (payload, path stem) -> {name: path}: files beside the JSON
    )


KINDS: dict[str, Kind] = {
    "forward": Kind(
        forward.ForwardSettings, forward.FULL, forward.measure, report.forward_table, report.forward_files
    ),
    "training": Kind(training.TrainingSettings, training.FULL, training.measure, report.training_table),
    "early_exit": Kind(
        early_exit.EarlyExitSettings, early_exit.FULL, early_exit.measure, report.early_exit_table
    ),
    "vectorized_sweep": Kind(
        vectorized_sweep.VectorizedSweepSettings,
        vectorized_sweep.FULL,
        vectorized_sweep.measure,
        report.vectorized_sweep_table,
    ),
}


@dataclasses.dataclass
class Outcome:
    """What `run` did: the caller prints the tables and chooses the exit code."""

    payloads: dict[str, dict]  # kind -> what its JSON holds
    paths: dict[str, Path]  # "forward_json", "forward_plot", "training_json", ...
    failed: int  # configurations recorded as failed (the others still ran)


def _kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise invalid("bench", "benchmark", kind, ", ".join(KINDS))
    return KINDS[kind]


def _number(value: Any) -> Any:
    """A string that spells a number or fraction ('1/16', '0.25') as that number; anything else unchanged."""
    if isinstance(value, str):
        try:
            return float(Fraction(value))
        except (ValueError, ZeroDivisionError):
            pass
    return value


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise invalid("bench", "mode", mode, ", ".join(MODES))


def settings(kind: str, mode: str, **overrides):
    """`kind`'s settings in `mode`, `overrides` applied (None: the mode's value); ConfigError naming a bad one."""
    entry = _kind(kind)
    _check_mode(mode)
    given = {name: _number(value) for name, value in overrides.items() if value is not None}
    return build(entry.settings, {**(entry.full if mode == "full" else {}), **given}, f"bench.{kind}")


def load_average() -> Optional[list[float]]:
    """The host's 1, 5 and 15 minute load averages: how busy a shared machine was around a run."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def payload(kind: str, mode: str, chosen, progress: Optional[Callable[[str], Any]] = None) -> dict:
    """Run one kind and wrap its measurements with their provenance: the payload its JSON holds."""
    started, load_start = time.perf_counter(), load_average()
    measured = KINDS[kind].measure(chosen, progress)
    suites = sorted({resolve(env_id).suite for env_id in getattr(chosen, "envs", ())})
    return {
        "schema_version": report.SCHEMA_VERSION,
        "benchmark": kind,
        "mode": mode,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_info(),
        "packages": package_versions(suites),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "wall_s": time.perf_counter() - started,
        "settings": dataclasses.asdict(chosen),
        **measured,
    }


def run(
    benchmarks: Iterable[str], mode: str, out, progress: Optional[Callable[[str], Any]] = None, **given
) -> Outcome:
    """Run `benchmarks` (names in KINDS) and write their files into `out`.

    `given`: settings per kind by name (forward=..., training=...); a kind
    without gets `settings(kind, mode)`. Every kind's settings are validated
    before anything runs or is written. A failed configuration is a record
    with status "failed" (counted in `failed`); the others still run.
    """
    benchmarks = list(benchmarks)
    _check_mode(mode)
    for kind in [*benchmarks, *given]:
        _kind(kind)
    chosen = {kind: given[kind] if kind in given else settings(kind, mode) for kind in benchmarks}
    for kind, value in chosen.items():
        if not isinstance(value, KINDS[kind].settings):
            raise TypeError(
                f"bench.{kind}: expected {KINDS[kind].settings.__name__}, got {type(value).__name__}"
            )
        value.validate(f"bench.{kind}")
    outcome = Outcome({}, {}, 0)
    for kind, value in chosen.items():
        written = payload(kind, mode, value, progress)
        stem = Path(out) / f"{kind}_{mode}_{written['device']['platform']}"
        outcome.payloads[kind] = written
        outcome.paths[f"{kind}_json"] = report.write_json(Path(f"{stem}.json"), written)
        if KINDS[kind].files:
            outcome.paths.update(KINDS[kind].files(written, stem))
        outcome.failed += sum(r["status"] == "failed" for r in written["records"])
    return outcome
