"""Did each algorithm learn? Its final mean against the untrained policy's, beyond the noise (RULES['learned']),
and each seed against its own untrained return and the declared competence threshold (RULES['competence']).
"""

from __future__ import annotations

import math

import pandas as pd

from esbench.algorithms import algorithm_label
from esbench.report.aggregate import valid_evals
from esbench.report.tables import fmt_number

SEED_OUTCOMES = ("learned", "improved", "not learned")
# Per (env, algorithm) and per env, best first.
OUTCOMES = ("learned", "improved below the threshold", "not learned")


def untrained_returns(rows: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Per (env, algo): the mean over the shown trial's seeds of the evaluation at env step 0 (its untrained policy)."""
    start = valid_evals(rows)
    start = start[start["env_steps"] == 0]
    return {key: float(v) for key, v in start.groupby(["env", "algo"])["eval_return_mean"].mean().items()}


def _untrained_per_seed(rows: pd.DataFrame) -> dict[tuple[str, str, int], float]:
    start = valid_evals(rows)
    start = start[start["env_steps"] == 0]
    return {
        (env, algo, int(seed)): float(v)
        for (env, algo, seed), v in start.groupby(["env", "algo", "seed"])["eval_return_mean"].mean().items()
    }


def seed_outcome(final: float, untrained: float, threshold: float | None) -> str:
    """learned: above its own untrained return and at or above the competence threshold (a return); improved:
    above its untrained return only (all a seed can show without a threshold: any gain, however small, is
    above); not learned: neither."""
    if not (math.isfinite(final) and math.isfinite(untrained)) or final <= untrained:
        return "not learned"
    return "learned" if threshold is not None and final >= threshold else "improved"


def learning_check(
    rows: pd.DataFrame,
    summary: pd.DataFrame,
    finals: pd.DataFrame | None = None,
    competence: float | None = None,
    references: dict | None = None,
) -> dict:
    """Per (env, algo): final mean, its 95% half-width, the untrained mean, whether the gap exceeds the
    half-width, and (with `finals`) each seed's outcome against its own untrained return and the threshold
    random + competence x (reference - random) of the env's reference scores.

    rows: the shown trials' rows; summary: `aggregate.summarise_finals` of them; finals:
    `aggregate.final_returns` of them.
    """
    untrained = untrained_returns(rows)
    per_seed_start = _untrained_per_seed(rows)
    references = references or {}
    cells = []
    for r in summary.itertuples():
        base = untrained.get((r.env, r.algo), math.nan)
        half = (r.ci_high - r.ci_low) / 2 if math.isfinite(r.ci_high) else math.nan
        gap = r.mean - base
        clear = bool(math.isfinite(gap) and math.isfinite(half) and gap > half)
        ref = references.get(r.env)
        threshold = (
            ref["random"] + competence * (ref["reference"] - ref["random"])
            if competence is not None and ref
            else None
        )
        seeds = {}
        if finals is not None:
            own = finals[(finals["env"] == r.env) & (finals["algo"] == r.algo)]
            for seed, final in zip(own["seed"], own["final_return"]):
                start = per_seed_start.get((r.env, r.algo, int(seed)), math.nan)
                seeds[int(seed)] = {
                    "final": float(final),
                    "untrained": start,
                    "gain": float(final) - start,
                    "outcome": seed_outcome(float(final), start, threshold),
                }
        cells.append(
            {
                "env": r.env,
                "algo": r.algo,
                "final_mean": r.mean,
                "half_width": half,
                "untrained_mean": base,
                "gain": gap,
                "clear": clear,
                "competence_threshold": threshold,
                "seeds": seeds,
                "seed_counts": {o: sum(s["outcome"] == o for s in seeds.values()) for o in SEED_OUTCOMES},
            }
        )
    for cell in cells:
        cell["outcome"] = cell_outcome(cell)
    return {
        "cells": cells,
        "n": len(cells),
        "n_clear": sum(c["clear"] for c in cells),
        "competence": competence,
        "envs": env_outcomes(cells),
    }


def cell_outcome(cell: dict) -> str:
    """learned: the final mean above the untrained one by more than its 95% half-width (and, where a competence
    threshold is declared, at or above it); improved below the threshold: the first only; not learned: neither."""
    if not cell["clear"]:
        return "not learned"
    threshold = cell.get("competence_threshold")
    return (
        "learned" if threshold is None or cell["final_mean"] >= threshold else "improved below the threshold"
    )


def env_outcomes(cells: list[dict]) -> dict[str, dict]:
    """Per env: the best outcome of its algorithms' cells (each with its `outcome`), and the algorithms that
    reached it."""
    by_env: dict[str, dict[str, str]] = {}
    for c in cells:
        by_env.setdefault(c["env"], {})[c["algo"]] = c["outcome"]
    best = {}
    for env, outcomes in by_env.items():
        top = min(outcomes.values(), key=OUTCOMES.index)
        best[env] = {"outcome": top, "by": [a for a, o in outcomes.items() if o == top]}
    return best


def learning_markdown(check: dict) -> str:
    lines = [
        f"{check['n_clear']} of {check['n']} (env, algorithm) final means are above the untrained policy by more "
        "than their 95% half-width.",
    ]
    competence = check.get("competence")
    if competence is not None:
        lines += [
            "",
            f"Per seed (competence {competence:.0%} of the reference gain, declared): learned = above its own "
            "untrained return and at or above the threshold; improved = above its untrained return only.",
        ]
    else:
        lines += [
            "",
            "Per seed (no competence threshold declared): improved = above its own untrained return, by any "
            "amount; not learned = not above it.",
        ]
    lines += [
        "",
        "| environment | algorithm | untrained mean | final mean | gain | 95% half-width | clear "
        "| threshold | outcome | seeds: learned / improved / not learned |",
        "|---|---|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for c in check["cells"]:
        counts = c.get("seed_counts") or {}
        seeds = " / ".join(str(counts.get(o, 0)) for o in SEED_OUTCOMES) if c.get("seeds") else "-"
        lines.append(
            f"| {c['env']} | {algorithm_label(c['algo'])} | {fmt_number(c['untrained_mean'])} | "
            f"{fmt_number(c['final_mean'])} | {fmt_number(c['gain'])} | {fmt_number(c['half_width'])} | "
            f"{'yes' if c['clear'] else 'no'} | {fmt_number(c.get('competence_threshold'))} | "
            f"{c['outcome']} | {seeds} |"
        )
    envs = check["envs"]
    lines += [
        "",
        "Per environment, its best algorithm's outcome (outcome: learned = clear, and at or above the threshold "
        "where one is declared; improved below the threshold = clear only; not learned = not clear):",
        "",
        "| environment | outcome | by |",
        "|---|---|---|",
        *(
            f"| {env} | {e['outcome']} | {', '.join(algorithm_label(a) for a in e['by'])} |"
            for env, e in envs.items()
        ),
        "",
        "Environments: "
        + ", ".join(f"{sum(e['outcome'] == k for e in envs.values())} {k}" for k in OUTCOMES)
        + ".",
    ]
    return "\n".join(lines) + "\n"
