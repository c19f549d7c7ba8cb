"""Verdicts that say how sure they are: EGGROLL - OpenES against a margin declared before the run.

The margin is a fraction of an env's reference gain (the sweep's `references`: reference return minus a
uniformly random policy's), so `delta = margin * (reference - random)` is in return units. Each comparison
(tuned: two sets of final seeds; matched: paired seeds) gets an interval for the difference of mean final
returns and one verdict (RULES['verdicts']):

- better / worse: the 95% interval excludes 0;
- equivalent: the 90% interval lies inside (-delta, delta) (TOST: two one-sided 5% tests);
- non-inferior: the 90% interval's lower end is above -delta (a one-sided 5% test);
- inconclusive: anything else.

Returns at a cap (CartPole's 500) are not normal: a comparison where a side has two or more seeds at the
env's declared cap gets a percentile bootstrap interval instead of Student's t.
Each comparison also carries its minimum detectable effect (MDE): the true difference its 95% test would
detect with 80% power, and `seeds_needed` plans the seeds a conclusive verdict needs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import scipy.stats

from esbench.validation import ConfigError

ALPHA = 0.05  # two-sided for better/worse; each one-sided test of TOST and non-inferiority is at ALPHA too
POWER = 0.8
BOOTSTRAP_RESAMPLES = 10_000
KINDS = ("better", "equivalent", "non-inferior", "inconclusive", "worse")


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) with its standard error, degrees of freedom and intervals (return units)."""

    estimate: float
    se: float
    dof: float
    ci95: tuple[float, float]
    ci90: tuple[float, float]
    method: str  # "welch", "paired-t", "bootstrap" or "none"
    p_noninferior: float  # one-sided p of H0: difference <= -delta


def check_margin(margin: float) -> None:
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 < margin < 1:
        raise ConfigError(
            f"--margin = {margin!r} is invalid; allowed: a number in (0, 1), a fraction of each env's reference gain"
        )


def is_capped(values, cap: float | None) -> bool:
    """Two or more seeds at the env's return cap (None: the env has none)."""
    return cap is not None and int(np.sum(np.asarray(values, dtype=float) >= cap)) >= 2


def _t_difference(estimate: float, se: float, dof: float, delta: float, method: str) -> Difference:
    if se == 0:  # no spread at all: the difference is known exactly
        p = 0.0 if estimate > -delta else 1.0
        return Difference(estimate, 0.0, dof, (estimate, estimate), (estimate, estimate), method, p)
    t95, t90 = (scipy.stats.t.ppf(q, dof) for q in (1 - ALPHA / 2, 1 - ALPHA))
    p = float(scipy.stats.t.sf((estimate + delta) / se, dof))
    return Difference(
        estimate,
        se,
        dof,
        (estimate - t95 * se, estimate + t95 * se),
        (estimate - t90 * se, estimate + t90 * se),
        method,
        p,
    )


def _bootstrap_difference(draws: np.ndarray, estimate: float, dof: float, delta: float) -> Difference:
    """Percentile intervals of the resampled differences `draws`."""
    lo95, lo90, hi90, hi95 = np.quantile(draws, [ALPHA / 2, ALPHA, 1 - ALPHA, 1 - ALPHA / 2])
    p = float((np.sum(draws <= -delta) + 1) / (draws.size + 1))
    return Difference(
        estimate,
        float(draws.std(ddof=1)),
        dof,
        (float(lo95), float(hi95)),
        (float(lo90), float(hi90)),
        "bootstrap",
        p,
    )


def welch_se_dof(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """The standard error of mean(a) - mean(b) for unequal variances, and its Welch-Satterthwaite degrees of
    freedom (n_a + n_b - 2 when neither side varies)."""
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    se = math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1)) if se > 0 else a.size + b.size - 2
    return se, float(dof)


def independent_difference(a, b, delta: float, bootstrap: bool = False, seed: int = 0) -> Difference | None:
    """mean(a) - mean(b) of two independent samples: Welch's t, or a percentile bootstrap resampling each side.

    None with fewer than 2 values on a side.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size < 2 or b.size < 2:
        return None
    estimate = float(a.mean() - b.mean())
    se, dof = welch_se_dof(a, b)
    if not bootstrap:
        return _t_difference(estimate, se, dof, delta, "welch")
    rng = np.random.default_rng(seed)
    draws = a[rng.integers(0, a.size, (BOOTSTRAP_RESAMPLES, a.size))].mean(axis=1) - b[
        rng.integers(0, b.size, (BOOTSTRAP_RESAMPLES, b.size))
    ].mean(axis=1)
    return _bootstrap_difference(draws, estimate, dof, delta)


def paired_mean_difference(diffs, delta: float, bootstrap: bool = False, seed: int = 0) -> Difference | None:
    """The mean of per-seed differences: a paired t interval, or a percentile bootstrap over seeds."""
    d = np.asarray(diffs, dtype=float)
    if d.size < 2:
        return None
    estimate, se = float(d.mean()), float(d.std(ddof=1) / math.sqrt(d.size))
    if not bootstrap:
        return _t_difference(estimate, se, d.size - 1, delta, "paired-t")
    draws = d[np.random.default_rng(seed).integers(0, d.size, (BOOTSTRAP_RESAMPLES, d.size))].mean(axis=1)
    return _bootstrap_difference(draws, estimate, d.size - 1, delta)


def tost_equivalent(diff: Difference, delta: float) -> bool:
    """TOST: both one-sided ALPHA tests reject, i.e. the 90% interval lies inside (-delta, delta)."""
    return -delta < diff.ci90[0] and diff.ci90[1] < delta


def classify(diff: Difference | None, delta: float) -> str:
    """One verdict of KINDS for the difference a - b at margin `delta` (return units)."""
    if diff is None:
        return "inconclusive"
    (lo95, hi95), lo90 = diff.ci95, diff.ci90[0]
    if lo95 > 0:
        return "better"
    if hi95 < 0:
        return "worse"
    if tost_equivalent(diff, delta):
        return "equivalent"
    if lo90 > -delta:
        return "non-inferior"
    return "inconclusive"


def minimum_detectable_effect(se: float, dof: float) -> float:
    """The true difference the two-sided ALPHA test detects with POWER, at this standard error."""
    return float((scipy.stats.t.ppf(1 - ALPHA / 2, dof) + scipy.stats.t.ppf(POWER, dof)) * se)


def holm_rejections(p_values: dict[str, float], alpha: float = ALPHA) -> dict[str, bool]:
    """Holm's step-down rule over the family `p_values`: which nulls are rejected at family-wise `alpha`."""
    order = sorted(p_values, key=lambda k: p_values[k])
    rejected, m = {k: False for k in p_values}, len(p_values)
    for i, key in enumerate(order):
        if p_values[key] > alpha / (m - i):
            break
        rejected[key] = True
    return rejected


def seeds_needed(sd: float, delta: float, paired: bool, goal: str, most: int = 1000) -> int | None:
    """The fewest seeds per algorithm for `goal` ("equivalent" or "non-inferior") with POWER at a true
    difference of 0, when a seed's final return (paired: a seed's difference) has standard deviation `sd`.

    Equivalence needs its 90% interval inside (-delta, delta): (t(1 - ALPHA) + t(1 - (1 - POWER) / 2)) * se
    <= delta; non-inferiority its lower end above -delta: (t(1 - ALPHA) + t(POWER)) * se <= delta, with se
    = sd * sqrt(2 / n) (two independent samples) or sd / sqrt(n) (paired). None above `most` seeds.
    """
    beta_quantile = 1 - (1 - POWER) / 2 if goal == "equivalent" else POWER
    for n in range(2, most + 1):
        dof = n - 1 if paired else 2 * n - 2
        se = sd / math.sqrt(n) if paired else sd * math.sqrt(2 / n)
        if (scipy.stats.t.ppf(1 - ALPHA, dof) + scipy.stats.t.ppf(beta_quantile, dof)) * se <= delta:
            return n
    return None


def verdict(diff: Difference | None, delta: float, gain: float, note: str = "") -> dict:
    """A comparison's record: the verdict, its intervals in return units and in margin units, and its MDE."""
    kind = classify(diff, delta)
    if diff is None:
        reason = (
            note
            if note.startswith("no final return")
            else "; ".join(filter(None, ["fewer than 2 seeds on a side", note]))
        )
        return {"verdict": kind, "method": "none", "note": reason}
    mde = minimum_detectable_effect(diff.se, diff.dof)
    return {
        "verdict": kind,
        **asdict(diff),
        "delta": delta,
        "in_margins": {
            "estimate": diff.estimate / delta,
            "ci95": [v / delta for v in diff.ci95],
            "ci90": [v / delta for v in diff.ci90],
            "mde": mde / delta,
        },
        "mde": mde,
        "mde_of_gain": mde / gain,
        "note": note,
    }
