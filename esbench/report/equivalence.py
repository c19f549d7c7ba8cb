"""EGGROLL vs OpenES at the declared margin: a verdict per env (tuned) and per matched pair, and the headlines.

The statistics are verdicts.py's; this module picks the samples (the final-stage seeds of each tuned winner,
the matched stage's paired seeds), the margin (the protocol record's, or the command line's, then labelled
post hoc) and the references, and writes the report's lines (RULES['verdicts']).
"""

from __future__ import annotations

import pandas as pd

from esbench.algorithms import algorithm_label
from esbench.report import verdicts
from esbench.report.aggregate import env_order
from esbench.report.rules import RULES
from esbench.report.tables import fmt_number
from esbench.validation import ConfigError

A, B = "eggroll", "openes"


def _per_seed(finals: pd.DataFrame, **where) -> dict[int, float]:
    rows = finals
    for column, value in where.items():
        rows = rows[rows[column] == value]
    rows = rows[rows["final_return"].notna()]
    return {int(s): float(v) for s, v in zip(rows["seed"], rows["final_return"])}


def _tuned(finals: pd.DataFrame, references: dict, margin: float) -> dict:
    per_env = {}
    for env in env_order(finals["env"].unique()):
        a, b = (_per_seed(finals, env=env, algo=algo) for algo in (A, B))
        has = set(finals.loc[finals["env"] == env, "algo"])
        if not {A, B} <= has or env not in references:
            continue
        ref = references[env]
        gain = ref["reference"] - ref["random"]
        delta = margin * gain
        if not a or not b:  # a side whose every seed lacks a final return: counted, never dropped
            per_env[env] = {
                **verdicts.verdict(None, delta, gain, "no final return on a side"),
                "n_a": len(a),
                "n_b": len(b),
            }
            continue
        capped = verdicts.is_capped(list(a.values()), ref.get("cap")) or verdicts.is_capped(
            list(b.values()), ref.get("cap")
        )
        diff = verdicts.independent_difference(list(a.values()), list(b.values()), delta, bootstrap=capped)
        notes = ["returns at a cap: bootstrap"] if capped else []
        if max(sum(a.values()) / len(a), sum(b.values()) / len(b)) < ref["random"]:
            notes.append("both means below a random policy's return")  # equal, but neither learned the task
        per_env[env] = {
            **verdicts.verdict(diff, delta, gain, "; ".join(notes)),
            "n_a": len(a),
            "n_b": len(b),
        }
    return _family(per_env)


def _matched(all_finals: pd.DataFrame, matched: dict | None, references: dict, margin: float) -> dict | None:
    if matched is None:
        return None
    cells = {}
    for env, pairs in matched["per_env"].items():
        if env not in references:
            continue
        ref = references[env]
        gain = ref["reference"] - ref["random"]
        delta = margin * gain
        for c in pairs:
            a = _per_seed(all_finals, trial_id=c["eggroll_trial_id"])
            b = _per_seed(all_finals, trial_id=c["openes_trial_id"])
            seeds = c["seeds"]
            capped = verdicts.is_capped([a[s] for s in seeds], ref.get("cap")) or verdicts.is_capped(
                [b[s] for s in seeds], ref.get("cap")
            )
            diff = verdicts.paired_mean_difference(c["differences"], delta, bootstrap=capped)
            cells[f"{env} at {algorithm_label(c['configuration_of'])}'s configuration"] = {
                **verdicts.verdict(diff, delta, gain, "returns at a cap: bootstrap" if capped else ""),
                "env": env,
                "configuration_of": c["configuration_of"],
                "n": c["n"],
            }
    return _family(cells)


def _family(cells: dict) -> dict:
    """Counts of each verdict, and the Holm-adjusted non-inferiority count over the family's comparisons."""
    p = {k: c["p_noninferior"] for k, c in cells.items() if "p_noninferior" in c}
    holm = verdicts.holm_rejections(p)
    return {
        "per_comparison": cells,
        "holm_family": len(p),  # the comparisons with a test (those without one are inconclusive)
        "counts": {kind: sum(c["verdict"] == kind for c in cells.values()) for kind in verdicts.KINDS},
        "n": len(cells),
        "holm_noninferior": sorted(k for k, rejected in holm.items() if rejected),
    }


def margin_verdicts(
    finals: pd.DataFrame,
    all_finals: pd.DataFrame,
    matched: dict | None,
    protocol: dict | None,
    margin: float | None = None,
) -> dict | None:
    """The verdicts at the record's declared margin, or at `margin` (post hoc when it differs); None when
    there is no margin or no references to measure it in.

    finals: `aggregate.final_returns` of the shown (final-stage) rows; all_finals: of every row (the matched
    trials); matched: `matched.matched_comparison`.
    """
    record = protocol or {}
    declared, references = record.get("margin"), record.get("references") or {}
    if margin is not None:
        verdicts.check_margin(margin)
    used = declared if margin is None else margin
    if used is None:
        return None
    missing = [env for env in env_order(finals["env"].unique()) if env not in references]
    if missing and not references:
        raise ConfigError(
            f"a margin needs each env's reference scores, and the protocol record has none ({', '.join(missing)}); "
            "declare `references:` in the sweep file before the run"
        )
    return {
        "margin": used,
        "declared_margin": declared,
        "post_hoc": used != declared,
        "references": references,
        "no_reference": missing,
        "tuned": _tuned(finals, references, used),
        "matched": _matched(all_finals, matched, references, used),
    }


def _label(result: dict) -> str:
    m = result["margin"]
    if not result["post_hoc"]:
        return f"margin ±{m * 100:.3g}% of the reference gain (declared)"
    declared = result["declared_margin"]
    was = f"the declared {declared * 100:.3g}%" if declared is not None else "none declared"
    return f"margin ±{m * 100:.3g}% of the reference gain (post hoc: {was})"


def headline(result: dict, family: str) -> str:
    """One line per claim: the verdict counts, the Holm non-inferiority count, the smallest detectable gaps."""
    fam = result[family]
    a, b = algorithm_label(A), algorithm_label(B)
    what = "tuned" if family == "tuned" else "matched (same configuration and seeds)"
    if fam is None or not fam["n"]:
        return f"{a} vs {b}, {what}: no comparison."
    c = fam["counts"]
    counts = ", ".join(f"{kind} {c[kind]}" for kind in verdicts.KINDS)
    gaps = " / ".join(
        f"{cell['mde_of_gain']:.0%}" if "mde_of_gain" in cell else "-"
        for cell in fam["per_comparison"].values()
    )
    names = " / ".join(fam["per_comparison"])
    return (
        f"{a} vs {b}, {what}, {_label(result)}: {counts}, of {fam['n']}; non-inferior at a Holm-adjusted 5% "
        f"over the {fam['holm_family']} tested: {len(fam['holm_noninferior'])}; smallest detectable gap (80% "
        f"power) {gaps} of the gain ({names})."
    )


PAPER_NOT_COMPARABLE = (
    "The paper's counts (EGGROLL matches or beats OpenES on 14 of 16 environments) are not set beside these: they "
    "come from other environments, budgets and seeds, and from a test the paper does not state."
)


def _interval(pair) -> str:
    return f"[{fmt_number(pair[0])}, {fmt_number(pair[1])}]"


def verdicts_markdown(result: dict | None) -> str:
    if result is None:
        return (
            "Not computed: the protocol declares no margin (`protocol.margin` and `references` in the sweep "
            "file, before the run; `esbench report --margin` gives a post-hoc one).\n"
        )
    lines = [headline(result, "tuned")]
    if result["matched"] is not None:
        lines += ["", headline(result, "matched")]
    lines += ["", PAPER_NOT_COMPARABLE, "", f"Rule: {RULES['verdicts']}", ""]
    if result["no_reference"]:
        lines += [f"No reference scores, so no verdict: {', '.join(result['no_reference'])}.", ""]
    lines += [
        "| comparison | seeds | EGGROLL - OpenES | margin (return) | 95% interval (margins) | 90% interval "
        "(margins) | smallest detectable gap (margins) | method | verdict |",
        "|---|---:|---:|---:|---|---|---:|---|---|",
    ]
    notes = []
    for family in ("tuned", "matched"):
        fam = result[family]
        for name, c in (fam or {"per_comparison": {}})["per_comparison"].items():
            seeds = f"{c['n_a']} + {c['n_b']}" if family == "tuned" else f"{c['n']} pairs"
            label = f"{family}: {name}"
            if c["method"] == "none":
                lines.append(
                    f"| {label} | {seeds} | - | - | - | - | - | none | {c['verdict']} ({c['note']}) |"
                )
                continue
            if c["note"]:
                notes.append(f"{label}: {c['note']}.")
            u = c["in_margins"]
            lines.append(
                f"| {label} | {seeds} | {fmt_number(c['estimate'])} | {fmt_number(c['delta'])} | "
                f"{_interval(u['ci95'])} | {_interval(u['ci90'])} | {fmt_number(u['mde'])} | {c['method']} | "
                f"{c['verdict']} |"
            )
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"
