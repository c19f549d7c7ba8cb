"""The search, shown: every point's tuning score beside its re-selection and final scores, and the winner's curse.

A search trial's tuning score is its mean final return over the tuning seeds
(the protocol's RULES['score']); the winner is chosen on it (or on its
re-selection score), so the winner's score is biased upwards. The winner's
curse is that bias measured: the winner's tuning score minus its mean final
return on the final seeds, which no selection has seen (RULES['winners_curse']).
"""

from __future__ import annotations

import math

import pandas as pd

from esbench.algorithms import algorithm_label
from esbench.report.aggregate import algo_order, env_order
from esbench.report.rules import RULES
from esbench.report.tables import fmt_number


def _minus(a, b) -> float | None:
    return None if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) else a - b


def search_scores(protocol: dict | None, finals: pd.DataFrame) -> dict | None:
    """Per (env, algo): every search trial's tuning score (search order), the re-selection scores, the winner's
    final mean, and the winner's curse; None without a search in the record.

    finals: `aggregate.final_returns` of the final-stage rows. A winner whose tuning score is at its env's
    return cap (the record's `references`: `cap`) is `capped`, left out of the count.
    """
    selection = (protocol or {}).get("selection") or []
    if not selection or not all("search" in e for e in selection):
        return None
    references = (protocol or {}).get("references") or {}
    final_mean = finals.groupby("trial_id")["final_return"].mean()
    final_se = finals.groupby("trial_id")["final_return"].sem(ddof=1)
    pairs = []
    for e in selection:
        reselect = e.get("reselect")
        again = {c["search_trial_id"]: c["score"] for c in reselect["candidates"]} if reselect else {}
        final = final_mean.get(e.get("final_trial_id"), math.nan)
        final = float(final) if math.isfinite(final) else None
        se = final_se.get(e.get("final_trial_id"), math.nan)
        cap = references.get(e["env"], {}).get("cap")
        pairs.append(
            {
                "env": e["env"],
                "algo": e["algo"],
                "winner": e["trial_id"],
                "points": [
                    {
                        "trial_id": p["trial_id"],
                        "tuning_score": p["score"],
                        "reselect_score": again.get(p["trial_id"]),
                    }
                    for p in e["search"]
                ],
                "winner_tuning_score": e["score"],
                "winner_reselect_score": reselect["score"] if reselect else None,
                "final_mean": final,
                "winners_curse": _minus(e["score"], final),
                "curse_se": float(se) if math.isfinite(se) else None,
                "capped": cap is not None and e["score"] is not None and e["score"] >= cap,
                "reselect_curse": _minus(reselect["score"], final) if reselect else None,
            }
        )
    order = {
        (env, algo): (i, j)
        for i, env in enumerate(env_order({p["env"] for p in pairs}))
        for j, algo in enumerate(algo_order({p["algo"] for p in pairs}))
    }
    return {
        "pairs": sorted(pairs, key=lambda p: order[p["env"], p["algo"]]),
        "reselected": any(p["winner_reselect_score"] is not None for p in pairs),
    }


def winners_curse_markdown(search: dict | None) -> str:
    if search is None:
        return "No search in this run (the paper's rows ran as they are): no tuning scores to show.\n"
    reselected = search["reselected"]
    head = "| environment | algorithm | points | winner's tuning score |"
    rule = "|---|---|---:|---:|"
    if reselected:
        head += " its re-selection score |"
        rule += "---:|"
    head += " final mean (fresh seeds) | winner's curse (tuning - final) | its SE |"
    rule += "---:|---:|---:|"
    if reselected:
        head += " re-selection - final |"
        rule += "---:|"
    lines = [head, rule]
    for p in search["pairs"]:
        cells = [
            p["env"],
            algorithm_label(p["algo"]),
            str(len(p["points"])),
            fmt_number(p["winner_tuning_score"]),
        ]
        if reselected:
            cells.append(fmt_number(p["winner_reselect_score"]))
        curse = fmt_number(p["winners_curse"]) + (" (at the cap)" if p.get("capped") else "")
        cells += [fmt_number(p["final_mean"]), curse, fmt_number(p.get("curse_se"))]
        if reselected:
            cells.append(fmt_number(p["reselect_curse"]))
        lines.append("| " + " | ".join(cells) + " |")
    text = [f"Rule: {RULES['winners_curse']}", ""]
    capped = [p for p in search["pairs"] if p.get("capped")]
    counted = [p for p in search["pairs"] if not p.get("capped")]
    for name, key in (("tuning score", "winners_curse"), ("re-selection score", "reselect_curse")):
        gaps = [p[key] for p in counted if p[key] is not None]
        if gaps:  # counted, not averaged: the envs' returns are on different scales
            text += [
                f"The winner's {name} was above its final mean in {sum(g > 0 for g in gaps)} of {len(gaps)} "
                "(env, algorithm) pairs.",
                "",
            ]
    if capped:
        names = ", ".join(f"{p['env']} x {algorithm_label(p['algo'])}" for p in capped)
        text += [f"Left out of these counts, their winner's tuning score at the return cap: {names}.", ""]
    return "\n".join(text + lines) + "\n"
