"""Every number of the report, computed once (`compute_numbers`) and written as summary.json (`summary_data`).

Each piece is computed by the module that owns its rule (aggregate, comparison, curves, equivalence,
hparams, learned, matched, search); figures and markdown only read what this module returns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from esbench.report import aggregate as agg
from esbench.report import comparison, curves, equivalence, figures, hparams, learned, matched, search
from esbench.report.rules import check_band, rules_used


@dataclass
class ReportNumbers:
    """What the report shows: the data pieces, and the settings they were computed with."""

    chosen: pd.DataFrame  # the shown trials' rows
    selection: pd.DataFrame
    shown: dict
    finals: pd.DataFrame
    summary: pd.DataFrame
    h2h: dict
    verdicts: dict | None
    stats: dict
    throughput: pd.DataFrame
    normalised: dict
    learning: dict
    matched: dict | None
    searched: dict | None
    times: dict | None
    chosen_hp: dict | None
    unstated: dict | None
    panel_envs: list
    no_eval_envs: list
    rules: dict
    protocol: dict | None
    left_out: dict
    band: str
    alpha: float
    n_bootstrap: int
    seed: int


def compute_numbers(
    df: pd.DataFrame,
    summaries: pd.DataFrame | None,
    protocol: dict | None,
    band: str,
    alpha: float,
    n_bootstrap: int,
    seed: int,
    left_out: dict | None,
    margin: float | None = None,
) -> ReportNumbers:
    """The report's numbers (build_report's arguments); ValueError on bad settings, before anything is drawn."""
    check_band(band)
    comparison.check_alpha(alpha)
    if summaries is not None:
        agg.check_summaries(summaries)
    df = agg.check_results(df)
    record = protocol or {}
    references = record.get("references") or {}
    chosen, selection, shown = agg.reported_trials(df)
    finals = agg.final_returns(chosen)
    all_finals = agg.final_returns(df)
    summary = agg.summarise_finals(finals)
    pairs_matched = matched.matched_comparison(all_finals, protocol)
    panel_envs = figures.grid_envs(chosen)
    return ReportNumbers(
        chosen=chosen,
        selection=selection,
        shown=shown,
        finals=finals,
        summary=summary,
        h2h=comparison.head_to_head(finals, alpha),
        verdicts=equivalence.margin_verdicts(finals, all_finals, pairs_matched, protocol, margin),
        stats=agg.aggregate_statistics(finals, n_bootstrap=n_bootstrap, seed=seed, references=references),
        throughput=agg.throughput_summary(chosen),
        normalised=curves.ppo_normalised_curves(chosen, summary, band, n_bootstrap, seed),
        learning=learned.learning_check(chosen, summary, finals, record.get("competence"), references),
        matched=pairs_matched,
        searched=search.search_scores(protocol, finals),
        times=comparison.training_time(selection, summaries) if summaries is not None else None,
        chosen_hp=hparams.chosen_hparams(selection, summaries) if summaries is not None else None,
        unstated=hparams.unstated_settings(selection, summaries) if summaries is not None else None,
        panel_envs=panel_envs,
        no_eval_envs=[e for e in agg.env_order(chosen["env"].unique()) if e not in panel_envs],
        rules=rules_used(band, shown["final_stage"], summaries is not None),
        protocol=protocol,
        left_out=left_out or {"unreadable": {}, "failed": {}},
        band=band,
        alpha=alpha,
        n_bootstrap=n_bootstrap,
        seed=seed,
    )


def jsonable(x):
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _final_return_dict(summary: pd.DataFrame, finals: pd.DataFrame) -> dict:
    per_env = {}
    for env in agg.env_order(summary["env"].unique()):
        per_env[env] = {}
        for _, r in summary[summary["env"] == env].iterrows():
            f = finals[(finals["env"] == env) & (finals["algo"] == r["algo"])]
            per_env[env][r["algo"]] = {
                "trial_id": r["trial_id"],
                "n_seeds": r["n_seeds"],
                "n_diverged": r["n_diverged"],
                "n_no_eval": r["n_no_eval"],
                "mean": r["mean"],
                "ci_low": r["ci_low"],
                "ci_high": r["ci_high"],
                "per_seed": {int(s): v for s, v in zip(f["seed"], f["final_return"])},
            }
    return per_env


def summary_data(n: ReportNumbers) -> dict:
    """summary.json: every number of the report, JSON-ready."""
    return jsonable(
        {
            "n_bootstrap": n.n_bootstrap,
            "seed": n.seed,
            "band": n.band,
            "alpha": n.alpha,
            "rules": n.rules,
            "reported": n.shown,
            "environments": agg.env_order(n.summary["env"].unique()),
            "algorithms": agg.algo_order(n.summary["algo"].unique()),
            "environments_without_evaluation": n.no_eval_envs,
            "selection": n.selection.to_dict(orient="records"),
            "final_return": _final_return_dict(n.summary, n.finals),
            "verdicts": n.verdicts,
            "verdict_lines": None
            if n.verdicts is None
            else [
                equivalence.headline(n.verdicts, family)
                for family in ("tuned", "matched")
                if family == "tuned" or n.verdicts["matched"] is not None
            ],
            "eggroll_vs_openes": n.h2h,
            "comparison_line": comparison.comparison_line(n.h2h),
            "matched": n.matched,
            "matched_line": None if n.matched is None else matched.matched_line(n.matched),
            "learned": n.learning,
            "search": n.searched,
            "training_time": n.times,
            "ppo_normalised": n.normalised,
            "hparams": None
            if n.chosen_hp is None
            else {
                "search": hparams.sampler_text(n.protocol, n.shown["final_stage"]),
                "by_algo": n.chosen_hp,
                "not_in_the_tables": n.unstated,
            },
            "protocol": n.protocol,
            "left_out": n.left_out,
            "aggregate": n.stats,
            "throughput_sps": {
                f"{r.env}|{r.algo}": {"mean": r.mean, "min": r.min, "max": r.max, "n_seeds": r.n_seeds}
                for r in n.throughput.itertuples()
            },
        }
    )
