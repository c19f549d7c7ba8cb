"""Did each algorithm learn? Its final mean against the untrained policy's, beyond the noise (RULES['learned'])."""

from __future__ import annotations

import math

import pandas as pd

from esbench.algorithms import algorithm_label
from esbench.report.aggregate import valid_evals
from esbench.report.tables import fmt_number


def untrained_returns(rows: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Per (env, algo): the mean over the shown trial's seeds of the evaluation at env step 0 (its untrained policy)."""
    start = valid_evals(rows)
    start = start[start["env_steps"] == 0]
    return {key: float(v) for key, v in start.groupby(["env", "algo"])["eval_return_mean"].mean().items()}


def learning_check(rows: pd.DataFrame, summary: pd.DataFrame) -> dict:
    """Per (env, algo): final mean, its 95% half-width, the untrained mean, and whether the gap exceeds the half-width.

    rows: the shown trials' rows; summary: `aggregate.summarise_finals` of them.
    """
    untrained = untrained_returns(rows)
    cells = []
    for r in summary.itertuples():
        base = untrained.get((r.env, r.algo), math.nan)
        half = (r.ci_high - r.ci_low) / 2 if math.isfinite(r.ci_high) else math.nan
        gap = r.mean - base
        clear = bool(math.isfinite(gap) and math.isfinite(half) and gap > half)
        cells.append(
            {
                "env": r.env,
                "algo": r.algo,
                "final_mean": r.mean,
                "half_width": half,
                "untrained_mean": base,
                "gain": gap,
                "clear": clear,
            }
        )
    return {"cells": cells, "n": len(cells), "n_clear": sum(c["clear"] for c in cells)}


def learning_markdown(check: dict) -> str:
    lines = [
        f"{check['n_clear']} of {check['n']} (env, algorithm) final means are above the untrained policy by more "
        "than their 95% half-width.",
        "",
        "| environment | algorithm | untrained mean | final mean | gain | 95% half-width | clear |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    lines += [
        f"| {c['env']} | {algorithm_label(c['algo'])} | {fmt_number(c['untrained_mean'])} | "
        f"{fmt_number(c['final_mean'])} | {fmt_number(c['gain'])} | {fmt_number(c['half_width'])} | "
        f"{'yes' if c['clear'] else 'no'} |"
        for c in check["cells"]
    ]
    return "\n".join(lines) + "\n"
