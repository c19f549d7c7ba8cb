"""`build_report`: every figure, table and number of the report, written into one folder."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from esbench.report import aggregate as agg
from esbench.report import figures, tables

DEFAULT_BOOTSTRAP = 2000


def _jsonable(x):
    """NaN/inf -> None, numpy scalars -> Python, recursively."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x


def _summary_dict(summary, finals, selection, h2h, stats, throughput, no_eval_envs, n_bootstrap, seed) -> dict:
    per_env = {}
    for env in agg.env_order(summary["env"].unique()):
        per_env[env] = {}
        for _, r in summary[summary["env"] == env].iterrows():
            f = finals[(finals["env"] == env) & (finals["algo"] == r["algo"])]
            per_env[env][r["algo"]] = {
                "trial_id": r["trial_id"], "n_seeds": r["n_seeds"], "n_diverged": r["n_diverged"],
                "n_no_eval": r["n_no_eval"], "mean": r["mean"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                "per_seed": {int(s): v for s, v in zip(f["seed"], f["final_return"])},
            }
    return _jsonable({
        "n_bootstrap": n_bootstrap, "seed": seed, "rules": agg.RULES,
        "environments": agg.env_order(summary["env"].unique()),
        "algorithms": agg.algo_order(summary["algo"].unique()),
        "environments_without_evaluation": no_eval_envs,
        "selection": selection.to_dict(orient="records"),
        "final_return": per_env,
        "eggroll_vs_openes": h2h,
        "comparison_line": tables.comparison_line(h2h),
        "aggregate": stats,
        "throughput_sps": {f"{r.env}|{r.algo}": {"mean": r.mean, "min": r.min, "max": r.max, "n_seeds": r.n_seeds}
                           for r in throughput.itertuples()},
    })


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _selection_markdown(selection: pd.DataFrame) -> str:
    swept = selection[selection["n_candidates"] > 1]
    lines = ["| environment | algorithm | trial shown | candidates | its mean final return |", "|---|---|---|---:|---:|"]
    for r in selection.itertuples():
        mean = "—" if not np.isfinite(r.mean_final_return) else f"{r.mean_final_return:.4g}"
        lines.append(f"| {r.env} | {agg.algo_label(r.algo)} | `{r.trial_id}` | {r.n_candidates} | {mean} |")
    head = (f"{len(swept)} (env, algorithm) pairs had several trials (a sweep); the one with the best mean final "
            "return is shown." if len(swept) else "Every (env, algorithm) pair had a single trial.")
    return head + "\n\n" + "\n".join(lines) + "\n"


def _aggregate_markdown(stats: dict) -> str:
    lines = ["| algorithm | IQM of normalised final return | 95% CI | environments | seeds per environment "
             "| scores left out |", "|---|---:|---|---:|---:|---:|"]
    for algo in agg.algo_order(stats["iqm"]):
        s = stats["iqm"][algo]
        lines.append(f"| {agg.algo_label(algo)} | {s['iqm']:.3f} | [{s['ci_low']:.3f}, {s['ci_high']:.3f}] "
                     f"| {len(s['envs'])} | {s['n_seeds_per_env']} | {s['n_dropped']} |")
    poi = stats["probability_of_improvement"]
    if poi:
        a, b = poi["a"], poi["b"]
        lines += ["", f"Probability of improvement P({agg.algo_label(a)} > {agg.algo_label(b)}) = "
                      f"{poi['value']:.3f}, 95% CI [{poi['ci_low']:.3f}, {poi['ci_high']:.3f}], "
                      f"over {len(poi['envs'])} environments, with {poi['n_seeds_per_env'][a]} and "
                      f"{poi['n_seeds_per_env'][b]} seeds per environment "
                      f"({poi['n_dropped'][a]} and {poi['n_dropped'][b]} scores left out)."]
    else:
        lines += ["", "Probability of improvement EGGROLL > OpenES: not computed (no environment has results for both)."]
    return "\n".join(lines) + "\n"


def build_report(df: pd.DataFrame, out_dir, n_bootstrap: int = DEFAULT_BOOTSTRAP, seed: int = 0,
                 formats=("png", "pdf")) -> dict[str, Path]:
    """Write the report of a results DataFrame (`esbench.results.load`) into `out_dir`.

    Returns {name: path} of every file written: returns_vs_env_steps.{png,pdf},
    returns_vs_wall_clock.{png,pdf}, throughput.{png,pdf}, aggregate.{png,pdf},
    final_return.md, final_return.tex, summary.json, report.md.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = agg.check_results(df)
    chosen, selection = agg.select_trials(df)
    finals = agg.final_returns(chosen)
    summary = agg.summarise_finals(finals)
    h2h = agg.head_to_head(summary, "eggroll", "openes")
    stats = agg.aggregate_statistics(finals, n_bootstrap=n_bootstrap, seed=seed)
    throughput = agg.throughput_summary(chosen)
    panel_envs = figures.grid_envs(chosen)
    no_eval_envs = [e for e in agg.env_order(chosen["env"].unique()) if e not in panel_envs]

    written: dict[str, Path] = {}

    def save(name, fig):
        for p in figures.save_figure(fig, out / name, formats):
            written[p.name] = p

    if panel_envs:
        save("returns_vs_env_steps", figures.plot_return_grid(chosen, "env_steps", n_bootstrap, seed))
        save("returns_vs_wall_clock", figures.plot_return_grid(chosen, "wall_clock_s", n_bootstrap, seed))
    if not throughput.empty:
        save("throughput", figures.plot_throughput(throughput))
    if stats["iqm"]:
        save("aggregate", figures.plot_aggregate(stats))

    md_table, tex_table = tables.final_return_markdown(summary), tables.final_return_latex(summary)
    for name, text in (("final_return.md", md_table), ("final_return.tex", tex_table)):
        (out / name).write_text(text)
        written[name] = out / name

    data = _summary_dict(summary, finals, selection, h2h, stats, throughput, no_eval_envs, n_bootstrap, seed)
    (out / "summary.json").write_text(json.dumps(data, indent=2, allow_nan=False))
    written["summary.json"] = out / "summary.json"

    def fig_section(stem, caption):
        if f"{stem}.png" not in written:
            return f"### {caption}\n\nNot drawn: no data.\n"
        links = ", ".join(f"[{fmt.upper()}]({stem}.{fmt})" for fmt in formats)
        return f"### {caption}\n\n![{caption}]({stem}.png)\n\n{links}\n"

    rules = "\n".join(f"- **{k}**: {v}" for k, v in agg.RULES.items())
    parts = [
        "# esbench report", "",
        f"{_plural(df['trial_id'].nunique(), 'trial')}, {_plural(summary['env'].nunique(), 'environment')}, algorithms: "
        + ", ".join(agg.algo_label(a) for a in agg.algo_order(summary["algo"].unique())) + ".",
        "",
        "## EGGROLL vs OpenES", "", tables.comparison_markdown(h2h),
        "## Final evaluation return", "", md_table, "LaTeX: [final_return.tex](final_return.tex)", "",
        "## Figures", "",
        fig_section("returns_vs_env_steps", "Evaluation return against env steps (Figure 4)"),
        fig_section("returns_vs_wall_clock", "Evaluation return against wall-clock"),
        fig_section("throughput", "Training throughput"),
        fig_section("aggregate", "Aggregate statistics"),
        "## Aggregate statistics (rliable)", "", _aggregate_markdown(stats),
        f"Bootstrap replications: {n_bootstrap}, RNG seed {seed}.", "",
    ]
    if no_eval_envs:
        parts += ["Environments with rows but no usable evaluation (not in the return figures): "
                  + ", ".join(no_eval_envs) + ".", ""]
    parts += ["## Trial selection", "", _selection_markdown(selection),
              "## Rules", "", rules, "", "All numbers: [summary.json](summary.json).", ""]
    (out / "report.md").write_text("\n".join(parts))
    written["report.md"] = out / "report.md"
    return written
