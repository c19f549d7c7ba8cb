"""EGGROLL against OpenES the way the paper compares them, with the paper's numbers beside ours.

Returns: a Welch's t-test per environment on the per-seed final returns
(RULES['head_to_head']), counted as the paper counts (outperforms /
competitive / underperforms). Speed: training time per environment and the
ratio written as Figure 15 writes it (RULES['training_time']).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.stats

from esbench import paper
from esbench.algorithms import algorithm_label
from esbench.report.aggregate import env_order
from esbench.report.rules import RULES
from esbench.report.tables import MISSING_MD, fmt_number
from esbench.report.verdicts import welch_se_dof
from esbench.validation import ConfigError

A, B = "eggroll", "openes"
OUTCOMES = ("outperforms", "competitive", "underperforms")
# The paper's own counts (summary.json: eggroll_vs_openes.paper) come from its 16 envs, budgets and seeds, and
# from a test it does not state: never set beside ours as if the two were comparable.
PAPER_NOT_COMPARABLE = (
    "not comparable with the paper's counts (other environments, budgets and seeds; a test it does not state)"
)


# --------------------------------------------------------------- returns ----


def welch_outcome(x, y, alpha: float) -> dict:
    """Outcome of sample `x` against sample `y` (rule: RULES['head_to_head']), with t, p and what decided it."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out = {"n_a": int(x.size), "n_b": int(y.size), "mean_a": float(x.mean()), "mean_b": float(y.mean())}
    if x.size < 2 or y.size < 2:
        return {
            **out,
            "t": None,
            "p_value": None,
            "outcome": "competitive",
            "note": "fewer than 2 seeds: no test",
        }
    sx, sy = x.std(ddof=1), y.std(ddof=1)
    if sx == 0 and sy == 0:
        # Welch's statistic is 0/0 or d/0 here: decided explicitly
        diff = x[0] - y[0]
        t, p = (0.0, 1.0) if diff == 0 else (math.copysign(math.inf, diff), 0.0)
        note = "both constant" + (", equal" if diff == 0 else ", different")
    else:
        # = ttest_ind(x, y, equal_var=False), without its precision warning when one side is constant (all 500s)
        res = scipy.stats.ttest_ind_from_stats(x.mean(), sx, x.size, y.mean(), sy, y.size, equal_var=False)
        t, p, note = float(res.statistic), float(res.pvalue), ""
    if p < alpha:
        outcome = "outperforms" if out["mean_a"] > out["mean_b"] else "underperforms"
    else:
        outcome = "competitive"
    return {**out, "t": t, "p_value": p, "outcome": outcome, "note": note}


def welch_interval(x, y, confidence: float = 0.95) -> tuple[float, float] | None:
    """Welch's `confidence` interval for mean(x) - mean(y), or None with fewer than 2 samples on a side.

    Both sides constant: the interval is the difference itself (no spread to widen it), as
    `welch_outcome` decides that case.
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 2 or y.size < 2:
        return None
    diff = float(x.mean() - y.mean())
    se, dof = welch_se_dof(x, y)
    if se == 0:
        return diff, diff
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, dof) * se)
    return diff - half, diff + half


def check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}")


def head_to_head(finals: pd.DataFrame, alpha: float = 0.05) -> dict:
    """EGGROLL vs OpenES per environment where both have final returns, counted, beside the paper's counts."""
    check_alpha(alpha)
    f = finals[np.isfinite(finals["final_return"].to_numpy(dtype=float))]
    per_env = {}
    for env in env_order(f["env"].unique()):
        cell = f[f["env"] == env]
        x, y = (cell.loc[cell["algo"] == algo, "final_return"].to_numpy(dtype=float) for algo in (A, B))
        if x.size and y.size:
            per_env[env] = welch_outcome(x, y, alpha)
    counts = {o: sum(r["outcome"] == o for r in per_env.values()) for o in OUTCOMES}
    return {
        "a": A,
        "b": B,
        "test": "Welch's t-test",
        "alpha": alpha,
        "per_env": per_env,
        "counts": counts,
        "n": len(per_env),
        "paper": paper.claim_counts(),
    }


def comparison_line(h2h: dict) -> str:
    """'EGGROLL vs OpenES (Welch's t-test, alpha 0.05): outperforms on X, ... of N environments; not comparable
    with the paper's counts (...)'."""
    head = (
        f"{algorithm_label(h2h['a'])} vs {algorithm_label(h2h['b'])} ({h2h['test']}, alpha {h2h['alpha']:g})"
    )
    theirs = PAPER_NOT_COMPARABLE
    if h2h["n"] == 0:
        return f"{head}: no environment has results for both; {theirs}."
    c = h2h["counts"]
    return (
        f"{head}: outperforms on {c['outperforms']}, competitive on {c['competitive']}, underperforms on "
        f"{c['underperforms']} of {h2h['n']} environments; {theirs}."
    )


def comparison_markdown(h2h: dict) -> str:
    """The counts line, its rule, and the per-environment test results."""
    a, b = algorithm_label(h2h["a"]), algorithm_label(h2h["b"])
    lines = [comparison_line(h2h), "", f"Rule: {RULES['head_to_head']}"]
    if h2h["per_env"]:
        lines += [
            "",
            f"| environment | {a} mean (seeds) | {b} mean (seeds) | t | p | outcome | note |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        lines += [
            f"| {env} | {fmt_number(r['mean_a'])} ({r['n_a']}) | {fmt_number(r['mean_b'])} ({r['n_b']}) "
            f"| {fmt_number(r['t'])} | {fmt_number(r['p_value'])} | {r['outcome']} | {r['note']} |"
            for env, r in h2h["per_env"].items()
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------ training time --


def ratio_label(a_seconds: float, b_seconds: float) -> str:
    """How `a` compares with `b` in the paper's words: '2.10x faster' (b took 2.1 times as long) or '1.30x slower'."""
    if a_seconds <= b_seconds:
        return f"{b_seconds / a_seconds:.2f}x faster"
    return f"{a_seconds / b_seconds:.2f}x slower"


def paper_ratio_label(env: str) -> str:
    try:
        return paper.wall_clock_ratio(env)["label"]
    except paper.TableError:
        return MISSING_MD


def training_time(selection: pd.DataFrame, summaries: pd.DataFrame) -> dict:
    """Figure 15: training seconds of the shown EGGROLL and OpenES trials per environment, their ratio, the paper's.

    `selection` names the shown trial per (env, algo); `summaries` is
    `esbench.results.load_summaries` (run_s per trial_id). Environments where
    both algorithms are shown but a run_s is missing or not positive are
    listed under `missing`.
    """
    run_s = pd.to_numeric(summaries.set_index("trial_id")["run_s"], errors="coerce")
    shown = selection.set_index(["env", "algo"])["trial_id"]
    rows, missing = [], []
    for env in env_order(selection["env"].unique()):
        if (env, A) not in shown.index or (env, B) not in shown.index:
            continue
        ids = {algo: shown[env, algo] for algo in (A, B)}
        secs = {algo: float(run_s.get(tid, math.nan)) for algo, tid in ids.items()}
        if not all(math.isfinite(s) and s > 0 for s in secs.values()):
            missing.append(env)
            continue
        rows.append(
            {
                "env": env,
                "trial_id": ids,
                "run_s": secs,
                "ratio": secs[B] / secs[A],
                "label": ratio_label(secs[A], secs[B]),
                "paper": paper_ratio_label(env),
            }
        )
    return {"a": A, "b": B, "rows": rows, "missing": missing}


def training_time_markdown(times: dict) -> str:
    """The Figure-15 table: our seconds, our ratio, the paper's ratio."""
    a, b = algorithm_label(times["a"]), algorithm_label(times["b"])
    lines = [
        f"| environment | {a} training s | {b} training s | {a} vs {b} | paper (Figure 15) |",
        "|---|---:|---:|---|---|",
    ]
    lines += [
        f"| {r['env']} | {r['run_s'][times['a']]:.4g} | {r['run_s'][times['b']]:.4g} | {r['label']} "
        f"| {r['paper']} |"
        for r in times["rows"]
    ]
    if not times["rows"]:
        lines = [f"No environment has training times for both {a} and {b}."]
    if times["missing"]:
        lines += ["", "Shown trials without a training time (run_s): " + ", ".join(times["missing"]) + "."]
    return "\n".join(lines) + "\n\n" + f"Rule: {RULES['training_time']}\n"
