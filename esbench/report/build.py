"""`build_report`: every figure, table and number of the report, written into one folder.

Three steps, each in its own module: compute the numbers (numbers.py), draw the figures (figures.py, chosen
here), write the files (tables.py, markdown.py, summary.json).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from esbench.report import figures, tables
from esbench.report.markdown import report_markdown
from esbench.report.numbers import ReportNumbers, compute_numbers, summary_data
from esbench.results import atomic_file

DEFAULT_BOOTSTRAP = 2000


def draw_figures(n: ReportNumbers, out: Path, formats) -> dict[str, Path]:
    """Every figure the numbers allow, in every format: {file name: path}."""
    written: dict[str, Path] = {}

    def save(name, fig):
        for p in figures.save_figure(fig, out / name, formats):
            written[p.name] = p

    if n.panel_envs:
        for x, name in (("env_steps", "returns_vs_env_steps"), ("wall_clock_s", "returns_vs_wall_clock")):
            save(name, figures.plot_return_grid(n.chosen, x, n.band, n.n_bootstrap, n.seed))
    if "ppo" in n.normalised["curves"] and len(n.normalised["curves"]) > 1:
        save("ppo_normalised_return", figures.plot_ppo_normalised(n.normalised, n.band))
    if n.times and n.times["rows"]:
        save("training_time", figures.plot_training_time(n.times))
    if not n.throughput.empty:
        save("throughput", figures.plot_throughput(n.throughput))
    if n.stats["iqm"]:
        save("aggregate", figures.plot_aggregate(n.stats))
    if n.searched is not None:
        save("search", figures.plot_search(n.searched))
    return written


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
    margin: float | None = None,
) -> dict[str, Path]:
    """Write the report of a results DataFrame (`esbench.results.load`) into `out_dir`.

    summaries: `esbench.results.load_summaries` of the same folder (training
    times, hyperparameters); protocol: the protocol record (`protocol.json`);
    band: curve shading, 'sem' (the paper's) or 'bootstrap'; alpha: level of
    the EGGROLL-vs-OpenES Welch's t-test; margin: the verdicts' margin
    (None: the protocol's declared one; another is labelled post hoc). Returns {name: path} of every file
    written: returns_vs_env_steps, returns_vs_wall_clock (Figure 14),
    ppo_normalised_return (Figure 4a, needs PPO and another algorithm),
    training_time (Figure 15, needs summaries), throughput, aggregate (each
    in every format), final_return.md, final_return.tex, summary.json, report.md. left_out: the trials
    of the folder the report cannot show, {"unreadable": {trial: why} (results.damaged_trials), "failed":
    {trial_id: failure record} (results.load_failures)}: listed, never silently dropped.
    """
    numbers = compute_numbers(df, summaries, protocol, band, alpha, n_bootstrap, seed, left_out, margin)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = draw_figures(numbers, out, formats)

    def write(name: str, text: str) -> None:
        with atomic_file(out / name) as tmp:  # a full disk leaves no half-written file
            tmp.write_text(text)
        written[name] = out / name

    md_table = tables.final_return_markdown(numbers.summary)
    write("final_return.md", md_table)
    write("final_return.tex", tables.final_return_latex(numbers.summary))
    write("summary.json", json.dumps(summary_data(numbers), indent=2, allow_nan=False))
    write("report.md", report_markdown(numbers, written, formats, md_table))
    return written
