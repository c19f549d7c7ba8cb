"""Tables of final evaluation return (Markdown and LaTeX), and the number formats other tables share.

Cells are "mean ± half-width of the 95% Student-t interval" over seeds (rule:
rules.RULES['table_ci']); the best mean in a row is bold, a missing entry
is "—" ("---" in LaTeX), a cell with diverged seeds gets a dagger.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from esbench.algorithms import algorithm_label
from esbench.report.aggregate import algo_order, env_order

MISSING_MD = "—"
MISSING_TEX = "---"


def _decimals(half_width: float, mean: float) -> int:
    # two significant digits of the interval decide the precision of both numbers
    if np.isfinite(half_width) and half_width > 0:
        return int(min(6, max(0, 1 - math.floor(math.log10(half_width)))))
    if mean == 0 or not np.isfinite(mean):
        return 1
    return int(min(6, max(0, 3 - math.floor(math.log10(abs(mean))))))


def format_cell(mean: float, half_width: float, pm: str = "±") -> str:
    """'mean ± half' with the same decimals (two significant digits of the half-width)."""
    d = _decimals(half_width, mean)
    text = f"{mean:.{d}f}"
    if float(text) == 0:  # -0.3 rounded to no decimals prints "-0"
        text = f"{0.0:.{d}f}"
    if np.isfinite(half_width):
        return f"{text} {pm} {half_width:.{d}f}"
    return text


def fmt_number(x) -> str:
    """Four significant digits ('inf' as is), or "—" for a missing value (None or NaN)."""
    return MISSING_MD if x is None or math.isnan(x) else f"{x:.4g}"


def plural(n: int, word: str) -> str:
    """'1 seed', '3 seeds'."""
    return f"{n} {word}" + ("" if n == 1 else "s")


def _cells(summary: pd.DataFrame, envs, algos, fmt: str) -> list[list[str]]:
    pm, missing = ("±", MISSING_MD) if fmt == "md" else (r"$\pm$", MISSING_TEX)
    rows = []
    for env in envs:
        cells_env = summary[(summary["env"] == env) & (summary["n_seeds"] > 0)].set_index("algo")
        best = cells_env["mean"].max() if len(cells_env) else np.nan
        row = []
        for algo in algos:
            if algo not in cells_env.index:
                row.append(missing)
                continue
            c = cells_env.loc[algo]
            half = c["ci_high"] - c["mean"]
            text = format_cell(c["mean"], half, pm)
            if c["n_seeds"] == 1:
                text += " (n=1)"
            if c["mean"] == best:
                text = f"**{text}**" if fmt == "md" else rf"\textbf{{{text}}}"
            if c["n_diverged"] > 0:
                text += "†" if fmt == "md" else r"$^\dagger$"
            row.append(text)
        rows.append(row)
    return rows


def _table_axes(summary: pd.DataFrame):
    return env_order(summary["env"].unique()), algo_order(summary["algo"].unique())


def final_return_markdown(summary: pd.DataFrame) -> str:
    """Markdown table: environments (rows) x algorithms (columns) of final return mean ± 95% CI."""
    envs, algos = _table_axes(summary)
    lines = [
        "| environment | " + " | ".join(algorithm_label(a) for a in algos) + " |",
        "|---|" + "---:|" * len(algos),
    ]
    for env, row in zip(envs, _cells(summary, envs, algos, "md")):
        lines.append(f"| {env} | " + " | ".join(row) + " |")
    notes = (
        "Final evaluation return, mean ± half-width of the 95% Student-t interval over seeds. "
        "Bold: best mean in the row. —: no results. †: includes diverged seeds (last finite evaluation)."
    )
    return "\n".join(lines) + "\n\n" + notes + "\n"


def _tex_escape(text: str) -> str:
    for a, b in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("&", r"\&"),
        ("%", r"\%"),
        ("#", r"\#"),
        ("$", r"\$"),
        ("{", r"\{"),
        ("}", r"\}"),
    ):
        text = text.replace(a, b)
    return text


def final_return_latex(summary: pd.DataFrame) -> str:
    """LaTeX (booktabs) version of `final_return_markdown`."""
    envs, algos = _table_axes(summary)
    out = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        r"\begin{tabular}{l" + "r" * len(algos) + "}",
        r"\toprule",
        "Environment & " + " & ".join(_tex_escape(algorithm_label(a)) for a in algos) + r" \\",
        r"\midrule",
    ]
    for env, row in zip(envs, _cells(summary, envs, algos, "tex")):
        out.append(_tex_escape(env) + " & " + " & ".join(row) + r" \\")
    out += [
        r"\bottomrule",
        r"\end{tabular}",
        r"\caption{Final evaluation return, mean $\pm$ half-width of the 95\% Student-$t$ interval over seeds. "
        r"Bold: best mean per row; ---: no results; $^\dagger$: includes diverged seeds.}",
        r"\label{tab:final-return}",
        r"\end{table}",
    ]
    return "\n".join(out) + "\n"
