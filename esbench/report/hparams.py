"""How the shown trials' hyperparameters were chosen, and how they compare with the paper's choices.

A reproduction is only a reproduction if it ran what the paper ran, or says
where it did not: each shown trial's resolved hyperparameters are set beside
the paper's row for the same (algorithm, environment) (RULES['hparams']),
with the search that chose them (the protocol record's sampler and winners).
"""

from __future__ import annotations

import math
from numbers import Number

import pandas as pd

from esbench import paper
from esbench.algorithms import algorithm_label
from esbench.report.aggregate import algo_order
from esbench.report.tables import MISSING_MD, fmt_number

SAMPLERS = {"random": "random search (the paper's)", "tpe": "TPE (Optuna), not the paper's"}


def same_value(ours, theirs) -> bool:
    """Equal, numbers up to a relative 1e-9 (a float read back from JSON may differ in the last bit)."""
    numeric = all(isinstance(v, Number) and not isinstance(v, bool) for v in (ours, theirs))
    return math.isclose(ours, theirs, rel_tol=1e-9) if numeric else ours == theirs


def chosen_hparams(selection: pd.DataFrame, summaries: pd.DataFrame) -> dict[str, list[dict]]:
    """Per algorithm the paper has a column for: one entry per shown trial with hparams in `summaries`.

    Entry: env, trial_id, ours ({field: value} for the paper row's fields),
    paper (the row, or None for an environment the tables lack), differs
    (fields whose values differ).
    """
    hparams = summaries.set_index("trial_id")["hparams"]
    out: dict[str, list[dict]] = {}
    for r in selection.itertuples():
        if r.algo not in paper.ALGORITHMS or r.trial_id not in hparams.index:
            continue
        fields = paper.row(r.algo, paper.env_ids()[0])  # every row of an algorithm has the same fields
        try:
            theirs = paper.row(r.algo, r.env)
        except paper.TableError:
            theirs = None
        ours = {k: v for k, v in hparams[r.trial_id].items() if k in fields}
        differs = [k for k in ours if theirs is not None and not same_value(ours[k], theirs[k])]
        out.setdefault(r.algo, []).append(
            {"env": r.env, "trial_id": r.trial_id, "ours": ours, "paper": theirs, "differs": differs}
        )
    return {algo: out[algo] for algo in algo_order(out)}


def unstated_settings(selection: pd.DataFrame, summaries: pd.DataFrame) -> dict[str, dict[str, list]]:
    """Per algorithm, the settings the paper's tables do not give (network, update scale, PPO flavour, ...):
    {field: the distinct values over the shown trials}, so the report says what ran besides the rows."""
    hparams = summaries.set_index("trial_id")["hparams"]
    out: dict[str, dict[str, list]] = {}
    for r in selection.itertuples():
        if r.trial_id not in hparams.index:
            continue
        stated = paper.row(r.algo, paper.env_ids()[0]) if r.algo in paper.ALGORITHMS else {}
        fields = out.setdefault(r.algo, {})
        for k, v in hparams[r.trial_id].items():
            if k not in stated and v not in fields.setdefault(k, []):
                fields[k].append(v)
    return {algo: out[algo] for algo in algo_order(out)}


def unstated_markdown(settings: dict[str, dict[str, list]]) -> str:
    lines = [
        "| algorithm | settings the paper's tables do not give (the shown trials' values) |",
        "|---|---|",
    ]
    for algo, fields in settings.items():
        text = ", ".join(f"{k} {' / '.join(_text(v) for v in values)}" for k, values in fields.items())
        lines.append(f"| {algorithm_label(algo)} | {text or MISSING_MD} |")
    return "\n".join(lines) + "\n"


def _text(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def hparams_markdown(chosen: dict[str, list[dict]]) -> str:
    """One table per algorithm: environments x hyperparameters, 'ours' or '**ours** (paper's)' where they differ."""
    parts = []
    for algo, entries in chosen.items():
        fields = list(paper.row(algo, paper.env_ids()[0]))
        fields = [f for f in fields if any(f in e["ours"] for e in entries)]
        lines = [
            f"**{algorithm_label(algo)}**",
            "",
            "| environment | " + " | ".join(fields) + " |",
            "|---|" + "---|" * len(fields),
        ]
        for e in entries:
            cells = []
            for f in fields:
                ours = _text(e["ours"][f]) if f in e["ours"] else MISSING_MD
                cells.append(f"**{ours}** ({_text(e['paper'][f])})" if f in e["differs"] else ours)
            env = e["env"] if e["paper"] is not None else f"{e['env']} (not in the paper's tables)"
            lines.append(f"| {env} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines) + "\n")
    if not parts:
        return "No shown trial of EGGROLL, OpenES or PPO has hyperparameters in the summaries.\n"
    return "\n".join(parts) + (
        "\nBold: differs from the paper's choice for that environment, which is in "
        "parentheses; plain: the same as the paper's.\n"
    )


def sampler_text(protocol: dict | None, final_stage: bool) -> str:
    """One sentence on how the shown hyperparameters were found."""
    if protocol is None:
        how = "final-stage trials" if final_stage else "the best trial of each (env, algorithm) in the sweep"
        return f"No protocol record (protocol.json): the trials shown are {how}."
    sampler = SAMPLERS.get(protocol["sampler"], f"{protocol['sampler']} (not the paper's)")
    again = (
        (
            f"; the {protocol['reselect_top']} best of each re-run on re-selection seeds {protocol['reselect_seeds']}, "
            "the best there winning"
        )
        if protocol.get("reselect_top")
        else ""
    )
    own = "".join(  # the envs run on their own final seeds (protocol.final_seeds_per_env)
        f"; on {env}, final seeds {seeds}" for env, seeds in protocol.get("final_seeds_per_env", {}).items()
    )
    return (
        f"Chosen by {sampler} over {protocol['search_trials']} trials per (environment, algorithm) on tuning "
        f"seeds {protocol['tuning_seeds']}{again}, budget {protocol['budget']}; each winner re-run on final seeds "
        f"{protocol['final_seeds']}{own}."
    )


def protocol_selection_markdown(protocol: dict) -> str:
    """The protocol's winners: which search trial won each (env, algorithm), on what score, against what."""
    lines = [
        "| environment | algorithm | winning search trial | tuning score | re-selection score | candidates | diverged "
        "| tied with | note |",
        "|---|---|---|---:|---:|---:|---:|---|---|",
    ]
    for s in protocol["selection"]:
        tied = ", ".join(f"`{t}`" for t in s["tied_with"]) or MISSING_MD
        again = fmt_number(s["reselect"]["score"]) if s.get("reselect") else MISSING_MD
        lines.append(
            f"| {s['env']} | {algorithm_label(s['algo'])} | `{s['trial_id']}` | {fmt_number(s['score'])} "
            f"| {again} | {s['n_candidates']} | {s['n_diverged']} | {tied} | {s['note']} |"
        )
    return "\n".join(lines) + "\n"
