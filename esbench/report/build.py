"""`build_report`: every figure, table and number of the report, written into one folder.

Only this module knows which pieces make up the report; each piece is
computed by the module that owns its rule (aggregate, comparison, curves,
hparams) and drawn by figures / tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from esbench.algorithms import algorithm_label
from esbench.report import aggregate as agg
from esbench.report import comparison, curves, figures, hparams, learned, matched, search, tables
from esbench.report.rules import BANDS, check_band, rules_used
from esbench.report.tables import plural
from esbench.results import atomic_file

DEFAULT_BOOTSTRAP = 2000


def _jsonable(x):
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
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
            f"({poi['n_dropped'][a]} and {poi['n_dropped'][b]} scores left out).",
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


def build_report(
    df: pd.DataFrame,
    out_dir,
    summaries: pd.DataFrame | None = None,
    protocol: dict | None = None,
    band: str = "sem",
    alpha: float = 0.05,
    n_bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    formats=("png", "pdf"),
    left_out: dict | None = None,
) -> dict[str, Path]:
    """Write the report of a results DataFrame (`esbench.results.load`) into `out_dir`.

    summaries: `esbench.results.load_summaries` of the same folder (training
    times, hyperparameters); protocol: the protocol record (`protocol.json`);
    band: curve shading, 'sem' (the paper's) or 'bootstrap'; alpha: level of
    the EGGROLL-vs-OpenES Welch's t-test. Returns {name: path} of every file
    written: returns_vs_env_steps, returns_vs_wall_clock (Figure 14),
    ppo_normalised_return (Figure 4a, needs PPO and another algorithm),
    training_time (Figure 15, needs summaries), throughput, aggregate (each
    in every format), final_return.md, final_return.tex, summary.json, report.md. left_out: the trials
    of the folder the report cannot show, {"unreadable": {trial: why} (results.damaged_trials), "failed":
    {trial_id: failure record} (results.load_failures)}: listed, never silently dropped.
    """
    check_band(band)
    comparison.check_alpha(alpha)
    if summaries is not None:
        agg.check_summaries(summaries)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = agg.check_results(df)
    chosen, selection, shown = agg.reported_trials(df)
    finals = agg.final_returns(chosen)
    summary = agg.summarise_finals(finals)
    h2h = comparison.head_to_head(finals, alpha)
    stats = agg.aggregate_statistics(finals, n_bootstrap=n_bootstrap, seed=seed)
    throughput = agg.throughput_summary(chosen)
    normalised = curves.ppo_normalised_curves(chosen, summary, band, n_bootstrap, seed)
    learning = learned.learning_check(chosen, summary)
    pairs_matched = matched.matched_comparison(agg.final_returns(df), protocol)
    searched = search.search_scores(protocol, finals)
    times = comparison.training_time(selection, summaries) if summaries is not None else None
    chosen_hp = hparams.chosen_hparams(selection, summaries) if summaries is not None else None
    unstated = hparams.unstated_settings(selection, summaries) if summaries is not None else None
    panel_envs = figures.grid_envs(chosen)
    no_eval_envs = [e for e in agg.env_order(chosen["env"].unique()) if e not in panel_envs]
    rules = rules_used(band, shown["final_stage"], summaries is not None)

    written: dict[str, Path] = {}

    def save(name, fig):
        for p in figures.save_figure(fig, out / name, formats):
            written[p.name] = p

    if panel_envs:
        save("returns_vs_env_steps", figures.plot_return_grid(chosen, "env_steps", band, n_bootstrap, seed))
        save(
            "returns_vs_wall_clock", figures.plot_return_grid(chosen, "wall_clock_s", band, n_bootstrap, seed)
        )
    if "ppo" in normalised["curves"] and len(normalised["curves"]) > 1:
        save("ppo_normalised_return", figures.plot_ppo_normalised(normalised, band))
    if times and times["rows"]:
        save("training_time", figures.plot_training_time(times))
    if not throughput.empty:
        save("throughput", figures.plot_throughput(throughput))
    if stats["iqm"]:
        save("aggregate", figures.plot_aggregate(stats))
    if searched is not None:
        save("search", figures.plot_search(searched))

    md_table, tex_table = tables.final_return_markdown(summary), tables.final_return_latex(summary)

    def write(name: str, text: str) -> None:
        with atomic_file(out / name) as tmp:  # a full disk leaves no half-written file
            tmp.write_text(text)
        written[name] = out / name

    write("final_return.md", md_table)
    write("final_return.tex", tex_table)

    data = _jsonable(
        {
            "n_bootstrap": n_bootstrap,
            "seed": seed,
            "band": band,
            "alpha": alpha,
            "rules": rules,
            "reported": shown,
            "environments": agg.env_order(summary["env"].unique()),
            "algorithms": agg.algo_order(summary["algo"].unique()),
            "environments_without_evaluation": no_eval_envs,
            "selection": selection.to_dict(orient="records"),
            "final_return": _final_return_dict(summary, finals),
            "eggroll_vs_openes": h2h,
            "comparison_line": comparison.comparison_line(h2h),
            "matched": pairs_matched,
            "matched_line": None if pairs_matched is None else matched.matched_line(pairs_matched),
            "learned": learning,
            "search": searched,
            "training_time": times,
            "ppo_normalised": normalised,
            "hparams": None
            if chosen_hp is None
            else {
                "search": hparams.sampler_text(protocol, shown["final_stage"]),
                "by_algo": chosen_hp,
                "not_in_the_tables": unstated,
            },
            "protocol": protocol,
            "left_out": left_out or {"unreadable": {}, "failed": {}},
            "aggregate": stats,
            "throughput_sps": {
                f"{r.env}|{r.algo}": {"mean": r.mean, "min": r.min, "max": r.max, "n_seeds": r.n_seeds}
                for r in throughput.itertuples()
            },
        }
    )
    write("summary.json", json.dumps(data, indent=2, allow_nan=False))

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
        *_left_out_markdown(left_out),
        "## EGGROLL vs OpenES",
        "",
        "Tuned (each algorithm at its own winning configuration):",
        "",
        comparison.comparison_markdown(h2h),
        "### Matched (both at the same configuration and seeds)",
        "",
        matched.matched_markdown(pairs_matched),
        "## Did each algorithm learn?",
        "",
        learned.learning_markdown(learning),
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
        search.winners_curse_markdown(searched),
        fig_section(
            "search",
            "Every search point's tuning score, the re-selection scores and the winner's final mean",
            "no search in this run",
        ),
        "## Hyperparameters: ours beside the paper's",
        "",
        _hparams_markdown(chosen_hp, unstated, protocol, shown["final_stage"]),
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
        _normalised_markdown(normalised),
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
        _selection_markdown(selection, shown["final_stage"]),
        "## Rules",
        "",
        "\n".join(f"- **{k}**: {v}" for k, v in rules.items()),
        "",
        "All numbers: [summary.json](summary.json).",
        "",
    ]
    write("report.md", "\n".join(parts))
    return written
