"""report.md: the report's sections in reading order, from `numbers.ReportNumbers` and the figures drawn."""

from __future__ import annotations

import pandas as pd

from esbench.algorithms import algorithm_label
from esbench.report import aggregate as agg
from esbench.report import comparison, equivalence, hparams, learned, matched, search, tables
from esbench.report.numbers import ReportNumbers
from esbench.report.rules import BANDS
from esbench.report.tables import plural


def _reported_markdown(shown: dict, band: str) -> str:
    if shown["final_stage"]:
        excluded = ", ".join(f"{n} {stage}" for stage, n in shown["excluded"].items()) or "none"
        text = (
            f"Final stage only: every figure, table and statistic below reads the {shown['n_trials']} "
            f"final-stage trials (fresh seeds, no selection on the evaluations reported). Trials left out: "
            f"{excluded}."
        )
    else:
        text = (
            "No final stage: per (env, algorithm) the trial with the best mean final return is shown. That "
            "selection uses the evaluations reported here, so the shown returns are biased upwards; the "
            "protocol's final stage (fresh seeds for the chosen configuration) avoids this."
        )
    return f"{text}\n\nCurve shading: {BANDS[band]}.\n"


def _selection_markdown(selection: pd.DataFrame, final_stage: bool) -> str:
    several = selection[selection["n_candidates"] > 1]
    lines = [
        "| environment | algorithm | trial shown | candidates | its mean final return |",
        "|---|---|---|---:|---:|",
    ]
    for r in selection.itertuples():
        lines.append(
            f"| {r.env} | {algorithm_label(r.algo)} | `{r.trial_id}` | {r.n_candidates} "
            f"| {tables.fmt_number(r.mean_final_return)} |"
        )
    stage = "final-stage " if final_stage else ""
    if len(several):
        head = (
            f"{len(several)} (env, algorithm) pairs had several {stage}trials; the one with the best mean final "
            "return is shown (a selection on the reported evaluations)."
        )
    else:
        head = f"Every (env, algorithm) pair had a single {stage}trial."
    return head + "\n\n" + "\n".join(lines) + "\n"


def _aggregate_markdown(stats: dict) -> str:
    lines = [
        "| algorithm | IQM of normalised final return | 95% CI | environments | seeds per environment "
        "| scores left out |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for algo in agg.algo_order(stats["iqm"]):
        s = stats["iqm"][algo]
        lines.append(
            f"| {algorithm_label(algo)} | {s['iqm']:.3f} | [{s['ci_low']:.3f}, {s['ci_high']:.3f}] "
            f"| {len(s['envs'])} | {s['n_seeds_per_env']} | {s['n_dropped']} |"
        )
    poi = stats["probability_of_improvement"]
    if poi:
        a, b = poi["a"], poi["b"]
        lines += [
            "",
            f"Probability of improvement P({algorithm_label(a)} > {algorithm_label(b)}) = "
            f"{poi['value']:.3f}, 95% CI [{poi['ci_low']:.3f}, {poi['ci_high']:.3f}], "
            f"over {len(poi['envs'])} environments, with {poi['n_seeds_per_env'][a]} and "
            f"{poi['n_seeds_per_env'][b]} seeds per environment "
            f"({poi['n_dropped'][a]} and {poi['n_dropped'][b]} scores left out): "
            + (
                "conclusive (the interval excludes 0.5)."
                if poi["conclusive"]
                else "inconclusive (the interval contains 0.5, where neither tends to score higher)."
            ),
        ]
    else:
        lines += [
            "",
            "Probability of improvement EGGROLL > OpenES: not computed (no environment has results for both).",
        ]
    return "\n".join(lines) + "\n"


def _normalised_markdown(normalised: dict) -> str:
    left_out = "; ".join(f"{env} ({why})" for env, why in normalised["left_out"].items())
    return f"Environments left out of Figure 4a: {left_out}.\n" if left_out else ""


def _hparams_markdown(
    chosen_hp: dict | None, unstated: dict | None, protocol: dict | None, final_stage: bool
) -> str:
    if chosen_hp is None:
        return "Not shown: needs the trial summaries (`esbench.results.load_summaries`).\n"
    parts = [hparams.sampler_text(protocol, final_stage), ""]
    if protocol is not None:
        parts += ["Winners of the search:", "", hparams.protocol_selection_markdown(protocol)]
    return (
        "\n".join(parts)
        + "\n"
        + hparams.hparams_markdown(chosen_hp)
        + "\nWhat else ran (the update, the network, "
        "PPO's flavour, ...):\n\n" + hparams.unstated_markdown(unstated)
    )


def _left_out_markdown(left_out: dict | None) -> list[str]:
    """The trials of the folder that the report cannot show, each with why (none: nothing)."""
    unreadable, failed = (left_out or {}).get("unreadable", {}), (left_out or {}).get("failed", {})
    if not unreadable and not failed:
        return []
    lines = ["### Left out", ""]
    if unreadable:
        lines += [f"Left out: {plural(len(unreadable), 'unreadable trial')} (the folder is unchanged):", ""]
        lines += [f"- `{trial}`: {why}" for trial, why in sorted(unreadable.items())]
        lines.append("")
    if failed:
        lines += [f"{plural(len(failed), 'trial')} could not run:", ""]
        lines += [
            f"- `{trial}` ({r.get('kind', '?')}): {r.get('reason', '')}"
            for trial, r in sorted(failed.items())
        ]
        lines.append("")
    return lines


def report_markdown(n: ReportNumbers, written: dict, formats, md_table: str) -> str:
    """report.md's text; `written`: the figure files drawn (a figure not drawn gets a line saying why)."""
    shown, summary, band = n.shown, n.summary, n.band
    times, stats, no_eval_envs = n.times, n.stats, n.no_eval_envs
    n_bootstrap, seed = n.n_bootstrap, n.seed

    def fig_section(stem, caption, missing="no data"):
        if f"{stem}.{formats[0]}" not in written:
            return f"### {caption}\n\nNot drawn: {missing}.\n"
        links = ", ".join(f"[{fmt.upper()}]({stem}.{fmt})" for fmt in formats)
        image = f"![{caption}]({stem}.png)\n\n" if "png" in formats else ""
        return f"### {caption}\n\n{image}{links}\n"

    shading = f"shading: {BANDS[band]}"
    parts = [
        "# esbench report",
        "",
        f"{plural(shown['n_trials'], 'trial')}, {plural(summary['env'].nunique(), 'environment')}, algorithms: "
        + ", ".join(algorithm_label(a) for a in agg.algo_order(summary["algo"].unique()))
        + ".",
        "",
        "## What is reported",
        "",
        _reported_markdown(shown, band),
        *_left_out_markdown(n.left_out),
        "## EGGROLL vs OpenES",
        "",
        "### Verdicts at the declared margin",
        "",
        equivalence.verdicts_markdown(n.verdicts),
        "### Tuned, counted the paper's way (each algorithm at its own winning configuration)",
        "",
        "",
        comparison.comparison_markdown(n.h2h),
        "### Matched (both at the same configuration and seeds)",
        "",
        matched.matched_markdown(n.matched),
        "## Did each algorithm learn?",
        "",
        learned.learning_markdown(n.learning),
        "## Final evaluation return",
        "",
        md_table,
        "LaTeX: [final_return.tex](final_return.tex)",
        "",
        "## Training time (Figure 15)",
        "",
        comparison.training_time_markdown(times)
        if times is not None
        else "Not computed: needs the trial summaries (`esbench.results.load_summaries`).\n",
        "## The search: tuning scores and the winner's curse",
        "",
        search.winners_curse_markdown(n.searched),
        fig_section(
            "search",
            "Every search point's tuning score, the re-selection scores and the winner's final mean",
            "no search in this run",
        ),
        "## Hyperparameters: ours beside the paper's",
        "",
        _hparams_markdown(n.chosen_hp, n.unstated, n.protocol, shown["final_stage"]),
        "## Figures",
        "",
        fig_section("returns_vs_env_steps", f"Evaluation return against env steps (Figure 14; {shading})"),
        fig_section("returns_vs_wall_clock", f"Evaluation return against wall-clock ({shading})"),
        fig_section(
            "ppo_normalised_return",
            f"Return normalised by PPO, averaged over environments (Figure 4a; "
            f"{shading} of the per-seed environment averages; rule: ppo_normalisation)",
            "needs PPO and at least one other algorithm in an environment that can be normalised",
        ),
        _normalised_markdown(n.normalised),
        fig_section(
            "training_time",
            "Training time, EGGROLL vs OpenES (Figure 15)",
            "needs trial summaries and an environment with EGGROLL and OpenES training times",
        ),
        fig_section("throughput", "Training throughput"),
        fig_section("aggregate", "Aggregate statistics"),
        "## Aggregate statistics (rliable)",
        "",
        _aggregate_markdown(stats),
        f"Bootstrap replications: {n_bootstrap}, RNG seed {seed}.",
        "",
    ]
    if no_eval_envs:
        parts += [
            "Environments with rows but no usable evaluation (not in the return figures): "
            + ", ".join(no_eval_envs)
            + ".",
            "",
        ]
    parts += [
        "## Trial selection",
        "",
        _selection_markdown(n.selection, shown["final_stage"]),
        "## Rules",
        "",
        "\n".join(f"- **{k}**: {v}" for k, v in n.rules.items()),
        "",
        "All numbers: [summary.json](summary.json).",
        "",
    ]
    return "\n".join(parts)
