"""The report's rules, as the sentences `report.md` and `summary.json` print.

One place for them, so that what the code does and what the report says it
does are read side by side. Some rules have alternatives (the curve band, how
the shown trials were chosen); `rules_used` picks the ones a report applied.
"""

from __future__ import annotations

from esbench.validation import ConfigError

BANDS = {"sem": "mean ± SEM over seeds", "bootstrap": "95% bootstrap CI of the mean over seeds"}

RULES = {
    "final_return": "Final return of a seed = its evaluation return at its last log point (largest env_steps) "
    "with a finite eval_return_mean that is not marked diverged.",
    "diverged": "Diverged seeds are kept, with their last finite evaluation before divergence (in curves it is "
    "carried forward to later log points); a seed that diverged before its first evaluation has no "
    "final return and is only counted (n_no_eval).",
    "reported_final": "Final stage only: the results have trials of stage 'final' (each search winner re-run on "
    "fresh seeds), so every figure, table and statistic reads only those rows; search-stage and "
    "sweep trials are left out, and no reported evaluation was used to choose what is reported.",
    "reported_sweep": "No final stage: per (env, algo) the trial with the highest mean final return is shown. The "
    "choice uses the same evaluations the report shows, so the shown returns are biased upwards "
    "(the protocol's final stage, fresh seeds for the chosen configuration, avoids this).",
    "selection": "When several trials share (env, algo), the trial with the highest mean final return over its "
    "seeds is shown (ties: smallest trial id).",
    "table_ci": "Table intervals: 95% Student-t interval of the mean over seeds, mean +- t(0.975, n-1) * s / sqrt(n) "
    "with s the sample standard deviation (ddof=1); with one seed no interval is given.",
    "curve_band_sem": "Curve bands (the paper's): mean +- standard error of the mean over seeds, s / sqrt(n) with s "
    "the sample standard deviation (ddof=1), at the log points all of a curve's seeds share; no "
    "band with one seed. The wall-clock x value of a point is the mean over seeds of wall_clock_s.",
    "curve_band_bootstrap": "Curve bands: 95% percentile bootstrap interval of the mean over seeds (rliable "
    "get_interval_estimates: seeds resampled with replacement at each log point, fixed RNG "
    "seed), at the log points all of a curve's seeds share; no band with one seed. The "
    "wall-clock x value of a point is the mean over seeds of wall_clock_s.",
    "head_to_head": "EGGROLL vs OpenES per environment: Welch's t-test (two-sided, unequal variances: scipy's "
    "ttest_ind with equal_var=False, computed from the samples' means and ddof=1 standard "
    "deviations) on the two sets of per-seed final returns at level alpha: p < alpha and a higher "
    "EGGROLL mean = outperforms, p < alpha and a lower mean = underperforms, otherwise competitive. "
    "Degenerate cases: fewer than 2 seeds on either side = competitive (no test); both samples "
    "constant = p 1 if equal (competitive), p 0 if not (the higher one wins). N counts environments "
    "where both have final returns.",
    "best": "Bold = highest mean final return in the row (all of them if tied).",
    "normalisation": "rliable scores: (R - random) / (reference - random) with the sweep's fixed reference scores "
    "(`references`) when every env has them (rliable's practice: one extreme seed cannot set an env's scale); "
    "otherwise (R - min) / (max - min), min and max over the final returns of every seed of every algorithm "
    "shown in that environment (0.5 for all if max == min); summary.json's aggregate.normalisation says which.",
    "aggregate": "IQM of normalised scores over all (environment, seed) entries of an algorithm's score matrix; "
    "probability of improvement P(EGGROLL > OpenES) = P(X > Y) + P(X = Y) / 2 per environment, averaged "
    "over the environments where both have results. Both computed by rliable (metrics.aggregate_iqm, "
    "metrics.probability_of_improvement) with 95% percentile intervals from its stratified bootstrap "
    "(library.get_interval_estimates: seeds resampled within each environment, environments fixed; "
    "numpy's global RNG seeded from the report seed for the call and restored after). A probability of "
    "improvement whose interval contains 0.5 is inconclusive. With few seeds per environment the percentile "
    "bootstrap covers less than its nominal 95%, and over few environments the IQM's trimmed middle is mostly one "
    "environment's seeds: read these aggregates as descriptive.",
    "aggregate_seeds": "rliable needs the same number of seeds in every environment: an algorithm's score matrix "
    "has the environments where it has final returns (for P(EGGROLL > OpenES): where both "
    "have) and in each the seeds with the smallest ids, as many as its fewest-seeded such "
    "environment has; the seeds left out are counted (dropped) and still count in the "
    "normalisation, tables and curves.",
    "ppo_normalisation": "Figure 4a: per environment, normalised return = (R - R0) / (R_ppo - R0), R0 = the "
    "algorithm's own mean evaluation return at env step 0 over its seeds (its untrained policy, as the "
    "learned table has it), R_ppo = PPO's mean final return. Environments without PPO, "
    "without an evaluation at env step 0 for every algorithm, or with |R_ppo - R0| <= 1e-9 * max(1, |R0|, "
    "|R_ppo|) are left out and listed. Each seed's normalised curve is interpolated linearly "
    "onto a common x grid (the union of the curves' log points): env steps when every curve "
    "ends at the same env steps, else the fraction of its own last log point's env steps. Seed "
    "s's curves are averaged over the environments where the algorithm has results (only "
    "seeds present in all of them), and the mean and band are taken over those per-seed "
    "averages.",
    "training_time": "Training time (Figure 15): run_s of the shown trial (training seconds of all its seeds, "
    "which run together, compile time excluded), per environment where EGGROLL and OpenES both "
    "have one; ratio = slower / faster, written as EGGROLL relative to OpenES ('2.10x faster': "
    "OpenES took 2.10 times as long). Paper: Figure 15's label for the environment.",
    "hparams": "Hyperparameters: for each shown trial, the resolved values of the fields the paper's table row "
    "has (the paper's chosen configuration, esbench.paper.row), with the paper's choice in "
    "parentheses and in bold where they differ (numbers compared with a relative tolerance of 1e-9).",
    "matched": "Matched comparison (the protocol's matched stage): per env and configuration (OpenES's final one, "
    "run by EGGROLL too; EGGROLL's, run by OpenES too), the per-seed differences of final return EGGROLL - "
    "OpenES on the seeds both have, and their paired 95% Student-t interval, mean +- t(0.975, n-1) * s / "
    "sqrt(n) with s the ddof=1 standard deviation of the differences: above 0 = EGGROLL higher, below 0 = "
    "lower, containing 0 = no difference detected (also with fewer than 2 paired seeds).",
    "winners_curse": "Tuning score = a search trial's mean final return over its tuning seeds (the score it was "
    "selected on; with re-selection its re-selection score is shown beside it). Winner's curse = the "
    "winner's tuning score minus the mean final return of its final-stage trial (fresh seeds): how "
    "much the selection flattered it. Pairs whose winner's tuning score is at the env's declared return "
    "cap (references: cap, e.g. CartPole's 500: the curse is then positive by construction) are named and "
    "left out of the count. Each curse carries the standard error of the final mean (s / sqrt(n) over the "
    "final seeds); with one tuning seed the tuning score's own noise cannot be estimated and is not in it.",
    "learned": "Learned = the final mean is above the untrained policy's return by more than the final mean's 95% "
    "half-width (rule table_ci); untrained = the same trial's mean evaluation return at env step 0 over its "
    "seeds (each algorithm's own untrained policy: its network, initialisation and action rule).",
    "verdicts": "Verdicts at a margin: delta = margin x (reference - random), the sweep's declared reference "
    "scores of the env (reference: a declared good return; random: a uniformly random policy's mean return, "
    "`esbench envs --random-return`). Per comparison, the difference EGGROLL - OpenES of mean final returns: "
    "tuned = the two final-stage trials' seeds (Welch's t interval), matched = the per-seed differences "
    "(paired t interval). Where a side has 2 or more seeds at the env's declared return cap (references: cap, e.g. "
    "CartPole's 500) the t interval is replaced by a percentile bootstrap (10,000 "
    "resamples of the seeds, fixed RNG seed). better / worse = the 95% interval excludes 0; equivalent = the "
    "90% interval lies inside (-delta, delta) (TOST, two one-sided 5% tests); non-inferior = the 90% "
    "interval's lower end is above -delta; otherwise inconclusive. Per-comparison verdicts are not adjusted "
    "for multiplicity; the non-inferiority count across a family (the envs, or the matched pairs) uses Holm's "
    "step-down rule at 5% family-wise on the one-sided p-values of H0: difference <= -delta. Smallest "
    "detectable gap = (t(0.975, dof) + t(0.8, dof)) x the standard error: the true difference the 95% test "
    "detects with 80% power. A margin given to `esbench report --margin` that differs from the declared one "
    "is labelled post hoc.",
    "competence": "Per seed: its final return against its own evaluation at env step 0 (its untrained policy). "
    "learned = above it and at or above the competence threshold, random + competence x (reference - random) "
    "with the sweep's declared competence and the env's reference scores; improved = above it but below the "
    "threshold; not learned = not above it.",
    "throughput": "Throughput = mean over seeds of each seed's mean finite throughput_sps over its log points (env "
    "steps per second of training, compile time excluded); whiskers span the seeds' min..max.",
}


def check_band(band: str) -> None:
    if band not in BANDS:
        raise ConfigError(f"band must be one of {list(BANDS)}, got {band!r}")


def rules_used(band: str, final_stage: bool, with_summaries: bool) -> dict[str, str]:
    """The rules a report applied: drawn with `band`, from a final stage or not, with trial summaries or not.

    Alternatives appear under one name (reported_trials, curve_band); the
    training-time and hyperparameter rules only when summaries were given.
    """
    check_band(band)
    chosen = {
        "reported_trials": RULES["reported_final" if final_stage else "reported_sweep"],
        "curve_band": RULES[f"curve_band_{band}"],
    }
    left_out = {"reported_final", "reported_sweep", *(f"curve_band_{b}" for b in BANDS)}
    if not with_summaries:
        left_out |= {"training_time", "hparams"}
    return {**chosen, **{k: v for k, v in RULES.items() if k not in left_out}}
