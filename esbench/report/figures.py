"""The paper's figures from stored results: Figure-4 return grids, throughput bars, aggregates.

Every plotting function takes the rows of the chosen trials (one trial per
(env, algo), see `aggregate.select_trials`) and returns a matplotlib Figure
drawn on the non-interactive Agg canvas; nothing goes through pyplot, so no
global state changes and nothing opens a window.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory

from esbench.report.aggregate import (
    MAIN_ALGOS, algo_label, algo_order, bootstrap_mean_ci, env_order, require_one_trial_per_cell, valid_evals,
)

# Okabe-Ito colours (colour-blind safe); the three main methods keep theirs whatever else is shown.
FIXED_COLOURS = {"eggroll": "#D55E00", "openes": "#0072B2", "ppo": "#009E73"}
EXTRA_COLOURS = ("#CC79A7", "#E69F00", "#56B4E9", "#000000", "#999999", "#8C564B", "#BCBD22", "#F0E442")
# Markers and dashes too, so that curves lying on top of each other (equal returns) stay visible.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
X_LABELS = {"env_steps": "env steps", "wall_clock_s": "wall-clock (s)"}
GRID_COLUMNS = 4


def algo_colours(algos) -> dict[str, str]:
    """Fixed colours for EGGROLL / OpenES / PPO, further colours for the others in `algo_order`."""
    others = [a for a in algo_order(algos) if a not in MAIN_ALGOS]
    colours = {a: c for a, c in FIXED_COLOURS.items()}
    for i, a in enumerate(others):
        colours[a] = EXTRA_COLOURS[i % len(EXTRA_COLOURS)]
    return colours


def algo_styles(algos) -> dict[str, dict]:
    """Line colour, marker and dash per algorithm (fixed for EGGROLL / OpenES / PPO via `algo_order`)."""
    colours = algo_colours(algos)
    return {a: {"color": colours[a], "marker": MARKERS[i % len(MARKERS)], "ls": LINESTYLES[i % len(LINESTYLES)]}
            for i, a in enumerate(algo_order(algos))}


def human_count(value: float, _pos=None) -> str:
    """Tick label for a count: 8000 -> '8k', 1.5e6 -> '1.5M'."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def label_log_axis(axis) -> None:
    """Plain-number labels at 1-2-5 (short ranges) or at powers of ten (long ones), no minor labels.

    Call after plotting: the choice depends on the data range.
    """
    lo, hi = axis.get_view_interval()
    decades = math.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    subs = (1.0, 2.0, 5.0) if decades <= 1.5 else (1.0, 3.0) if decades <= 3 else (1.0,)
    axis.set_major_locator(LogLocator(base=10, subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def new_figure(**kwargs) -> Figure:
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, stem: Path, formats=("png", "pdf"), dpi: int = 150) -> list[Path]:
    paths = []
    for fmt in formats:
        path = Path(f"{stem}.{fmt}")
        fig.savefig(path, format=fmt, dpi=dpi)
        paths.append(path)
    return paths


# ------------------------------------------------------------- curves -------

def aligned_curves(rows: pd.DataFrame) -> dict:
    """Evaluation curves of one (env, algo) trial, seeds aligned on their common log points.

    A diverged seed's last finite evaluation is carried forward past its
    divergence (rule: aggregate.RULES['diverged']); seeds never evaluated are
    dropped. Returns env_steps (P,), wall_clock_s (P,: mean over seeds),
    values (n_seeds, P) and the seed ids.
    """
    ev = valid_evals(rows)
    empty = {"env_steps": np.zeros(0), "wall_clock_s": np.zeros(0), "values": np.zeros((0, 0)), "seeds": []}
    if ev.empty:
        return empty
    values = ev.pivot_table(index="env_steps", columns="seed", values="eval_return_mean", aggfunc="last")
    diverged = rows.groupby("seed")["diverged"].any()
    for seed in values.columns:
        if diverged.get(seed, False):
            col = values[seed]
            last = col.last_valid_index()
            values.loc[values.index > last, seed] = col[last]
    values = values.dropna(axis=0, how="any")
    if values.empty:
        return empty
    wall = rows.pivot_table(index="env_steps", columns="seed", values="wall_clock_s", aggfunc="last")
    wall = wall.reindex(values.index).mean(axis=1, skipna=True)
    return {"env_steps": values.index.to_numpy(dtype=float), "wall_clock_s": wall.to_numpy(dtype=float),
            "values": values.to_numpy(dtype=float).T, "seeds": [int(s) for s in values.columns]}


def _grid_shape(n: int) -> tuple[int, int]:
    ncols = min(GRID_COLUMNS, n)
    return math.ceil(n / ncols), ncols


def grid_envs(df: pd.DataFrame) -> list[str]:
    """Environments that get a panel: those with at least one usable evaluation."""
    return env_order(valid_evals(df)["env"].unique())


def plot_return_grid(df: pd.DataFrame, x: str = "env_steps", n_bootstrap: int = 2000, seed: int = 0) -> Figure:
    """Figure 4: one panel per environment, mean evaluation return over seeds with a 95% bootstrap band."""
    if x not in X_LABELS:
        raise ValueError(f"x must be one of {list(X_LABELS)}, got {x!r}")
    require_one_trial_per_cell(df)
    envs = grid_envs(df)
    if not envs:
        raise ValueError("no environment has an evaluation return to plot")
    algos = algo_order(df["algo"].unique())
    styles = algo_styles(algos)
    nrows, ncols = _grid_shape(len(envs))
    fig = new_figure(figsize=(3.6 * ncols, 2.8 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, env in enumerate(envs):
        ax = axes.flat[k]
        missing = []
        for algo in algos:
            rows = df[(df["env"] == env) & (df["algo"] == algo)]
            curve = aligned_curves(rows)
            if curve["values"].size == 0:
                missing.append(algo)
                continue
            xs = curve[x]
            keep = np.isfinite(xs) & (xs > 0 if x == "wall_clock_s" else True)
            xs, vals = xs[keep], curve["values"][:, keep]
            mean = vals.mean(axis=0)
            ax.plot(xs, mean, lw=1.6, ms=3.5, label=algo_label(algo), **styles[algo])
            if vals.shape[0] > 1:
                lo, hi = bootstrap_mean_ci(vals, n_bootstrap, seed)
                ax.fill_between(xs, lo, hi, color=styles[algo]["color"], alpha=0.22, lw=0)
        title = env if not missing else f"{env}\nno results: {', '.join(algo_label(a) for a in missing)}"
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
        if x == "env_steps":
            ax.xaxis.set_major_formatter(FuncFormatter(human_count))
        else:  # methods differ by orders of magnitude in speed; linear time would squash the fast ones
            ax.set_xscale("log")
            label_log_axis(ax.xaxis)
        row, col = divmod(k, ncols)
        if col == 0:
            ax.set_ylabel("return", fontsize=9)
        if k + ncols >= len(envs):  # nothing below this panel
            ax.set_xlabel(X_LABELS[x], fontsize=9)
        ax.grid(alpha=0.3, lw=0.5)
    for ax in axes.flat[len(envs):]:
        fig.delaxes(ax)
    handles = [Line2D([], [], lw=2, label=algo_label(a), **styles[a]) for a in algos]
    handles.append(Patch(color="0.5", alpha=0.3, label="95% bootstrap CI of the mean"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.suptitle(f"Evaluation return against {X_LABELS[x]}", fontsize=11)
    return fig


# ---------------------------------------------------------- throughput ------

def plot_throughput(summary: pd.DataFrame) -> Figure:
    """Grouped bars (log scale): env steps per second per environment and algorithm.

    `summary` is `aggregate.throughput_summary(df)`.
    """
    envs = env_order(summary["env"].unique())
    algos = algo_order(summary["algo"].unique())
    colours = algo_colours(algos)
    fig = new_figure(figsize=(min(18.0, max(6.0, 0.25 * len(envs) * len(algos) + 2)), 4.6), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(algos)
    text_at_bottom = blended_transform_factory(ax.transData, ax.transAxes)
    for j, algo in enumerate(algos):
        for i, env in enumerate(envs):
            pos = i - 0.4 + width * (j + 0.5)
            row = summary[(summary["env"] == env) & (summary["algo"] == algo)]
            if row.empty or not np.isfinite(row["mean"].iloc[0]) or row["mean"].iloc[0] <= 0:
                ax.text(pos, 0.01, "n/a", transform=text_at_bottom, rotation=90, ha="center", va="bottom",
                        fontsize=6, color="0.4")
                continue
            r = row.iloc[0]
            ax.bar(pos, r["mean"], width=width, color=colours[algo], label=algo_label(algo) if i == 0 else None,
                   gid=f"{env}|{algo}")
            ax.errorbar(pos, r["mean"], yerr=[[r["mean"] - r["min"]], [r["max"] - r["mean"]]], fmt="none",
                        ecolor="0.2", lw=0.8, capsize=2)
    ax.set_yscale("log")
    ax.set_xticks(range(len(envs)), envs, rotation=35, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(envs) - 0.4)
    ax.set_ylabel("throughput (env steps / s)")
    ax.set_title("Training throughput (mean over seeds; whiskers: min..max over seeds)", fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3, lw=0.5)
    handles = [Patch(color=colours[a], label=algo_label(a)) for a in algos]
    fig.legend(handles=handles, loc="outside upper right", ncol=len(handles), frameon=False, fontsize=9)
    return fig


# ------------------------------------------------------------ aggregates ----

def _n_envs(n: int) -> str:
    return f"{n} env" + ("" if n == 1 else "s")


def _n_seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def plot_aggregate(stats: dict) -> Figure:
    """IQM of normalised final return per algorithm (and P(EGGROLL > OpenES)) with 95% CIs."""
    iqm = stats["iqm"]
    algos = algo_order(iqm)
    colours = algo_colours(algos)
    poi = stats.get("probability_of_improvement")
    fig = new_figure(figsize=(9.0 if poi else 5.0, 0.5 * len(algos) + 1.6), layout="constrained")
    axes = fig.subplots(1, 2 if poi else 1, squeeze=False)[0]
    ax = axes[0]
    for i, algo in enumerate(algos):
        s = iqm[algo]
        y = len(algos) - 1 - i
        ax.plot([s["ci_low"], s["ci_high"]], [y, y], color=colours[algo], lw=6, alpha=0.45, solid_capstyle="butt")
        ax.plot([s["iqm"]], [y], "|", color=colours[algo], ms=14, mew=2)
    ax.set_yticks(range(len(algos)), [f"{algo_label(a)}\n({_n_envs(len(iqm[a]['envs']))} x "
                                      f"{_n_seeds(iqm[a]['n_seeds_per_env'])})" for a in algos[::-1]])
    ax.set_xlabel("IQM of min-max normalised final return")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.7, len(algos) - 0.3)
    ax.grid(axis="x", alpha=0.3)
    if poi:
        ax = axes[1]
        ax.plot([poi["ci_low"], poi["ci_high"]], [0, 0], color=FIXED_COLOURS["eggroll"], lw=6, alpha=0.45,
                solid_capstyle="butt")
        ax.plot([poi["value"]], [0], "|", color=FIXED_COLOURS["eggroll"], ms=14, mew=2)
        ax.axvline(0.5, color="0.5", ls="--", lw=0.8)
        seeds = poi["n_seeds_per_env"]
        ax.set_yticks([0], [f"P({algo_label(poi['a'])} > {algo_label(poi['b'])})\n({_n_envs(len(poi['envs']))}; "
                            f"{seeds[poi['a']]} vs {seeds[poi['b']]} seeds)"])
        ax.set_xlabel("probability of improvement")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.7, 0.7)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Aggregates (rliable; 95% stratified-bootstrap CIs)", fontsize=10)
    return fig
