"""Statistics over stored results: which trials are shown, final returns, intervals, rliable aggregates.

Input everywhere is the DataFrame of `esbench.results.load`: one row per
(trial, seed, log point). The rules applied here are written out in
`esbench.report.rules.RULES`, which `report.md` restates.

Shown trials: with a protocol's final stage, only its rows (no selection on
the evaluations reported); otherwise the best trial per (env, algo).

Final return of a seed: its evaluation return at its last log point (largest
env_steps) that has a finite `eval_return_mean` and is not marked `diverged`.
A diverged seed therefore stays in every mean with its last finite evaluation
before it diverged (dropping it would flatter the algorithm that diverges); a
seed that diverged before its first evaluation has no final return and is only
counted.

Aggregates follow rliable (Agarwal et al., 2021) and are computed by it:
per-environment min-max normalised final returns, the interquartile mean
(`rliable.metrics.aggregate_iqm`) and the probability of improvement
(`rliable.metrics.probability_of_improvement`), with 95% percentile intervals
from `rliable.library.get_interval_estimates` (stratified bootstrap: seeds
resampled with replacement inside each environment, environments kept fixed).
rliable needs a (seeds, environments) matrix per algorithm, so each
algorithm's matrix keeps the environments where it has final returns and, in
each of them, its seeds with the smallest ids up to the smallest seed count
among those environments (RULES['aggregate_seeds']); what is left out is
counted in the result. Curve bands are the paper's SEM, or the same rliable
bootstrap with one stratum and the log points as a third axis.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy.stats
from rliable import library as rly
from rliable import metrics as rly_metrics

from esbench.algorithms import algorithm_names
from esbench.envs.registry import PAPER_ENVS
from esbench.report.rules import check_band
from esbench.results.schema import METRIC_COLUMNS

# The report reads the results schema; frames written before log_point and simulated_env_steps existed lack them.
OPTIONAL_COLUMNS = ("log_point", "simulated_env_steps")
REQUIRED_COLUMNS = ("trial_id", "env", "algo", *(c for c in METRIC_COLUMNS if c not in OPTIONAL_COLUMNS))
SUMMARY_COLUMNS = ("trial_id", "hparams", "run_s")
CONFIDENCE = 0.95


# ---------------------------------------------------------------- ordering --


def algo_order(algos: Iterable[str]) -> list[str]:
    """Registered algorithms in registry order (built-ins first), then unregistered names alphabetically."""
    algos = set(algos)
    registered = [a for a in algorithm_names() if a in algos]
    return registered + sorted(algos - set(registered))


def env_order(envs: Iterable[str]) -> list[str]:
    """The paper's 16 in paper order first, then any others alphabetically."""
    envs = set(envs)
    return [e for e in PAPER_ENVS if e in envs] + sorted(envs - set(PAPER_ENVS))


# -------------------------------------------------------------- cleaning ----


def check_results(df: pd.DataFrame) -> pd.DataFrame:
    """Validate the schema and return a cleaned copy (typed columns, sorted rows; `stage` 'sweep' where absent)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results DataFrame lacks columns {missing}; expected {list(REQUIRED_COLUMNS)}")
    if len(df) == 0:
        raise ValueError("results DataFrame is empty: no trial has written metrics yet")
    out = df.copy()
    for col in ("trial_id", "env", "algo"):
        out[col] = out[col].astype(str)
    out["seed"] = out["seed"].astype(np.int64)
    for col in (
        "env_steps",
        "wall_clock_s",
        "train_return",
        "eval_return_mean",
        "eval_return_std",
        "throughput_sps",
    ):
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(float)
    # a missing flag means "not diverged"
    out["diverged"] = out["diverged"].astype("boolean").fillna(False).astype(bool)
    # frames written before the protocol command have no stage: they are sweeps
    out["stage"] = out["stage"].fillna("sweep").astype(str) if "stage" in out.columns else "sweep"
    return out.sort_values(["trial_id", "seed", "env_steps", "update"], kind="stable").reset_index(drop=True)


def check_summaries(summaries: pd.DataFrame) -> None:
    """ValueError naming the columns of `esbench.results.load_summaries` the report reads and `summaries` lacks."""
    missing = [c for c in SUMMARY_COLUMNS if c not in summaries.columns]
    if missing:
        raise ValueError(f"trial summaries lack columns {missing}; the report reads {list(SUMMARY_COLUMNS)}")


def valid_evals(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that carry a usable evaluation: finite eval_return_mean, seed not (yet) diverged."""
    return df[np.isfinite(df["eval_return_mean"].to_numpy()) & ~df["diverged"].to_numpy()]


# ---------------------------------------------------------- final returns ---


def final_returns(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (trial, seed): final_return (NaN when never evaluated), final_env_steps, diverged."""
    keys = ["trial_id", "env", "algo", "seed"]
    seeds = df.groupby(keys, sort=False)["diverged"].any().rename("diverged").reset_index()
    last = valid_evals(df).groupby(keys, sort=False).tail(1)
    last = last[keys + ["env_steps", "eval_return_mean"]].rename(
        columns={"env_steps": "final_env_steps", "eval_return_mean": "final_return"}
    )
    out = seeds.merge(last, on=keys, how="left")
    return out[keys + ["final_return", "final_env_steps", "diverged"]]


def select_trials(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep per (env, algo) the trial with the best mean final return.

    Returns (rows of the chosen trials, selection table with one row per (env,
    algo): trial_id, n_candidates, candidates, mean_final_return).
    """
    finals = final_returns(df)
    per_trial = (
        finals.groupby(["env", "algo", "trial_id"])["final_return"]
        .mean()
        .rename("mean_final_return")
        .reset_index()
    )
    rows = []
    for (env, algo), group in per_trial.groupby(["env", "algo"], sort=False):
        # never-evaluated trials rank last; ties go to the smallest id so the choice is deterministic
        group = group.assign(_key=group["mean_final_return"].fillna(-np.inf))
        group = group.sort_values(["_key", "trial_id"], ascending=[False, True], kind="stable")
        best = group.iloc[0]
        rows.append(
            {
                "env": env,
                "algo": algo,
                "trial_id": best["trial_id"],
                "n_candidates": len(group),
                "candidates": sorted(group["trial_id"]),
                "mean_final_return": float(best["mean_final_return"]),
            }
        )
    selection = pd.DataFrame(
        rows, columns=["env", "algo", "trial_id", "n_candidates", "candidates", "mean_final_return"]
    )
    order = {e: i for i, e in enumerate(env_order(selection["env"]))}
    aorder = {a: i for i, a in enumerate(algo_order(selection["algo"]))}
    selection = selection.sort_values(
        ["env", "algo"], key=lambda s: s.map(order if s.name == "env" else aorder)
    )
    chosen = df[df["trial_id"].isin(set(selection["trial_id"]))]
    return chosen.reset_index(drop=True), selection.reset_index(drop=True)


def require_one_trial_per_cell(df: pd.DataFrame) -> None:
    counts = df.groupby(["env", "algo"])["trial_id"].nunique()
    if (counts > 1).any():
        cells = [f"{e}/{a}" for (e, a) in counts[counts > 1].index]
        raise ValueError(f"several trials for {cells}; pass the rows of `reported_trials(df)[0]`")


def reported_trials(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The rows the report shows (rules: RULES['reported_final'] / ['reported_sweep'], ['selection']).

    With a final stage only its rows are read: choosing the shown trial on the
    evaluations it then reports would bias them upwards. Returns (rows,
    selection table as `select_trials`, {final_stage, n_trials, excluded:
    {stage: number of trials left out}}).
    """
    final = (df["stage"] == "final").to_numpy()
    rows = df[final] if final.any() else df
    left_out = df[~final].drop_duplicates("trial_id") if final.any() else df.iloc[:0]
    chosen, selection = select_trials(rows)
    info = {
        "final_stage": bool(final.any()),
        "n_trials": int(rows["trial_id"].nunique()),
        "excluded": {str(k): int(v) for k, v in left_out["stage"].value_counts().sort_index().items()},
    }
    return chosen, selection, info


# -------------------------------------------------------------- intervals ---


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, lower, upper) Student-t interval of the mean; bounds NaN for fewer than 2 values."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(scipy.stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


@contextlib.contextmanager
def seeded_global_rng(*seed: int):
    """Seed numpy's global RNG for the block, then give the caller's state back.

    rliable 1.2's bootstraps draw their indices with `np.random.choice` and never
    use `random_state` (arch only warns that it is deprecated), so the global
    RNG is the one thing that makes their intervals reproducible.
    """
    saved = np.random.get_state()
    np.random.seed(list(seed))
    try:
        yield
    finally:
        np.random.set_state(saved)


def _key_seed(key: str) -> int:
    # a stable per-statistic stream: one algorithm's interval does not depend on which others are shown
    return zlib.crc32(key.encode())


def bootstrap_mean_ci(
    values: np.ndarray, n_bootstrap: int, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean over axis 0 (seeds), for every column (log point).

    rliable's `get_interval_estimates` on a (seeds, 1 task, log points) array:
    its stratified bootstrap with a single stratum resamples the seeds, drawn
    afresh at every log point (a pointwise band).
    """
    x = np.asarray(values, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    with seeded_global_rng(seed):
        _, ci = rly.get_interval_estimates(
            {"curve": x[:, None, :]},
            lambda s: s[:, 0, :].mean(axis=0),
            reps=n_bootstrap,
            confidence_interval_size=confidence,
        )
    lo, hi = ci["curve"]
    return lo, hi


def sem_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mean -+ standard error of the mean over axis 0 (seeds), for every column: the paper's shading."""
    x = np.asarray(values, dtype=float)
    if x.ndim == 1:
        x = x[:, None]
    mean, half = x.mean(axis=0), x.std(axis=0, ddof=1) / math.sqrt(x.shape[0])
    return mean - half, mean + half


def mean_band(
    values: np.ndarray, band: str, n_bootstrap: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The band of a curve's mean over seeds (axis 0): 'sem' or 'bootstrap' (rules.BANDS); needs 2+ seeds."""
    check_band(band)
    if np.shape(values)[0] < 2:
        raise ValueError("a band over seeds needs at least 2 seeds")
    return sem_band(values) if band == "sem" else bootstrap_mean_ci(values, n_bootstrap, seed)


def summarise_finals(finals: pd.DataFrame) -> pd.DataFrame:
    """Per (env, algo): n_seeds (with a final return), n_diverged, n_no_eval, mean, ci_low, ci_high."""
    rows = []
    for (env, algo), g in finals.groupby(["env", "algo"], sort=False):
        vals = g["final_return"].to_numpy(dtype=float)
        ok = np.isfinite(vals)
        mean, lo, hi = t_interval(vals[ok])
        rows.append(
            {
                "env": env,
                "algo": algo,
                "trial_id": g["trial_id"].iloc[0],
                "n_seeds": int(ok.sum()),
                "n_diverged": int(g["diverged"].sum()),
                "n_no_eval": int((~ok).sum()),
                "mean": mean,
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "env",
            "algo",
            "trial_id",
            "n_seeds",
            "n_diverged",
            "n_no_eval",
            "mean",
            "ci_low",
            "ci_high",
        ],
    )


# ------------------------------------------------------- rliable aggregates --


def normalised_scores(finals: pd.DataFrame, references: dict | None = None) -> pd.DataFrame:
    """`finals` (rows with a final return) plus a `score` column: (R - random) / (reference - random) with the
    sweep's fixed reference scores where every env has them, else min-max normalised per environment."""
    f = finals[np.isfinite(finals["final_return"].to_numpy(dtype=float))].copy()
    if uses_references(f, references):
        lo = f["env"].map(lambda e: references[e]["random"]).astype(float)
        hi = f["env"].map(lambda e: references[e]["reference"]).astype(float)
    else:
        lo = f.groupby("env")["final_return"].transform("min")
        hi = f.groupby("env")["final_return"].transform("max")
    span = (hi - lo).to_numpy()
    raw = (f["final_return"] - lo).to_numpy()
    f["score"] = np.where(span > 0, raw / np.where(span > 0, span, 1.0), 0.5)
    return f


def uses_references(finals: pd.DataFrame, references: dict | None) -> bool:
    """Whether every env of `finals` has reference scores (then they, not the observed seeds, normalise)."""
    return bool(references) and all(env in references for env in finals["env"].unique())


def score_matrix(scores: pd.DataFrame, algo: str, envs: Sequence[str]) -> tuple[np.ndarray, int]:
    """(seeds, environments) matrix of `algo`'s normalised scores for rliable, and how many scores it leaves out.

    Every environment keeps its seeds with the smallest ids, as many as the
    fewest-seeded of `envs` has (rule: RULES['aggregate_seeds']).
    """
    s = scores[scores["algo"] == algo].sort_values("seed", kind="stable")
    columns = [s.loc[s["env"] == e, "score"].to_numpy(dtype=float) for e in envs]
    if not columns or min(c.size for c in columns) == 0:
        raise ValueError(f"{algo} has no normalised score in some of {list(envs)}")
    n = min(c.size for c in columns)
    return np.stack([c[:n] for c in columns], axis=1), int(sum(c.size for c in columns) - n * len(columns))


def _iqm(scores: np.ndarray) -> np.ndarray:
    # get_interval_estimates wants a 1-D array from its statistic
    return np.array([rly_metrics.aggregate_iqm(scores)])


def _ci(interval: np.ndarray) -> tuple[float, float]:
    lo, hi = np.ravel(interval)
    return float(lo), float(hi)


def aggregate_statistics(
    finals: pd.DataFrame,
    n_bootstrap: int = 2000,
    seed: int = 0,
    a: str = "eggroll",
    b: str = "openes",
    references: dict | None = None,
) -> dict:
    """IQM of normalised final returns per algorithm, and P(a > b), each with rliable's 95% stratified-bootstrap CI.

    references: the sweep's env -> {random, reference} (normalised_scores). Deterministic given `seed` (a
    non-negative int); numpy's global RNG is left as it was.
    """
    scores = normalised_scores(finals, references)
    result = {
        "normalisation": "reference" if uses_references(finals, references) else "min-max",
        "n_bootstrap": int(n_bootstrap),
        "seed": int(seed),
        "iqm": {},
        "probability_of_improvement": None,
    }
    for algo in algo_order(scores["algo"]):
        envs = env_order(scores.loc[scores["algo"] == algo, "env"])
        matrix, dropped = score_matrix(scores, algo, envs)
        with seeded_global_rng(seed, _key_seed(f"iqm|{algo}")):
            point, ci = rly.get_interval_estimates(
                {algo: matrix}, _iqm, reps=n_bootstrap, confidence_interval_size=CONFIDENCE
            )
        lo, hi = _ci(ci[algo])
        result["iqm"][algo] = {
            "iqm": float(point[algo][0]),
            "ci_low": lo,
            "ci_high": hi,
            "envs": envs,
            "n_seeds_per_env": int(matrix.shape[0]),
            "n_scores": int(matrix.size),
            "n_dropped": dropped,
        }
    algos = set(scores["algo"])
    if a in algos and b in algos:
        envs = [e for e in env_order(scores["env"]) if {a, b} <= set(scores.loc[scores["env"] == e, "algo"])]
        if envs:
            (xa, dropped_a), (xb, dropped_b) = score_matrix(scores, a, envs), score_matrix(scores, b, envs)
            key = f"{a},{b}"
            # a list of two matrices: rliable resamples each algorithm's seeds independently (their counts may differ)
            with seeded_global_rng(seed, _key_seed(f"poi|{key}")):
                point, ci = rly.get_interval_estimates(
                    {key: [xa, xb]},
                    rly_metrics.probability_of_improvement,
                    reps=n_bootstrap,
                    confidence_interval_size=CONFIDENCE,
                )
            lo, hi = _ci(ci[key])
            result["probability_of_improvement"] = {
                "a": a,
                "b": b,
                "value": float(point[key]),
                "ci_low": lo,
                "ci_high": hi,
                "conclusive": not lo <= 0.5 <= hi,  # 0.5: neither tends to score higher
                "envs": envs,
                "n_seeds_per_env": {a: int(xa.shape[0]), b: int(xb.shape[0])},
                "n_dropped": {a: dropped_a, b: dropped_b},
            }
    return result


# ------------------------------------------------------------- throughput ---


def throughput_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (env, algo): mean over seeds of each seed's mean finite throughput_sps, and the seeds' min/max."""
    finite = df[np.isfinite(df["throughput_sps"].to_numpy())]
    per_seed = finite.groupby(["env", "algo", "seed"])["throughput_sps"].mean().reset_index()
    out = (
        per_seed.groupby(["env", "algo"])["throughput_sps"].agg(["mean", "min", "max", "count"]).reset_index()
    )
    return out.rename(columns={"count": "n_seeds"})
