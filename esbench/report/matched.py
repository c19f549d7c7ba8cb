"""The matched comparison: EGGROLL and OpenES at the same configuration and seeds (the protocol's matched stage).

Per env the protocol ran EGGROLL on OpenES's final configuration and OpenES on
EGGROLL's, on the final seeds, so each configuration has both algorithms on the
same seeds. The difference EGGROLL - OpenES is taken seed by seed and gets a
paired Student-t interval (RULES['matched']); unlike the tuned comparison
(Welch's test between two differently tuned winners) it answers whether the
low-rank update itself costs returns.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from esbench.algorithms import algorithm_label
from esbench.report.aggregate import env_order, t_interval
from esbench.report.rules import RULES
from esbench.report.tables import fmt_number

A, B = "eggroll", "openes"
VERDICTS = ("higher", "no difference detected", "lower")  # EGGROLL relative to OpenES


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict:
    """The paired 95% t-interval of a[s] - b[s] over the seeds both have finite, and its verdict (RULES['matched'])."""
    seeds = sorted(s for s in set(a) & set(b) if math.isfinite(a[s]) and math.isfinite(b[s]))
    diffs = np.array([a[s] - b[s] for s in seeds], dtype=float)
    mean, low, high = t_interval(diffs)
    if diffs.size < 2:
        verdict = "no difference detected"
        note = "fewer than 2 paired seeds: no interval"
    else:
        verdict = "higher" if low > 0 else "lower" if high < 0 else "no difference detected"
        note = ""
    return {
        "seeds": seeds,
        "differences": diffs.tolist(),
        "n": len(seeds),
        "mean": mean,
        "ci_low": low,
        "ci_high": high,
        "verdict": verdict,
        "note": note,
    }


def _per_seed(finals: pd.DataFrame, trial_id: str) -> dict[int, float]:
    rows = finals[finals["trial_id"] == trial_id]
    return {int(s): float(v) for s, v in zip(rows["seed"], rows["final_return"])}


def matched_comparison(finals: pd.DataFrame, protocol: dict | None) -> dict | None:
    """Per env and configuration, EGGROLL - OpenES (paired); None when the record has no matched stage.

    finals: `aggregate.final_returns` of every stage's rows; protocol: the protocol record.
    """
    entries = (protocol or {}).get("matched_trials") or []
    if not entries:
        return None
    stored = set(finals["trial_id"])
    per_env: dict[str, list] = {}
    for e in entries:
        eggroll, openes = (
            (e["trial_id"], e["partner_trial_id"])
            if e["algo"] == A
            else (e["partner_trial_id"], e["trial_id"])
        )
        if eggroll not in stored or openes not in stored:
            continue
        cell = paired_difference(_per_seed(finals, eggroll), _per_seed(finals, openes))
        per_env.setdefault(e["env"], []).append(
            {
                "configuration_of": e["point_of"],
                "eggroll_trial_id": eggroll,
                "openes_trial_id": openes,
                **cell,
            }
        )
    per_env = {env: per_env[env] for env in env_order(per_env)}
    cells = [c for cs in per_env.values() for c in cs]
    counts = {v: sum(c["verdict"] == v for c in cells) for v in VERDICTS}
    return {
        "a": A,
        "b": B,
        "interval": "paired 95% Student-t",
        "per_env": per_env,
        "counts": counts,
        "n": len(cells),
    }


def matched_line(matched: dict) -> str:
    a, b = algorithm_label(matched["a"]), algorithm_label(matched["b"])
    head = f"Matched: {a} - {b} at the same configuration and seeds ({matched['interval']} interval)"
    if not matched["n"]:
        return f"{head}: no configuration has final returns for both."
    c = matched["counts"]
    return (
        f"{head}: {a} higher at {c['higher']}, no difference detected at {c['no difference detected']}, "
        f"lower at {c['lower']} of {matched['n']} (env, configuration) comparisons."
    )


def matched_markdown(matched: dict | None) -> str:
    if matched is None:
        return (
            "Not run: the protocol's `matched: true` runs EGGROLL and OpenES at each other's winning "
            "configuration.\n"
        )
    a, b = algorithm_label(matched["a"]), algorithm_label(matched["b"])
    lines = [
        matched_line(matched),
        "",
        f"Rule: {RULES['matched']}",
        "",
        f"| environment | configuration of | {a} - {b} (mean) | 95% interval | seeds | verdict ({a}) | note |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for env, cells in matched["per_env"].items():
        for c in cells:
            interval = f"[{fmt_number(c['ci_low'])}, {fmt_number(c['ci_high'])}]"
            lines.append(
                f"| {env} | {algorithm_label(c['configuration_of'])} | {fmt_number(c['mean'])} | {interval} "
                f"| {c['n']} | {c['verdict']} | {c['note']} |"
            )
    return "\n".join(lines) + "\n"
