"""Evaluation curves: one trial's seeds on their shared log points, and Figure 4a's PPO-normalised average.

Figures draw these arrays; `summary.json` stores the normalised one, so the
numbers and the picture come from one computation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from esbench.algorithms import algorithm_label
from esbench.report.aggregate import algo_order, env_order, mean_band, valid_evals

# |R_ppo - R0| at or below this times max(1, |R0|, |R_ppo|) counts as zero (RULES['ppo_normalisation'])
NORMALISATION_TOL = 1e-9


def aligned_curves(rows: pd.DataFrame) -> dict:
    """Evaluation curves of one (env, algo) trial, seeds aligned on their common log points.

    Seeds share log points, not env steps: an ES seed's chunk ends when its own
    env steps pass the chunk's target, a little apart from the others'. The x
    values of a log point are the means over seeds of env_steps and
    wall_clock_s (frames without a log_point column align on env_steps). A
    diverged seed's last finite evaluation is carried forward past its
    divergence (rule: RULES['diverged']); seeds never evaluated are dropped.
    Returns env_steps (P,), wall_clock_s (P,), values (n_seeds, P) and the seed ids.
    """
    ev = valid_evals(rows)
    empty = {"env_steps": np.zeros(0), "wall_clock_s": np.zeros(0), "values": np.zeros((0, 0)), "seeds": []}
    if ev.empty:
        return empty
    point = "log_point" if "log_point" in rows.columns else "env_steps"
    values = ev.pivot_table(index=point, columns="seed", values="eval_return_mean", aggfunc="last")
    diverged = rows.groupby("seed")["diverged"].any()
    for seed in values.columns:
        if diverged.get(seed, False):
            col = values[seed]
            last = col.last_valid_index()
            values.loc[values.index > last, seed] = col[last]
    values = values.dropna(axis=0, how="any")
    if values.empty:
        return empty
    x = {
        column: (
            values.index.to_numpy(dtype=float)
            if column == point
            else rows.pivot_table(index=point, columns="seed", values=column, aggfunc="last")
            .reindex(values.index)
            .mean(axis=1, skipna=True)
            .to_numpy(dtype=float)
        )
        for column in ("env_steps", "wall_clock_s")
    }
    return {**x, "values": values.to_numpy(dtype=float).T, "seeds": [int(s) for s in values.columns]}


def _normalising_returns(rows: pd.DataFrame, summary: pd.DataFrame, env: str) -> tuple[dict, float] | str:
    """({algo: R0}, R_ppo) of one environment, or why it cannot be normalised."""
    ppo = summary[(summary["env"] == env) & (summary["algo"] == "ppo") & (summary["n_seeds"] > 0)]
    if ppo.empty:
        return "no PPO result"
    at_zero = valid_evals(rows)
    at_zero = at_zero[at_zero["env_steps"] == 0]
    r0 = {algo: float(v) for algo, v in at_zero.groupby("algo")["eval_return_mean"].mean().items()}
    r_ppo = float(ppo["mean"].iloc[0])
    if "ppo" not in r0 or set(r0) != set(rows["algo"].unique()):
        return "no evaluation at env step 0"
    for algo, base in r0.items():
        if abs(r_ppo - base) <= NORMALISATION_TOL * max(1.0, abs(base), abs(r_ppo)):
            return f"PPO's final return equals an untrained policy's ({algorithm_label(algo)}'s)"
    return r0, r_ppo


def ppo_normalised_curves(
    df: pd.DataFrame, summary: pd.DataFrame, band: str, n_bootstrap: int, seed: int = 0
) -> dict:
    """Figure 4a: return normalised by PPO, averaged over environments (rule: RULES['ppo_normalisation']).

    `df` holds the shown trials' rows, `summary` is `aggregate.summarise_finals`
    of them. Returns {x: 'env_steps' | 'fraction', grid, envs, left_out: {env:
    why}, curves: {algo: {envs, seeds, mean, low, high}}} (low/high NaN with
    one seed), normalising_returns: {env: {r0: {algo: R0}, r_ppo}}.
    """
    envs, left_out, per_curve, untrained = [], {}, {}, {}
    for env in env_order(df["env"].unique()):
        rows = df[df["env"] == env]
        norm = _normalising_returns(rows, summary, env)
        if isinstance(norm, str):
            left_out[env] = norm
            continue
        r0, r_ppo = norm
        envs.append(env)
        untrained[env] = {"r0": r0, "r_ppo": r_ppo}
        for algo, algo_rows in rows.groupby("algo"):
            c = aligned_curves(algo_rows)
            if c["env_steps"].size and c["env_steps"][-1] > 0:
                per_curve[env, algo] = (
                    c["env_steps"],
                    (c["values"] - r0[algo]) / (r_ppo - r0[algo]),
                    c["seeds"],
                )
    by_steps = len({x[-1] for x, _, _ in per_curve.values()}) == 1
    scaled = {k: (x if by_steps else x / x[-1], v, s) for k, (x, v, s) in per_curve.items()}
    grid = np.unique(np.concatenate([x for x, _, _ in scaled.values()])) if scaled else np.zeros(0)
    curves = {}
    for algo in algo_order({a for _, a in scaled}):
        algo_envs = [e for e in envs if (e, algo) in scaled]
        seeds = sorted(set.intersection(*(set(scaled[e, algo][2]) for e in algo_envs)))
        if not seeds:
            continue
        per_seed = np.mean(
            [
                [np.interp(grid, x, v[s_seeds.index(s)]) for s in seeds]
                for x, v, s_seeds in (scaled[e, algo] for e in algo_envs)
            ],
            axis=0,
        )
        low, high = (
            mean_band(per_seed, band, n_bootstrap, seed)
            if len(seeds) > 1
            else (np.full(grid.size, np.nan),) * 2
        )
        curves[algo] = {
            "envs": algo_envs,
            "seeds": seeds,
            "mean": per_seed.mean(axis=0),
            "low": low,
            "high": high,
        }
    return {
        "x": "env_steps" if by_steps else "fraction",
        "grid": grid,
        "envs": envs,
        "left_out": left_out,
        "normalising_returns": untrained,
        "curves": curves,
    }
