"""The paper's figures from stored results: Figure 14 return grids, Figure 4a, Figure 15, throughput, aggregates.

Every plotting function takes the rows of the shown trials (one trial per
(env, algo), see `aggregate.reported_trials`) or numbers computed from them,
and returns a matplotlib Figure drawn on the non-interactive Agg canvas;
nothing goes through pyplot, so no global state changes and nothing opens a
window. An algorithm's colour, marker and dash follow its place in the
algorithm registry, so a baseline looks the same in every report.
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
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from matplotlib.transforms import blended_transform_factory

from esbench import paper
from esbench.algorithms import algorithm_label, algorithm_names
from esbench.report.aggregate import algo_order, env_order, mean_band, require_one_trial_per_cell, valid_evals
from esbench.report.curves import aligned_curves
from esbench.report.rules import BANDS
from esbench.report.tables import plural
from esbench.results import atomic_file

# Okabe-Ito colours (colour-blind safe) first; EGGROLL, OpenES and PPO, registered first, get the first three.
PALETTE = (
    "#D55E00",
    "#0072B2",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#999999",
    "#8C564B",
    "#BCBD22",
    "#F0E442",
)
# Markers and dashes too, so that curves lying on top of each other (equal returns) stay visible.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", ":", "-.")
X_LABELS = {"env_steps": "env steps", "wall_clock_s": "wall-clock (s)"}
GRID_COLUMNS = 4


def algo_index(algos) -> dict[str, int]:
    """Style index per algorithm: its position in `algorithm_names()`; unregistered names (alphabetically) after."""
    registered = algorithm_names()
    others = sorted(set(algos) - set(registered))
    return {a: registered.index(a) if a in registered else len(registered) + others.index(a) for a in algos}


def algo_colours(algos) -> dict[str, str]:
    """A palette colour per algorithm, fixed by its place in the registry (`algo_index`)."""
    return {a: PALETTE[i % len(PALETTE)] for a, i in algo_index(algos).items()}


def algo_styles(algos) -> dict[str, dict]:
    """Line colour, marker and dash per algorithm, fixed by its place in the registry (`algo_index`)."""
    return {
        a: {
            "color": PALETTE[i % len(PALETTE)],
            "marker": MARKERS[i % len(MARKERS)],
            "ls": LINESTYLES[i % len(LINESTYLES)],
        }
        for a, i in algo_index(algos).items()
    }


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
        with atomic_file(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=dpi)
        paths.append(path)
    return paths


# ------------------------------------------------------------- curves -------


def _grid_shape(n: int) -> tuple[int, int]:
    ncols = min(GRID_COLUMNS, n)
    return math.ceil(n / ncols), ncols


def grid_envs(df: pd.DataFrame) -> list[str]:
    """Environments that get a panel: those with at least one usable evaluation."""
    return env_order(valid_evals(df)["env"].unique())


def panel_title(env: str) -> str:
    """The paper's panel title for its environments (Figures 14 and 15), the id for others."""
    try:
        return paper.panel_title(env)
    except paper.TableError:
        return env


def _panel_grid(n: int, width: float, height: float, legend_height: float):
    """A figure of `n` panels in rows of GRID_COLUMNS: (figure, the n axes in reading order, columns)."""
    nrows, ncols = _grid_shape(n)
    fig = new_figure(figsize=(width * ncols, height * nrows + legend_height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[n:]:
        fig.delaxes(ax)
    return fig, list(axes.flat[:n]), ncols


def _label_panel(ax, k: int, n: int, ncols: int, xlabel: str, ylabel: str) -> None:
    """Panel k of n: the y label on the first column, the x label where no panel sits below, a light grid."""
    ax.tick_params(labelsize=8)
    if k % ncols == 0:
        ax.set_ylabel(ylabel, fontsize=9)
    if k + ncols >= n:  # nothing below this panel
        ax.set_xlabel(xlabel, fontsize=9)
    ax.grid(alpha=0.3, lw=0.5)


def _band_patch(band: str) -> Patch:
    return Patch(color="0.5", alpha=0.3, label=BANDS[band])


def plot_return_grid(
    df: pd.DataFrame, x: str = "env_steps", band: str = "sem", n_bootstrap: int = 2000, seed: int = 0
) -> Figure:
    """Figure 14: one panel per environment, mean evaluation return over seeds with a band (rules.BANDS)."""
    if x not in X_LABELS:
        raise ValueError(f"x must be one of {list(X_LABELS)}, got {x!r}")
    require_one_trial_per_cell(df)
    envs = grid_envs(df)
    if not envs:
        raise ValueError("no environment has an evaluation return to plot")
    algos = algo_order(df["algo"].unique())
    styles = algo_styles(algos)
    fig, axes, ncols = _panel_grid(len(envs), 3.6, 2.8, 0.6)
    for k, (env, ax) in enumerate(zip(envs, axes)):
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
            ax.plot(xs, vals.mean(axis=0), lw=1.6, ms=3.5, label=algorithm_label(algo), **styles[algo])
            if vals.shape[0] > 1:
                lo, hi = mean_band(vals, band, n_bootstrap, seed)
                ax.fill_between(xs, lo, hi, color=styles[algo]["color"], alpha=0.22, lw=0)
        title = panel_title(env)
        if missing:
            title += f"\nno results: {', '.join(algorithm_label(a) for a in missing)}"
        ax.set_title(title, fontsize=9)
        if x == "env_steps":
            ax.xaxis.set_major_formatter(FuncFormatter(human_count))
        else:  # methods differ by orders of magnitude in speed; linear time would squash the fast ones
            ax.set_xscale("log")
            label_log_axis(ax.xaxis)
        _label_panel(ax, k, len(envs), ncols, X_LABELS[x], "return")
    handles = [Line2D([], [], lw=2, label=algorithm_label(a), **styles[a]) for a in algos]
    handles.append(_band_patch(band))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=9)
    fig.suptitle(f"Evaluation return against {X_LABELS[x]}", fontsize=11)
    return fig


def plot_ppo_normalised(data: dict, band: str) -> Figure:
    """Figure 4a: PPO-normalised return averaged over environments; `data` is `curves.ppo_normalised_curves`."""
    algos = list(data["curves"])
    styles = algo_styles(algos)
    fig = new_figure(figsize=(6.0, 4.2), layout="constrained")
    ax = fig.subplots()
    for algo in algos:
        c = data["curves"][algo]
        label = (
            f"{algorithm_label(algo)} ({plural(len(c['envs']), 'env')}, {plural(len(c['seeds']), 'seed')})"
        )
        ax.plot(
            data["grid"],
            c["mean"],
            lw=1.6,
            ms=3.0,
            markevery=max(1, len(data["grid"]) // 20),
            label=label,
            **styles[algo],
        )
        if np.isfinite(c["low"]).any():
            ax.fill_between(data["grid"], c["low"], c["high"], color=styles[algo]["color"], alpha=0.22, lw=0)
    ax.axhline(1.0, color="0.5", ls="--", lw=0.8)
    if data["x"] == "env_steps":
        ax.xaxis.set_major_formatter(FuncFormatter(human_count))
        ax.set_xlabel("env steps")
    else:
        ax.set_xlabel("fraction of each run's final env steps (runs end at different env steps)")
    ax.set_ylabel("return normalised by PPO's final return")
    ax.grid(alpha=0.3, lw=0.5)
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(handles=[*handles, _band_patch(band)], fontsize=8, frameon=False)
    ax.set_title(
        f"PPO-normalised return, mean over {plural(len(data['envs']), 'env')} (Figure 4a)", fontsize=10
    )
    return fig


def plot_training_time(times: dict) -> Figure:
    """Figure 15: training seconds of EGGROLL and OpenES per environment (log scale), our ratio above each pair.

    `times` is `comparison.training_time`.
    """
    rows, pair = times["rows"], (times["a"], times["b"])
    colours = algo_colours(pair)
    fig = new_figure(figsize=(max(5.0, 0.9 * len(rows) + 2), 4.4), layout="constrained")
    ax = fig.subplots()
    for i, r in enumerate(rows):
        for j, algo in enumerate(pair):
            ax.bar(
                i + (j - 0.5) * 0.4,
                r["run_s"][algo],
                width=0.4,
                color=colours[algo],
                gid=f"{r['env']}|{algo}",
            )
        ax.annotate(
            r["label"],
            (i, max(r["run_s"].values())),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            fontsize=7,
        )
    ax.set_yscale("log")
    # a log axis has no zero: start well below the shortest bar so that every bar shows
    ax.set_ylim(bottom=0.5 * min(min(r["run_s"].values()) for r in rows))
    ax.set_xticks(
        range(len(rows)), [panel_title(r["env"]) for r in rows], rotation=35, ha="right", fontsize=8
    )
    ax.set_ylabel("training time (s)")
    ax.set_title(
        f"Training time, {algorithm_label(pair[0])} vs {algorithm_label(pair[1])} (Figure 15)", fontsize=10
    )
    ax.grid(axis="y", which="both", alpha=0.3, lw=0.5)
    fig.legend(
        handles=[Patch(color=colours[a], label=algorithm_label(a)) for a in pair],
        loc="outside upper right",
        ncol=2,
        frameon=False,
        fontsize=9,
    )
    return fig


# ---------------------------------------------------------- throughput ------


def plot_throughput(summary: pd.DataFrame) -> Figure:
    """Grouped bars (log scale): env steps per second per environment and algorithm.

    `summary` is `aggregate.throughput_summary(df)`.
    """
    envs = env_order(summary["env"].unique())
    algos = algo_order(summary["algo"].unique())
    colours = algo_colours(algos)
    fig = new_figure(
        figsize=(min(18.0, max(6.0, 0.25 * len(envs) * len(algos) + 2)), 4.6), layout="constrained"
    )
    ax = fig.subplots()
    width = 0.8 / len(algos)
    text_at_bottom = blended_transform_factory(ax.transData, ax.transAxes)
    for j, algo in enumerate(algos):
        for i, env in enumerate(envs):
            pos = i - 0.4 + width * (j + 0.5)
            row = summary[(summary["env"] == env) & (summary["algo"] == algo)]
            if row.empty or not np.isfinite(row["mean"].iloc[0]) or row["mean"].iloc[0] <= 0:
                ax.text(
                    pos,
                    0.01,
                    "n/a",
                    transform=text_at_bottom,
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=6,
                    color="0.4",
                )
                continue
            r = row.iloc[0]
            ax.bar(
                pos,
                r["mean"],
                width=width,
                color=colours[algo],
                label=algorithm_label(algo) if i == 0 else None,
                gid=f"{env}|{algo}",
            )
            # clipped at 0: the mean of equal values can round one ulp past them
            whiskers = [[max(0.0, r["mean"] - r["min"])], [max(0.0, r["max"] - r["mean"])]]
            ax.errorbar(pos, r["mean"], yerr=whiskers, fmt="none", ecolor="0.2", lw=0.8, capsize=2)
    ax.set_yscale("log")
    ax.set_xticks(range(len(envs)), envs, rotation=35, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(envs) - 0.4)
    ax.set_ylabel("throughput (env steps / s)")
    ax.set_title("Training throughput (mean over seeds; whiskers: min..max over seeds)", fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3, lw=0.5)
    handles = [Patch(color=colours[a], label=algorithm_label(a)) for a in algos]
    fig.legend(handles=handles, loc="outside upper right", ncol=len(handles), frameon=False, fontsize=9)
    return fig


# ------------------------------------------------------------ aggregates ----


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
        ax.plot(
            [s["ci_low"], s["ci_high"]], [y, y], color=colours[algo], lw=6, alpha=0.45, solid_capstyle="butt"
        )
        ax.plot([s["iqm"]], [y], "|", color=colours[algo], ms=14, mew=2)
    ax.set_yticks(
        range(len(algos)),
        [
            f"{algorithm_label(a)}\n({plural(len(iqm[a]['envs']), 'env')} x "
            f"{plural(iqm[a]['n_seeds_per_env'], 'seed')})"
            for a in algos[::-1]
        ],
    )
    ax.set_xlabel("IQM of min-max normalised final return")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.7, len(algos) - 0.3)
    ax.grid(axis="x", alpha=0.3)
    if poi:
        ax = axes[1]
        colour = algo_colours([poi["a"]])[poi["a"]]
        ax.plot(
            [poi["ci_low"], poi["ci_high"]], [0, 0], color=colour, lw=6, alpha=0.45, solid_capstyle="butt"
        )
        ax.plot([poi["value"]], [0], "|", color=colour, ms=14, mew=2)
        ax.axvline(0.5, color="0.5", ls="--", lw=0.8)
        seeds = poi["n_seeds_per_env"]
        ax.set_yticks(
            [0],
            [
                f"P({algorithm_label(poi['a'])} > {algorithm_label(poi['b'])})\n"
                f"({plural(len(poi['envs']), 'env')}; {seeds[poi['a']]} vs {seeds[poi['b']]} seeds)"
            ],
        )
        ax.set_xlabel("probability of improvement")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.7, 0.7)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Aggregates (rliable; 95% stratified-bootstrap CIs)", fontsize=10)
    return fig


def plot_search(search: dict) -> Figure:
    """Per (env, algorithm): every search point's tuning score (ranked best first), the re-selection scores of the
    points re-run, and the winner's final mean on fresh seeds (report.search)."""
    pairs = search["pairs"]
    algos = algo_order({p["algo"] for p in pairs})
    styles = algo_styles(algos)
    fig, axes, ncols = _panel_grid(len(pairs), 3.2, 2.6, 0.7)
    for k, (p, ax) in enumerate(zip(pairs, axes)):
        points = sorted(p["points"], key=lambda q: (q["tuning_score"] is None, -(q["tuning_score"] or 0.0)))
        ranks = np.arange(1, len(points) + 1)
        tuning = np.array(
            [np.nan if q["tuning_score"] is None else q["tuning_score"] for q in points], dtype=float
        )
        again = np.array(
            [np.nan if q["reselect_score"] is None else q["reselect_score"] for q in points], dtype=float
        )
        colour = styles[p["algo"]]["color"]
        ax.plot(ranks, tuning, "o", ms=4, color="0.55", label="tuning score")
        if np.isfinite(again).any():
            ax.plot(ranks, again, "^", ms=5, color=colour, mfc="none", label="re-selection score")
        winner = next(i for i, q in enumerate(points) if q["trial_id"] == p["winner"])
        if p["final_mean"] is not None:
            ax.plot([ranks[winner]], [p["final_mean"]], "*", ms=11, color=colour, label="winner's final mean")
        ax.set_title(f"{panel_title(p['env'])}, {algorithm_label(p['algo'])}", fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        _label_panel(ax, k, len(pairs), ncols, "search rank by tuning score", "mean final return")
    handles = [
        Line2D([], [], ls="", marker="o", color="0.55", label="tuning score (search point)"),
        Line2D([], [], ls="", marker="*", ms=10, color="0.2", label="winner's final mean (fresh seeds)"),
    ]
    if search["reselected"]:
        handles.insert(
            1, Line2D([], [], ls="", marker="^", mfc="none", color="0.2", label="re-selection score")
        )
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), max(ncols, 2)),
        frameon=False,
        fontsize=9,
    )
    fig.suptitle("The search: tuning scores, re-selection and the winner on fresh seeds", fontsize=11)
    return fig
