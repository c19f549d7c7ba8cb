"""Two results folders side by side (`esbench compare A B`): a rerun against a reference, two machines, two
code versions.

Trials are matched on their config (env, algorithm, stage, every hyperparameter, budget and
logging cadence; not the trial id, seeds or protocol version, which code versions and reruns
may change). Per matched pair: both final means over seeds, the difference B - A with Welch's
interval (`comparison.welch_interval`) and a verdict:

    bit-identical   the same trial id and equal metrics in every column but the timing ones
    same            0 lies within the interval
    differs         it does not
    untested        fewer than 2 finite final returns on a side: no interval

Trials of an (env, algorithm, stage) present in both folders whose configs differ are listed
with the fields that differ, not compared; trials whose (env, algorithm, stage) only one folder
has are counted. Each folder's device layouts are listed (the devices, the mesh, what was sharded,
whether --deterministic was on: summary.json's `layout` and `deterministic`); a pair whose two
trials ran on different layouts is marked, since there "bit-identical" is not expected, only
"same" (docs/determinism.md). A trial folder that cannot be read (a truncated file) is listed as
damaged, with the file and why; `--fail-on-differ` fails on it as on a pair that differs. Folders of
different sweeps say so and compare what matches.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from esbench.report.aggregate import final_returns
from esbench.report.comparison import welch_interval
from esbench.results import damaged_trials, load, load_configs, load_summaries
from esbench.results.schema import TIMING_COLUMNS, TRIAL_COLUMNS

VERDICTS = ("bit-identical", "same", "differs", "untested")
# Config entries that may change between two runs of the same experiment.
UNMATCHED_FIELDS = ("trial_id", "seeds", "protocol_version")
KEY = ("env", "algo", "stage")


class NoTrialsError(ValueError):
    """A folder named for comparison holds no finished trial."""


@dataclass
class Comparison:
    a: str
    b: str
    confidence: float
    rows: list[dict] = field(default_factory=list)  # one per matched trial pair
    differing: list[dict] = field(default_factory=list)  # same (env, algo, stage), other config
    only_a: list[dict] = field(default_factory=list)  # (env, algo, stage) of trials B lacks
    only_b: list[dict] = field(default_factory=list)
    damaged: list[dict] = field(default_factory=list)  # {"side": "A" | "B", "trial_id", "reason"}
    layouts: dict = field(default_factory=dict)  # "A" | "B" -> [{"layout", "deterministic", "trials"}]

    @property
    def same_sweep(self) -> bool:
        return not (self.differing or self.only_a or self.only_b or self.damaged)

    def counts(self) -> dict[str, int]:
        return {v: sum(r["verdict"] == v for r in self.rows) for v in VERDICTS}

    def any_differ(self) -> bool:
        """A pair differs, or a trial folder is damaged (what it held cannot be compared)."""
        return bool(self.damaged) or any(r["verdict"] == "differs" for r in self.rows)

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "confidence": self.confidence,
            "same_sweep": self.same_sweep,
            "counts": self.counts(),
            "rows": self.rows,
            "differing_configs": self.differing,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "damaged": self.damaged,
            "layouts": self.layouts,
        }


def _config_key(config: dict) -> str:
    return json.dumps({k: v for k, v in config.items() if k not in UNMATCHED_FIELDS}, sort_keys=True)


def _trials(folder: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics of every trial, one row per trial: trial_id, env, algo, stage, config, match); NoTrialsError if none."""
    df = load(folder)
    if df.empty:
        raise NoTrialsError(f"no finished trials in {folder}: nothing to compare")
    trials = pd.DataFrame(
        [
            {
                "trial_id": c["trial_id"],
                "env": c["env"],
                "algo": c["algo"],
                "stage": c.get("stage", "sweep"),
                "config": c,
                "match": _config_key(c),
            }
            for c in load_configs(folder)
        ]
    )
    return df, trials


def _layouts(folder) -> dict[str, dict]:
    """trial_id -> {"layout", "deterministic"} from each summary (None where a summary predates them)."""
    summaries = load_summaries(folder)
    if summaries.empty:
        return {}
    return {
        row["trial_id"]: {
            "layout": row.get("layout") if isinstance(row.get("layout"), dict) else None,
            "deterministic": row.get("deterministic") if isinstance(row.get("deterministic"), bool) else None,
        }
        for row in summaries.to_dict("records")
    }


def _layout_counts(layouts: dict[str, dict]) -> list[dict]:
    """The distinct (layout, deterministic) of a folder's trials, each with its number of trials."""
    counts: dict[str, dict] = {}
    for entry in layouts.values():
        key = json.dumps(entry, sort_keys=True)
        counts.setdefault(key, {**entry, "trials": 0})["trials"] += 1
    return sorted(counts.values(), key=lambda e: -e["trials"])


def layout_text(layout: dict | None) -> str:
    """One device layout in words: '8 x cpu, mesh batch=8, seeds over batch'."""
    if layout is None:
        return "not recorded"
    mesh = ", mesh " + " x ".join(f"{a}={n}" for a, n in zip(layout["mesh_axes"], layout["mesh_shape"]))
    sharded = ", ".join(f"{what} over {axis}" for what, axis in layout["sharded"].items())
    return (
        f"{layout['device_count']} x {layout['device_kind']}"
        + (mesh if layout["mesh_axes"] else "")
        + f", {sharded or 'nothing sharded'}"
    )


def _metrics_equal(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Equal in every non-timing column (NaN equal to NaN), rows in (seed, log point) order."""
    columns = [c for c in a.columns if c not in TIMING_COLUMNS and c not in TRIAL_COLUMNS]
    if sorted(columns) != sorted(c for c in b.columns if c not in TIMING_COLUMNS and c not in TRIAL_COLUMNS):
        return False
    order = ["seed", "log_point"]
    a = a.sort_values(order)[columns].reset_index(drop=True)
    b = b.sort_values(order)[columns].reset_index(drop=True)
    return a.shape == b.shape and a.equals(b)


def _finite(values: pd.Series) -> np.ndarray:
    x = values.to_numpy(dtype=float)
    return x[np.isfinite(x)]


def _pair_row(
    trial_a: pd.Series, trial_b: pd.Series, df_a, df_b, finals_a, finals_b, confidence: float, layouts
) -> dict:
    x = _finite(finals_a.loc[finals_a["trial_id"] == trial_a.trial_id, "final_return"])
    y = _finite(finals_b.loc[finals_b["trial_id"] == trial_b.trial_id, "final_return"])
    interval = welch_interval(y, x, confidence)  # of B - A
    identical = trial_a.trial_id == trial_b.trial_id and _metrics_equal(
        df_a[df_a["trial_id"] == trial_a.trial_id], df_b[df_b["trial_id"] == trial_b.trial_id]
    )
    if identical:
        verdict = "bit-identical"
    elif interval is None:
        verdict = "untested"
    else:
        verdict = "same" if interval[0] <= 0 <= interval[1] else "differs"
    mean = lambda v: float(v.mean()) if v.size else None  # noqa: E731
    return {
        "env": trial_a.env,
        "algo": trial_a.algo,
        "stage": trial_a.stage,
        "trial_id_a": trial_a.trial_id,
        "trial_id_b": trial_b.trial_id,
        "seeds_a": int(x.size),
        "seeds_b": int(y.size),
        "mean_a": mean(x),
        "mean_b": mean(y),
        "difference": (mean(y) - mean(x)) if x.size and y.size else None,
        "interval": list(interval) if interval is not None else None,
        "verdict": verdict,
        "layouts_differ": _layout_of(layouts["A"], trial_a) != _layout_of(layouts["B"], trial_b),
    }


def _layout_of(layouts: dict[str, dict], trial) -> dict | None:
    return layouts.get(trial.trial_id, {}).get("layout")


def _differing_fields(a: dict, b: dict) -> list[str]:
    """Dotted names of the config entries (hparams included) in which `a` and `b` differ."""
    out = []
    for name in sorted(set(a) | set(b)):
        if name in UNMATCHED_FIELDS:
            continue
        va, vb = a.get(name), b.get(name)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += [f"{name}.{sub}" for sub in _differing_fields(va, vb)]
        elif va != vb:
            out.append(name)
    return out


def compare_folders(a: str | os.PathLike, b: str | os.PathLike, confidence: float = 0.95) -> Comparison:
    """Every trial of `a` against its match in `b` (the module doc)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    df_a, trials_a = _trials(a)
    df_b, trials_b = _trials(b)
    finals_a, finals_b = final_returns(df_a), final_returns(df_b)
    out = Comparison(os.fspath(a), os.fspath(b), confidence)
    layouts = {"A": _layouts(a), "B": _layouts(b)}
    out.layouts = {side: _layout_counts(by_trial) for side, by_trial in layouts.items()}
    for side, folder in (("A", a), ("B", b)):
        out.damaged += [
            {"side": side, "trial_id": t, "reason": why} for t, why in damaged_trials(folder).items()
        ]
    keys_a = set(map(tuple, trials_a[list(KEY)].to_numpy()))
    keys_b = set(map(tuple, trials_b[list(KEY)].to_numpy()))
    for key in sorted(keys_a | keys_b):
        in_a = trials_a[(trials_a[list(KEY)] == key).all(axis=1)]
        in_b = trials_b[(trials_b[list(KEY)] == key).all(axis=1)]
        named = dict(zip(KEY, key))
        if in_b.empty:
            out.only_a += [{**named, "trial_id": t} for t in in_a["trial_id"]]
            continue
        if in_a.empty:
            out.only_b += [{**named, "trial_id": t} for t in in_b["trial_id"]]
            continue
        unmatched_b = dict(zip(in_b["match"], in_b.itertuples()))
        leftover_a = []
        for trial_a in in_a.itertuples():
            trial_b = unmatched_b.pop(trial_a.match, None)
            if trial_b is None:
                leftover_a.append(trial_a)
            else:
                out.rows.append(
                    _pair_row(trial_a, trial_b, df_a, df_b, finals_a, finals_b, confidence, layouts)
                )
        for trial_a, trial_b in zip(leftover_a, unmatched_b.values()):
            out.differing.append(
                {
                    **named,
                    "trial_id_a": trial_a.trial_id,
                    "trial_id_b": trial_b.trial_id,
                    "fields": _differing_fields(trial_a.config, trial_b.config),
                }
            )
        extra_a, extra_b = leftover_a[len(unmatched_b) :], list(unmatched_b.values())[len(leftover_a) :]
        out.only_a += [{**named, "trial_id": t.trial_id} for t in extra_a]
        out.only_b += [{**named, "trial_id": t.trial_id} for t in extra_b]
    # a trial the other folder holds damaged is not missing there: it is listed once, as damaged
    damaged = {(d["side"], d["trial_id"]) for d in out.damaged}
    out.only_a = [t for t in out.only_a if ("B", t["trial_id"]) not in damaged]
    out.only_b = [t for t in out.only_b if ("A", t["trial_id"]) not in damaged]
    return out


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def comparison_text(cmp: Comparison) -> str:
    """What `esbench compare` prints: a line per matched pair, then what was not compared."""
    level = f"{cmp.confidence:.0%}"
    lines = [f"A = {cmp.a}", f"B = {cmp.b}"]
    for side in ("A", "B"):
        for entry in cmp.layouts.get(side, []):
            switch = {True: "on", False: "off", None: "not recorded"}[entry["deterministic"]]
            lines.append(
                f"layout {side}: {layout_text(entry['layout'])}; --deterministic {switch} "
                f"({entry['trials']} trial(s))"
            )
    if not cmp.same_sweep:
        lines.append(
            f"note: the folders hold different sweeps ({len(cmp.differing)} trial(s) with differing configs, "
            f"{len(cmp.only_a)} only in A, {len(cmp.only_b)} only in B); comparing the {len(cmp.rows)} that match"
        )
    header = ("env", "algo", "stage", "mean A (seeds)", "mean B (seeds)", f"B - A [{level} Welch]", "verdict")
    table = [header]
    for r in cmp.rows:
        interval = "" if r["interval"] is None else f" [{_fmt(r['interval'][0])}, {_fmt(r['interval'][1])}]"
        table.append(
            (
                r["env"],
                r["algo"],
                r["stage"],
                f"{_fmt(r['mean_a'])} ({r['seeds_a']})",
                f"{_fmt(r['mean_b'])} ({r['seeds_b']})",
                f"{_fmt(r['difference'])}{interval}",
                r["verdict"] + ("*" if r["layouts_differ"] else ""),
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    lines += ["", *("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table)]
    counts = cmp.counts()
    across = sum(r["layouts_differ"] for r in cmp.rows)
    if across:
        lines += [
            "",
            f"* {across} pair(s) ran on different device layouts: there bit-identical is not expected, "
            "only same (docs/determinism.md)",
        ]
    lines += ["", f"{len(cmp.rows)} compared: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS)]
    if cmp.damaged:
        lines.append(f"{len(cmp.damaged)} damaged trial folder(s), not compared (listed below)")
    for d in cmp.differing:
        lines.append(
            f"not compared (configs differ in {', '.join(d['fields']) or 'nothing'}): {d['env']} {d['algo']} "
            f"{d['stage']}: {d['trial_id_a']} (A) vs {d['trial_id_b']} (B)"
        )
    for side, trials in (("A", cmp.only_a), ("B", cmp.only_b)):
        for t in trials:
            lines.append(f"only in {side}: {t['env']} {t['algo']} {t['stage']} {t['trial_id']}")
    for d in cmp.damaged:
        lines.append(f"damaged in {d['side']}: {d['trial_id']}: {d['reason']}")
    return "\n".join(lines) + "\n"
