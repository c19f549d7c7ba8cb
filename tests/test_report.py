"""The report layer on synthetic results with known values.

Every number the report prints is checked against an independent computation
(scipy's t interval and Welch's test, numpy's SEM and interpolation,
hand-counted outcomes, pandas group-bys, the paper's tables); figures are
checked through the returned Figure objects and the written files.
"""

import json
import math
import re
import types

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from PIL import Image

from esbench import algorithms, paper
from esbench.envs import PAPER_ENVS
from esbench.report import aggregate as agg
from esbench.report import build_report, comparison, curves, figures, hparams, tables
from esbench.report.rules import RULES, rules_used

STEP = 1000


def trial_rows(
    trial_id,
    env,
    algo,
    evals,
    diverged_from=None,
    throughput=None,
    wall_per_step=1e-3,
    stage=None,
    steps=None,
):
    """Rows of one trial. evals: {seed: [eval return or None per log point]}; log point k is at (k+1)*STEP steps.

    diverged_from: {seed: first log point index marked diverged}.
    throughput: {seed: [throughput_sps per log point]}.
    stage: the `stage` column ("search", "final", "sweep"); no column when None (an old frame).
    steps: env steps of the log points, instead of (k+1)*STEP.
    """
    diverged_from = diverged_from or {}
    rows = []
    for seed, values in evals.items():
        for k, v in enumerate(values):
            env_steps = steps[k] if steps is not None else (k + 1) * STEP
            rows.append(
                {
                    "trial_id": trial_id,
                    "env": env,
                    "algo": algo,
                    "seed": seed,
                    "log_point": k,
                    "update": k,
                    "env_steps": env_steps,
                    "wall_clock_s": env_steps * wall_per_step * (1 + 0.1 * seed),
                    "train_return": 0.0 if v is None else v,
                    "eval_return_mean": np.nan if v is None else v,
                    "eval_return_std": 1.0,
                    "throughput_sps": throughput[seed][k] if throughput else 1.0 / wall_per_step,
                    "diverged": k >= diverged_from.get(seed, len(values)),
                    **({} if stage is None else {"stage": stage}),
                }
            )
    return rows


def frame(*row_lists):
    return pd.DataFrame([r for rows in row_lists for r in rows])


def curve(final, n=4):
    """n log points, evaluated at every other one and at the last, ending at `final`."""
    return [None if k % 2 == 0 and k != n - 1 else final - (n - 1 - k) for k in range(n)]


# ----------------------------------------------------------------- tables ---


def test_table_means_and_cis_equal_scipy_t_interval():
    egg = {0: curve(400.0), 1: curve(420.0), 2: curve(455.0)}
    opn = {0: curve(380.0), 1: curve(390.5), 2: curve(401.0), 3: curve(379.0)}
    df = agg.check_results(
        frame(
            trial_rows("e", "CartPole-v1", "eggroll", egg),
            trial_rows("o", "CartPole-v1", "openes", opn),
            trial_rows("p", "Pendulum-v1", "ppo", {0: curve(-200.0), 1: curve(-180.0)}),
        )
    )
    summary = agg.summarise_finals(agg.final_returns(df)).set_index(["env", "algo"])
    for algo, finals in (("eggroll", [400.0, 420.0, 455.0]), ("openes", [380.0, 390.5, 401.0, 379.0])):
        x = np.array(finals)
        lo, hi = scipy.stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=scipy.stats.sem(x))
        row = summary.loc[("CartPole-v1", algo)]
        assert row["n_seeds"] == x.size
        assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert row["ci_low"] == pytest.approx(lo, rel=1e-12) and row["ci_high"] == pytest.approx(
            hi, rel=1e-12
        )

    md = tables.final_return_markdown(summary.reset_index())
    lines = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
        for line in md.splitlines()
        if line.startswith("| ") and not line.startswith("| environment")
    }
    assert list(lines) == ["CartPole-v1", "Pendulum-v1"]
    egg_cell, opn_cell, ppo_cell = lines["CartPole-v1"]
    assert egg_cell.startswith("**") and not opn_cell.startswith("**")  # eggroll has the best mean
    assert ppo_cell == "—" and lines["Pendulum-v1"][:2] == ["—", "—"]
    # the printed numbers are the independent ones up to the printed precision
    for cell, finals in ((egg_cell, [400.0, 420.0, 455.0]), (opn_cell, [380.0, 390.5, 401.0, 379.0])):
        m = re.fullmatch(r"\**(-?[\d.]+) ± ([\d.]+)\**", cell)
        x = np.array(finals)
        half = scipy.stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
        decimals = len(m.group(1).split(".")[1]) if "." in m.group(1) else 0
        assert abs(float(m.group(1)) - x.mean()) <= 0.5 * 10**-decimals + 1e-12
        assert abs(float(m.group(2)) - half) <= 0.5 * 10**-decimals + 1e-12

    tex = tables.final_return_latex(summary.reset_index())
    assert r"\textbf{" in tex and "---" in tex and r"$\pm$" in tex and "Pendulum-v1 & --- & --- &" in tex
    assert tex.count(r"\\") == 3  # header + 2 rows


def seeds(vals):
    return {s: [v] for s, v in enumerate(vals)}


def test_outcomes_follow_welch_t_test_from_scipy():
    cases = {
        "CartPole-v1": ([10, 11, 12], [1, 2, 3]),  # clearly higher
        "Pendulum-v1": ([5, 6, 7], [5.5, 6.5, 7.5]),  # lower mean, not significant
        "brax/ant": ([1, 2, 3], [10, 11, 12]),  # clearly lower
        # unequal variances: Student's t says p = 0.0098 (underperforms), Welch's p = 0.21 (competitive)
        "brax/humanoid": ([0.0, 0.1, -0.1, 0.05, -0.05, 0.02, -0.02, 0.0], [2.0, 0.0, 3.5]),
    }
    parts = [
        trial_rows(f"{algo}-{env}", env, algo, seeds(vals[i]))
        for env, vals in cases.items()
        for i, algo in enumerate(("eggroll", "openes"))
    ]
    parts += [
        trial_rows("e5", "navix/FourRooms", "eggroll", seeds([1, 2, 3])),  # no OpenES: not counted
        trial_rows("e6", "navix/DoorKey-8x8", "eggroll", seeds([1, 2, 3])),
        trial_rows("o6", "navix/DoorKey-8x8", "openes", {0: [None, None]}),
    ]  # OpenES never evaluated
    finals = agg.final_returns(agg.check_results(frame(*parts)))
    h2h = comparison.head_to_head(finals, alpha=0.05)
    assert list(h2h["per_env"]) == list(cases)
    for env, (x, y) in cases.items():
        r = h2h["per_env"][env]
        res = scipy.stats.ttest_ind(x, y, equal_var=False)
        assert r["p_value"] == pytest.approx(res.pvalue, rel=1e-12) and r["t"] == pytest.approx(res.statistic)
        assert (r["n_a"], r["n_b"]) == (len(x), len(y))
    assert {env: r["outcome"] for env, r in h2h["per_env"].items()} == {
        "CartPole-v1": "outperforms",
        "Pendulum-v1": "competitive",
        "brax/ant": "underperforms",
        "brax/humanoid": "competitive",
    }
    assert h2h["counts"] == {"outperforms": 1, "competitive": 2, "underperforms": 1} and h2h["n"] == 4
    assert comparison.comparison_line(h2h) == (
        "EGGROLL vs OpenES (Welch's t-test, alpha 0.05): outperforms on 1, competitive on 2, underperforms on 1 "
        "of 4 environments; not comparable with the paper's counts (other environments, budgets and seeds; "
        "a test it does not state)."
    )
    # the level decides: Pendulum's p = 0.57 counts as a loss at alpha 0.6
    loose = comparison.head_to_head(finals, alpha=0.6)
    assert loose["per_env"]["Pendulum-v1"]["outcome"] == "underperforms"
    with pytest.raises(ValueError, match="alpha"):
        comparison.head_to_head(finals, alpha=1.5)
    md = tables.final_return_markdown(agg.summarise_finals(finals))
    row = next(line for line in md.splitlines() if line.startswith("| brax/humanoid"))
    x = np.array(cases["brax/humanoid"][0])
    half = scipy.stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    assert f"| {tables.format_cell(x.mean(), half)} |" in row  # the table keeps the t-interval cells


@pytest.mark.filterwarnings("ignore:Precision loss occurred:RuntimeWarning")  # scipy's, on a constant sample
def test_degenerate_head_to_head_cases():
    welch = comparison.welch_outcome
    one = welch([5.0], [1.0, 2.0, 3.0], 0.05)
    assert (one["outcome"], one["p_value"], one["t"]) == ("competitive", None, None)
    assert welch([4.0, 4.0], [4.0, 4.0, 4.0], 0.05)["outcome"] == "competitive"
    assert welch([4.0, 4.0], [4.0, 4.0, 4.0], 0.05)["p_value"] == 1.0
    higher, lower = welch([5.0, 5.0], [3.0, 3.0], 0.05), welch([3.0, 3.0], [5.0, 5.0], 0.05)
    assert (higher["outcome"], higher["p_value"], lower["outcome"]) == ("outperforms", 0.0, "underperforms")
    # only one side constant: an ordinary Welch's test
    r = welch([5.0, 5.0, 5.0], [1.0, 2.0, 6.0], 0.05)
    assert r["p_value"] == pytest.approx(scipy.stats.ttest_ind([5, 5, 5], [1, 2, 6], equal_var=False).pvalue)
    assert r["outcome"] == "competitive"


# ---------------------------------------------------------- divergence -----


def test_diverged_seed_kept_with_last_finite_evaluation():
    # seed 1 diverges at log point 2: its row there carries a garbage finite value that must be ignored
    evals = {
        0: [1.0, 2.0, 3.0, 4.0],
        1: [1.5, 2.5, 1e9, None],
        2: [0.5, 1.0, 2.0, 6.0],
        3: [None, None, None, None],
    }
    rows = trial_rows("e", "CartPole-v1", "eggroll", evals, diverged_from={1: 2, 3: 0})
    df = agg.check_results(frame(rows))
    finals = agg.final_returns(df).set_index("seed")
    assert finals.loc[1, "final_return"] == 2.5 and finals.loc[1, "final_env_steps"] == 2 * STEP
    assert bool(finals.loc[1, "diverged"]) and not bool(finals.loc[0, "diverged"])
    assert np.isnan(finals.loc[3, "final_return"])  # diverged before any evaluation: counted, not averaged
    s = agg.summarise_finals(agg.final_returns(df)).iloc[0]
    assert (s["n_seeds"], s["n_diverged"], s["n_no_eval"]) == (3, 2, 1)
    assert s["mean"] == pytest.approx(np.mean([4.0, 2.5, 6.0]))
    assert "†" in tables.final_return_markdown(agg.summarise_finals(agg.final_returns(df)))

    # curves: seed 1's 2.5 is carried forward to the later common log points
    c = curves.aligned_curves(df)
    assert c["seeds"] == [0, 1, 2]
    np.testing.assert_array_equal(c["env_steps"], [1000, 2000, 3000, 4000])
    np.testing.assert_array_equal(c["values"], [[1, 2, 3, 4], [1.5, 2.5, 2.5, 2.5], [0.5, 1, 2, 6]])
    fig = figures.plot_return_grid(df, n_bootstrap=50)
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), [1.0, 11 / 6, 2.5, 12.5 / 3])


def test_seeds_aligned_on_common_log_points():
    # seed 1 has an extra evaluated point that seed 0 lacks: only the shared points are drawn
    evals = {0: [1.0, None, 3.0], 1: [2.0, 5.0, 4.0]}
    c = curves.aligned_curves(agg.check_results(frame(trial_rows("e", "CartPole-v1", "eggroll", evals))))
    np.testing.assert_array_equal(c["env_steps"], [1000, 3000])
    np.testing.assert_array_equal(c["values"], [[1.0, 3.0], [2.0, 4.0]])
    # wall-clock x = mean over seeds of wall_clock_s at that point (seed s runs 1 + 0.1 s times slower)
    np.testing.assert_allclose(c["wall_clock_s"], [1.0 * 1.05, 3.0 * 1.05])


def test_seeds_whose_env_steps_differ_align_on_log_points():
    """ES seeds end a chunk at their own env steps (past the chunk's target): the k-th log points of all
    seeds form one point of the curve, at the mean of their env steps."""
    rows = frame(
        trial_rows("e", "CartPole-v1", "eggroll", {0: [1.0, 2.0, 3.0]}, steps=[0, 1010, 2030]),
        trial_rows("e", "CartPole-v1", "eggroll", {1: [5.0, 6.0, 9.0]}, steps=[0, 1050, 2000]),
    )
    c = curves.aligned_curves(agg.check_results(rows))
    np.testing.assert_allclose(c["env_steps"], [0, 1030, 2015])
    np.testing.assert_array_equal(c["values"], [[1.0, 2.0, 3.0], [5.0, 6.0, 9.0]])


# -------------------------------------------------------------- figures ----


def grid_frame():
    envs = ["gymnax/Acrobot-v1", "CartPole-v1", "brax/ant"]  # one non-paper env: must come last
    parts = []
    for i, env in enumerate(envs):
        parts.append(trial_rows(f"e{i}", env, "eggroll", {s: curve(100.0 + s + i) for s in range(3)}))
        parts.append(trial_rows(f"p{i}", env, "ppo", {s: curve(50.0 + s) for s in range(3)}))
        if env != "brax/ant":
            parts.append(trial_rows(f"o{i}", env, "openes", {s: curve(80.0 + 5 * s) for s in range(3)}))
    # an environment with rows but no evaluation at all gets no panel
    parts.append(trial_rows("x", "Pendulum-v1", "eggroll", {0: [None, None]}))
    return agg.check_results(frame(*parts))


def test_grid_has_one_panel_per_environment_and_notes_missing_algorithms():
    df = grid_frame()
    fig = figures.plot_return_grid(df, "env_steps", n_bootstrap=50)
    assert len(fig.axes) == 3
    titles = [ax.get_title() for ax in fig.axes]
    # the paper's panel titles for its environments, the id for others
    assert [t.split("\n")[0] for t in titles] == [
        "CartPole-v1",
        paper.panel_title("brax/ant"),
        "gymnax/Acrobot-v1",
    ]
    assert titles[1] == "Brax Ant\nno results: OpenES" and "\n" not in titles[0]
    assert fig.axes[0].get_ylabel() == "return" and all(ax.get_xlabel() == "env steps" for ax in fig.axes)
    legend_labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_labels == ["EGGROLL", "OpenES", "PPO", "mean ± SEM over seeds"]
    # the palette's first three colours, and the plotted mean is the mean over seeds at the common log points
    ax = fig.axes[0]
    colours = [line.get_color() for line in ax.lines]
    assert colours == list(figures.PALETTE[:3]) == ["#D55E00", "#0072B2", "#009E73"]
    cart = df[(df["env"] == "CartPole-v1") & (df["algo"] == "eggroll")].dropna(subset=["eval_return_mean"])
    expected = cart.groupby("env_steps")["eval_return_mean"].mean()
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), expected.index.to_numpy())
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected.to_numpy())
    assert len(ax.collections) == 3  # one band per algorithm
    # the default band is mean +- SEM: its polygon spans exactly mean - sem .. mean + sem at every log point
    vals = cart.pivot(index="seed", columns="env_steps", values="eval_return_mean").to_numpy()
    sem = vals.std(axis=0, ddof=1) / math.sqrt(vals.shape[0])
    ys = ax.collections[0].get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose([ys.min(), ys.max()], [(vals.mean(0) - sem).min(), (vals.mean(0) + sem).max()])
    boot = figures.plot_return_grid(df, "env_steps", band="bootstrap", n_bootstrap=50)
    assert boot.legends[0].get_texts()[-1].get_text() == "95% bootstrap CI of the mean over seeds"

    wall = figures.plot_return_grid(df, "wall_clock_s", n_bootstrap=50)
    assert len(wall.axes) == 3 and all(ax.get_xlabel() == "wall-clock (s)" for ax in wall.axes)
    with pytest.raises(ValueError, match="several trials"):
        figures.plot_return_grid(pd.concat([df, df.assign(trial_id="dup")]), n_bootstrap=10)


def test_bootstrap_band_of_two_seeds_is_their_range():
    # the bootstrap distribution of a 2-seed mean is {a, (a+b)/2, b} w.p. {1/4, 1/2, 1/4}: the 95% band is [a, b]
    values = np.array([[1.0, 5.0, -2.0], [3.0, 4.0, -2.0]])
    lo, hi = agg.bootstrap_mean_ci(values, n_bootstrap=400, seed=3)
    np.testing.assert_array_equal(lo, values.min(axis=0))
    np.testing.assert_array_equal(hi, values.max(axis=0))
    lo2, hi2 = agg.bootstrap_mean_ci(np.random.default_rng(0).normal(size=(6, 4)), 300, seed=1)
    lo3, hi3 = agg.bootstrap_mean_ci(np.random.default_rng(0).normal(size=(6, 4)), 300, seed=1)
    np.testing.assert_array_equal(lo2, lo3)
    np.testing.assert_array_equal(hi2, hi3)
    assert np.all(lo2 < hi2)


def test_sem_band_is_numpys_standard_error_of_the_mean():
    values = np.random.default_rng(4).normal(size=(5, 7))
    lo, hi = agg.mean_band(values, "sem", n_bootstrap=10)
    sem = values.std(axis=0, ddof=1) / np.sqrt(values.shape[0])
    np.testing.assert_allclose(lo, values.mean(0) - sem, rtol=1e-12)
    np.testing.assert_allclose(hi, values.mean(0) + sem, rtol=1e-12)
    np.testing.assert_allclose(hi - lo, 2 * scipy.stats.sem(values, axis=0), rtol=1e-12)
    boot = agg.mean_band(values, "bootstrap", n_bootstrap=200, seed=2)
    np.testing.assert_array_equal(boot, agg.bootstrap_mean_ci(values, 200, seed=2))
    with pytest.raises(ValueError, match="band"):
        agg.mean_band(values, "iqr", n_bootstrap=10)
    with pytest.raises(ValueError, match="2 seeds"):
        agg.mean_band(values[:1], "sem", n_bootstrap=10)


def test_throughput_bars_are_mean_over_seeds_of_per_seed_means():
    tp = {0: [100.0, 300.0], 1: [1000.0, 1000.0]}
    df = agg.check_results(
        frame(
            trial_rows("e", "CartPole-v1", "eggroll", {0: [1.0, 2.0], 1: [1.0, 2.0]}, throughput=tp),
            trial_rows("o", "CartPole-v1", "openes", {0: [1.0, 2.0]}, throughput={0: [10.0, np.nan]}),
        )
    )
    summary = agg.throughput_summary(df).set_index(["env", "algo"])
    assert summary.loc[("CartPole-v1", "eggroll"), "mean"] == (200.0 + 1000.0) / 2
    assert summary.loc[("CartPole-v1", "eggroll"), "min"] == 200.0
    assert summary.loc[("CartPole-v1", "openes"), "mean"] == 10.0  # non-finite chunks are ignored
    fig = figures.plot_throughput(summary.reset_index())
    ax = fig.axes[0]
    heights = {p.get_gid(): p.get_height() for p in ax.patches}
    assert heights == {"CartPole-v1|eggroll": 600.0, "CartPole-v1|openes": 10.0}
    assert ax.get_yscale() == "log" and "env steps / s" in ax.get_ylabel()


def test_throughput_of_equal_seeds_draws_although_their_mean_rounds_past_them():
    tp = {seed: [0.1, 0.1] for seed in range(3)}  # (0.1 + 0.1 + 0.1) / 3 > 0.1 in floating point
    df = agg.check_results(
        frame(trial_rows("e", "CartPole-v1", "eggroll", {s: [1.0, 2.0] for s in tp}, throughput=tp))
    )
    summary = agg.throughput_summary(df)
    assert summary["mean"].iloc[0] > summary["max"].iloc[0]
    assert figures.plot_throughput(summary).axes[0].patches[0].get_height() == summary["mean"].iloc[0]


# ------------------------------------------------------------ aggregates ----


def pairwise_improvement(x, y):
    """P(x > y) + P(x = y) / 2 over all pairs, by explicit pair counting."""
    d = np.subtract.outer(np.asarray(x, float), np.asarray(y, float))
    return float((d > 0).mean() + 0.5 * (d == 0).mean())


def test_normalisation_iqm_and_probability_of_improvement():
    df = agg.check_results(
        frame(
            trial_rows("e1", "CartPole-v1", "eggroll", {s: [v] for s, v in enumerate([1.0, 2.0, 3.0])}),
            trial_rows("o1", "CartPole-v1", "openes", {s: [v] for s, v in enumerate([0.0, 2.0, 5.0])}),
            trial_rows("e2", "Pendulum-v1", "eggroll", {s: [v] for s, v in enumerate([-10.0, -10.0])}),
            trial_rows("p2", "Pendulum-v1", "ppo", {s: [v] for s, v in enumerate([-10.0, -10.0, -10.0])}),
        )
    )
    finals = agg.final_returns(df)
    scores = agg.normalised_scores(finals).set_index(["env", "algo", "seed"]).sort_index()["score"]
    np.testing.assert_allclose(scores.loc[("CartPole-v1", "eggroll")], [0.2, 0.4, 0.6])
    np.testing.assert_allclose(scores.loc[("CartPole-v1", "openes")], [0.0, 0.4, 1.0])
    np.testing.assert_array_equal(scores.loc["Pendulum-v1"], 0.5)  # max == min

    stats = agg.aggregate_statistics(finals, n_bootstrap=200, seed=0)
    egg = stats["iqm"]["eggroll"]
    # eggroll has 3 CartPole seeds and 2 Pendulum seeds: rliable's matrix keeps seeds 0 and 1 of each
    assert (egg["envs"], egg["n_seeds_per_env"], egg["n_scores"], egg["n_dropped"]) == (
        ["CartPole-v1", "Pendulum-v1"],
        2,
        4,
        1,
    )
    assert egg["iqm"] == pytest.approx(
        scipy.stats.trim_mean(np.ravel([[0.2, 0.5], [0.4, 0.5]]), 0.25), abs=1e-12
    )
    assert stats["iqm"]["ppo"]["ci_low"] == stats["iqm"]["ppo"]["ci_high"] == 0.5  # no spread, no width
    for s in stats["iqm"].values():
        assert s["ci_low"] <= s["iqm"] <= s["ci_high"]
    assert egg["ci_low"] < egg["ci_high"]
    # hand count over the 9 CartPole pairs: 1>0; 2>0, 2=2; 3>0, 3>2 -> (4 + 0.5) / 9
    poi = stats["probability_of_improvement"]
    assert poi["envs"] == ["CartPole-v1"] and poi["value"] == pytest.approx(0.5, abs=1e-12)
    assert poi["n_seeds_per_env"] == {"eggroll": 3, "openes": 3} and poi["n_dropped"] == {
        "eggroll": 0,
        "openes": 0,
    }
    assert poi["ci_low"] <= poi["value"] <= poi["ci_high"] and poi["ci_low"] < poi["ci_high"]


def test_aggregate_intervals_are_deterministic_and_leave_numpy_global_rng_alone():
    rng = np.random.default_rng(0)
    parts = []
    for e, env in enumerate(["CartPole-v1", "Pendulum-v1", "brax/ant"]):
        for algo, shift in (("eggroll", 0.5), ("openes", 0.0)):
            parts.append(
                trial_rows(
                    f"{algo}{e}",
                    env,
                    algo,
                    {s: [float(v)] for s, v in enumerate(rng.normal(shift, 1.0, size=5))},
                )
            )
    finals = agg.final_returns(agg.check_results(frame(*parts)))
    np.random.seed(123)
    before = np.random.get_state()
    first = agg.aggregate_statistics(finals, n_bootstrap=300, seed=7)
    after = np.random.get_state()
    assert all(
        np.array_equal(u, v) for u, v in zip(before, after)
    )  # the caller's global RNG state is restored
    np.random.seed(
        999
    )  # rliable draws from the global RNG: a different caller state must not change anything
    assert agg.aggregate_statistics(finals, n_bootstrap=300, seed=7) == first
    other = agg.aggregate_statistics(finals, n_bootstrap=300, seed=8)
    assert other["iqm"]["eggroll"]["iqm"] == first["iqm"]["eggroll"]["iqm"]  # point estimates do not resample
    assert (other["iqm"]["eggroll"]["ci_low"], other["iqm"]["eggroll"]["ci_high"]) != (
        first["iqm"]["eggroll"]["ci_low"],
        first["iqm"]["eggroll"]["ci_high"],
    )
    for s in (*first["iqm"].values(), *other["iqm"].values()):
        assert s["ci_low"] <= s["iqm"] <= s["ci_high"]
    poi = first["probability_of_improvement"]
    assert poi["ci_low"] <= poi["value"] <= poi["ci_high"]


def test_aggregates_with_unequal_seeds_and_missing_environments():
    # eggroll: seeds {9, 2, 5, 7} on CartPole, {4, 1, 8} on Pendulum, {0, 3, 6} on brax/ant (no OpenES there);
    # openes: 2 seeds on CartPole and Pendulum. Seed ids are not in order on purpose.
    egg = {
        "CartPole-v1": {9: 4.0, 2: 1.0, 5: 3.0, 7: 0.0},
        "Pendulum-v1": {4: -1.0, 1: -3.0, 8: -2.0},
        "brax/ant": {0: 10.0, 3: 30.0, 6: 20.0},
    }
    opn = {"CartPole-v1": {0: 2.0, 1: 4.0}, "Pendulum-v1": {0: -2.0, 1: -5.0}}
    parts = [
        trial_rows(f"e-{env}", env, "eggroll", {s: [v] for s, v in vals.items()}) for env, vals in egg.items()
    ]
    parts += [
        trial_rows(f"o-{env}", env, "openes", {s: [v] for s, v in vals.items()}) for env, vals in opn.items()
    ]
    finals = agg.final_returns(agg.check_results(frame(*parts)))
    stats = agg.aggregate_statistics(finals, n_bootstrap=200, seed=0)

    def norm(env, value):  # min-max over every seed of both algorithms in that environment
        allv = list(egg[env].values()) + list(opn.get(env, {}).values())
        return (value - min(allv)) / (max(allv) - min(allv))

    def kept(table, env, n):  # the n smallest seed ids
        return [norm(env, table[env][s]) for s in sorted(table[env])[:n]]

    s = stats["iqm"]["eggroll"]
    assert (s["envs"], s["n_seeds_per_env"], s["n_dropped"]) == (
        ["CartPole-v1", "Pendulum-v1", "brax/ant"],
        3,
        1,
    )
    flat = [v for env in s["envs"] for v in kept(egg, env, 3)]  # seed 9 of CartPole is left out
    assert s["iqm"] == pytest.approx(scipy.stats.trim_mean(flat, 0.25), abs=1e-12)
    s = stats["iqm"]["openes"]
    assert (s["envs"], s["n_seeds_per_env"], s["n_dropped"]) == (["CartPole-v1", "Pendulum-v1"], 2, 0)
    assert s["iqm"] == pytest.approx(
        scipy.stats.trim_mean([norm(e, v) for e in opn for v in opn[e].values()], 0.25)
    )

    poi = stats["probability_of_improvement"]
    assert poi["envs"] == ["CartPole-v1", "Pendulum-v1"]  # brax/ant has no OpenES
    assert poi["n_seeds_per_env"] == {"eggroll": 3, "openes": 2} and poi["n_dropped"] == {
        "eggroll": 1,
        "openes": 0,
    }
    expected = np.mean([pairwise_improvement(kept(egg, e, 3), kept(opn, e, 2)) for e in poi["envs"]])
    assert poi["value"] == pytest.approx(expected, abs=1e-12)
    assert poi["ci_low"] <= poi["value"] <= poi["ci_high"]


# ----------------------------------------------------------- selection -----


def test_sweep_keeps_best_trial_per_env_and_algo():
    df = agg.check_results(
        frame(
            trial_rows("sweep-a", "CartPole-v1", "openes", {0: [1.0, 10.0], 1: [1.0, 12.0]}),
            trial_rows("sweep-b", "CartPole-v1", "openes", {0: [1.0, 30.0], 1: [1.0, 2.0]}),  # mean 16: best
            trial_rows("sweep-c", "CartPole-v1", "openes", {0: [None, None]}),  # never evaluated: last
            trial_rows("egg", "CartPole-v1", "eggroll", {0: [1.0, 5.0]}),
        )
    )
    chosen, selection = agg.select_trials(df)
    assert set(chosen["trial_id"]) == {"sweep-b", "egg"}
    sel = selection.set_index("algo")
    assert list(selection["algo"]) == ["eggroll", "openes"]
    assert sel.loc["openes", "trial_id"] == "sweep-b" and sel.loc["openes", "n_candidates"] == 3
    assert sel.loc["openes", "mean_final_return"] == 16.0


def test_env_and_algo_order():
    assert agg.env_order(["zzz/custom", "brax/ant", "CartPole-v1", "aaa/x"]) == [
        "CartPole-v1",
        "brax/ant",
        "aaa/x",
        "zzz/custom",
    ]
    assert agg.env_order(PAPER_ENVS[::-1]) == list(PAPER_ENVS)
    assert agg.algo_order(["evosax:CMA_ES", "ppo", "eggroll", "a"]) == [
        "eggroll",
        "ppo",
        "a",
        "evosax:CMA_ES",
    ]


def test_order_labels_and_colours_come_from_the_algorithm_registry(monkeypatch):
    n_registered = len(algorithms.algorithm_names())
    assert figures.algo_colours(["zzz", "openes"]) == {
        "openes": figures.PALETTE[1],
        "zzz": figures.PALETTE[n_registered],
    }
    # a plugin baseline: after the built-ins, before unregistered names, with its own colour whatever is shown
    monkeypatch.setitem(algorithms._REGISTRY, "my_es", types.SimpleNamespace(LABEL="MyES"))
    assert algorithms.algorithm_names()[-1] == "my_es"
    assert agg.algo_order(["zzz", "my_es", "ppo", "aaa", "eggroll"]) == [
        "eggroll",
        "ppo",
        "my_es",
        "aaa",
        "zzz",
    ]
    mine = figures.PALETTE[n_registered]
    assert figures.algo_colours(["my_es"]) == {"my_es": mine}
    assert figures.algo_colours(["my_es", "eggroll", "aaa", "zzz"]) == {
        "eggroll": figures.PALETTE[0],
        "my_es": mine,
        "aaa": figures.PALETTE[n_registered + 1],
        "zzz": figures.PALETTE[n_registered + 2],
    }
    df = agg.check_results(
        frame(
            trial_rows("m", "CartPole-v1", "my_es", {0: [1.0, 2.0]}),
            trial_rows("e", "CartPole-v1", "eggroll", {0: [1.0, 3.0]}),
        )
    )
    fig = figures.plot_return_grid(df)
    assert [t.get_text() for t in fig.legends[0].get_texts()][:2] == ["EGGROLL", "MyES"]
    assert [line.get_color() for line in fig.axes[0].lines] == [figures.PALETTE[0], mine]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="eval_return_mean"):
        agg.check_results(pd.DataFrame({"trial_id": ["a"], "env": ["CartPole-v1"]}))
    with pytest.raises(ValueError, match="empty"):
        agg.check_results(pd.DataFrame(columns=list(agg.REQUIRED_COLUMNS)))


# ------------------------------------------------------------- build --------


def test_build_report_writes_valid_figures_tables_and_summary(tmp_path):
    df = pd.concat(
        [
            grid_frame(),
            pd.DataFrame(trial_rows("o-worse", "CartPole-v1", "openes", {s: curve(0.0) for s in range(3)})),
        ],
        ignore_index=True,
    )
    written = build_report(df, tmp_path / "report", n_bootstrap=50, seed=0)
    stems = ("returns_vs_env_steps", "returns_vs_wall_clock", "throughput", "aggregate")
    expected = {f"{s}.{f}" for s in stems for f in ("png", "pdf")} | {
        "final_return.md",
        "final_return.tex",
        "summary.json",
        "report.md",
    }
    assert set(written) == expected
    for name, path in written.items():
        data = path.read_bytes()
        if name.endswith(".png"):
            assert data[:8] == b"\x89PNG\r\n\x1a\n"
            with Image.open(path) as im:
                im.verify()
            with Image.open(path) as im:
                assert im.size[0] > 300 and im.size[1] > 200
        elif name.endswith(".pdf"):
            assert data[:4] == b"%PDF"

    summary = json.loads(written["summary.json"].read_text())
    cart = summary["final_return"]["CartPole-v1"]
    assert cart["eggroll"]["mean"] == pytest.approx(np.mean([101.0, 102.0, 103.0]))
    assert cart["openes"]["trial_id"] == "o1"  # beats "o-worse" in the sweep
    assert summary["environments"] == ["CartPole-v1", "Pendulum-v1", "brax/ant", "gymnax/Acrobot-v1"]
    assert summary["environments_without_evaluation"] == ["Pendulum-v1"]
    h2h = summary["eggroll_vs_openes"]
    # eggroll 100+i+s against openes 80+5s on the two environments both have (i: the environment's index)
    for env, i in (("CartPole-v1", 1), ("gymnax/Acrobot-v1", 0)):
        p = scipy.stats.ttest_ind([100 + i + s for s in range(3)], [80, 85, 90], equal_var=False).pvalue
        assert h2h["per_env"][env]["p_value"] == pytest.approx(p) and p < 0.05
    assert (h2h["n"], h2h["counts"]["outperforms"]) == (2, 2)
    assert summary["reported"] == {"final_stage": False, "n_trials": 10, "excluded": {}}
    # no evaluation at env step 0 in this frame: Figure 4a has nothing to normalise with
    no_step_0 = {
        env: "no evaluation at env step 0" for env in ("CartPole-v1", "brax/ant", "gymnax/Acrobot-v1")
    }
    assert summary["ppo_normalised"]["left_out"] == {**no_step_0, "Pendulum-v1": "no PPO result"}
    assert summary["training_time"] is None and summary["hparams"] is None

    report = written["report.md"].read_text()
    assert (
        "EGGROLL vs OpenES (Welch's t-test, alpha 0.05): outperforms on 2, competitive on 0, underperforms on 0 "
        "of 2 environments; not comparable with the paper's counts (other environments, budgets and seeds; "
        "a test it does not state)."
    ) in report
    assert "`o1`" in report and "several trials" in report and "biased upwards" in report
    assert "![" in report and "returns_vs_env_steps.png" in report
    rules = rules_used("sem", final_stage=False, with_summaries=False)
    assert summary["rules"] == rules
    for rule in rules.values():
        assert rule in report
    for unused in ("reported_final", "curve_band_bootstrap", "training_time", "hparams"):
        assert RULES[unused] not in report
    assert written["final_return.md"].read_text() in report
    egg = summary["aggregate"]["iqm"]["eggroll"]
    assert (egg["n_seeds_per_env"], egg["n_dropped"], len(egg["envs"])) == (3, 0, 3)
    assert (
        f"| EGGROLL | {egg['iqm']:.3f} | [{egg['ci_low']:.3f}, {egg['ci_high']:.3f}] | 3 | 3 | 0 |" in report
    )


def test_build_report_with_one_algorithm_and_one_seed(tmp_path):
    # no OpenES, no EGGROLL, a single seed: everything is reported as missing, nothing crashes
    df = frame(trial_rows("only", "brax/ant", "ppo", {0: curve(5.0)}))
    with pytest.raises(ValueError, match="band"):
        build_report(df, tmp_path / "bad", band="95%")
    with pytest.raises(ValueError, match=r"lack columns \['hparams'\]"):
        build_report(df, tmp_path / "bad", summaries=pd.DataFrame({"trial_id": ["only"], "run_s": [1.0]}))
    assert not (tmp_path / "bad").exists()  # both checked before anything is written
    written = build_report(df, tmp_path, band="bootstrap", n_bootstrap=20, formats=("png",))
    assert {"returns_vs_env_steps.png", "throughput.png", "aggregate.png", "report.md"} <= set(written)
    assert "ppo_normalised_return.png" not in written  # PPO alone: nothing to compare with it
    report = written["report.md"].read_text()
    assert (
        "shading: 95% bootstrap CI of the mean over seeds" in report
        and RULES["curve_band_bootstrap"] in report
    )
    assert "1 trial, 1 environment, algorithms: PPO." in report
    assert (
        "EGGROLL vs OpenES (Welch's t-test, alpha 0.05): no environment has results for both; "
        "not comparable with the paper's counts"
    ) in report
    assert "| brax/ant | **5.000 (n=1)** |" in report
    summary = json.loads(written["summary.json"].read_text())
    assert summary["aggregate"]["probability_of_improvement"] is None
    assert summary["final_return"]["brax/ant"]["ppo"]["ci_low"] is None  # no interval from one seed


def test_cells_round_to_two_significant_digits_of_the_interval_without_negative_zero():
    format_cell = tables.format_cell
    assert format_cell(-0.3, 17.0) == "0 ± 17"  # not "-0 ± 17"
    assert format_cell(-1.26, 0.41) == "-1.26 ± 0.41"
    assert format_cell(186.25, 5.04) == "186.2 ± 5.0"
    assert format_cell(102.0, float("nan")) == "102.0"


# ------------------------------------------------------ Figure 4a ---------

# log points at env steps 0 (before training), 1000, 2000; two seeds per algorithm
NORM_CURVES = {
    "CartPole-v1": {
        "eggroll": [[10, 50, 110], [10, 70, 130]],
        "ppo": [[10, 60, 210], [10, 40, 190]],
        "openes": [[10, 20, 30], [10, 30, 50]],
    },
    "Pendulum-v1": {
        "eggroll": [[-1000, -600, -300], [-1000, -500, -200]],  # R0 -1000, PPO's -1100: each its own
        "ppo": [[-1100, -700, -400], [-1100, -800, -200]],
    },
    "brax/ant": {"eggroll": [[0, 1, 2], [0, 2, 3]]},  # no PPO: left out
    "brax/humanoid": {
        "eggroll": [[5, 6, 7], [5, 8, 9]],
        "ppo": [[5, 5, 5], [5, 5, 5]],
    },  # PPO never moved: left out
}


def normalised_frame(steps=None, stage=None):
    """NORM_CURVES as trials; steps: {env: env steps of its 3 log points} (default 0, 1000, 2000)."""
    steps = steps or {}
    return agg.check_results(
        frame(
            *[
                trial_rows(
                    f"{algo}-{env}",
                    env,
                    algo,
                    {s: list(map(float, v)) for s, v in enumerate(values)},
                    steps=steps.get(env, [0, STEP, 2 * STEP]),
                    stage=stage,
                )
                for env, by_algo in NORM_CURVES.items()
                for algo, values in by_algo.items()
            ]
        )
    )


def expected_normalised(algo, grids, envs=("CartPole-v1", "Pendulum-v1")):
    """Per-seed average over envs of (R - R0) / (R_ppo - R0), R0 the algorithm's own untrained return, each env's
    curve interpolated from `grids[env]`."""
    per_env = []
    for env in envs:
        r0 = np.mean([v[0] for v in NORM_CURVES[env][algo]])
        r_ppo = np.mean([v[-1] for v in NORM_CURVES[env]["ppo"]])
        x, grid = grids[env]
        per_env.append(
            [np.interp(grid, x, (np.array(v) - r0) / (r_ppo - r0)) for v in NORM_CURVES[env][algo]]
        )
    return np.mean(per_env, axis=0)  # (seeds, grid)


def test_ppo_normalised_curves_on_env_steps():
    df = normalised_frame()
    summary = agg.summarise_finals(agg.final_returns(df))
    data = curves.ppo_normalised_curves(df, summary, "sem", n_bootstrap=10)
    assert data["x"] == "env_steps" and data["envs"] == ["CartPole-v1", "Pendulum-v1"]
    assert data["left_out"] == {
        "brax/ant": "no PPO result",
        "brax/humanoid": "PPO's final return equals an untrained policy's (EGGROLL's)",
    }
    np.testing.assert_array_equal(data["grid"], [0, STEP, 2 * STEP])
    assert list(data["curves"]) == ["eggroll", "openes", "ppo"]
    same = {env: ([0, STEP, 2 * STEP], data["grid"]) for env in data["envs"]}
    for algo in ("eggroll", "ppo"):
        per_seed = expected_normalised(algo, same)
        c = data["curves"][algo]
        assert c["envs"] == ["CartPole-v1", "Pendulum-v1"] and c["seeds"] == [0, 1]
        np.testing.assert_allclose(c["mean"], per_seed.mean(0), rtol=1e-12)
        sem = per_seed.std(axis=0, ddof=1) / np.sqrt(2)
        np.testing.assert_allclose(c["low"], per_seed.mean(0) - sem, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(c["high"], per_seed.mean(0) + sem, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(
        data["curves"]["ppo"]["mean"][[0, -1]], [0.0, 1.0]
    )  # untrained 0, PPO's final 1
    # OpenES only ran CartPole: its average is over that environment alone
    openes = data["curves"]["openes"]
    assert openes["envs"] == ["CartPole-v1"]
    np.testing.assert_allclose(openes["mean"], [0, (25 - 10) / 190, (40 - 10) / 190])

    fig = figures.plot_ppo_normalised(data, "sem")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "env steps" and "PPO" in ax.get_ylabel()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), data["curves"]["eggroll"]["mean"])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [
        "EGGROLL (2 envs, 2 seeds)",
        "OpenES (1 env, 2 seeds)",
        "PPO (2 envs, 2 seeds)",
        "mean ± SEM over seeds",
    ]


def test_ppo_normalised_curves_on_fractions_when_runs_end_apart():
    # Pendulum's run is twice as long and logs at 0, 1/4 and 1 of it: the grid is the union of the fractions
    df = normalised_frame(steps={"Pendulum-v1": [0, STEP, 4 * STEP]})
    data = curves.ppo_normalised_curves(
        df, agg.summarise_finals(agg.final_returns(df)), "sem", n_bootstrap=10
    )
    assert data["x"] == "fraction"
    np.testing.assert_array_equal(data["grid"], [0, 0.25, 0.5, 1])
    grids = {"CartPole-v1": ([0, 0.5, 1], data["grid"]), "Pendulum-v1": ([0, 0.25, 1], data["grid"])}
    np.testing.assert_allclose(
        data["curves"]["eggroll"]["mean"], expected_normalised("eggroll", grids).mean(0)
    )
    assert "fraction" in figures.plot_ppo_normalised(data, "sem").axes[0].get_xlabel()


# ------------------------------------------- training time, hyperparameters --


def selection_of(*cells):
    """A selection table (as `aggregate.select_trials` returns) naming the shown trial of each (env, algo)."""
    return pd.DataFrame(
        [
            {
                "env": e,
                "algo": a,
                "trial_id": t,
                "n_candidates": 1,
                "candidates": [t],
                "mean_final_return": 0.0,
            }
            for e, a, t in cells
        ]
    )


def test_training_time_ratio_written_like_figure_15():
    selection = selection_of(
        ("CartPole-v1", "eggroll", "e1"),
        ("CartPole-v1", "openes", "o1"),
        ("brax/humanoid", "eggroll", "e2"),
        ("brax/humanoid", "openes", "o2"),
        ("gymnax/Acrobot-v1", "eggroll", "e3"),
        ("gymnax/Acrobot-v1", "openes", "o3"),  # not in the paper
        ("brax/ant", "eggroll", "e4"),
        ("brax/ant", "openes", "o4"),  # OpenES has no run_s
        ("Pendulum-v1", "eggroll", "e5"),
    )  # no OpenES: no row
    run_s = {
        "e1": 10.0,
        "o1": 21.0,
        "e2": 30.0,
        "o2": 20.0,
        "e3": 5.0,
        "o3": 5.0,
        "e4": 3.0,
        "o4": None,
        "e5": 1.0,
        "unshown": 1e-3,
    }
    summaries = pd.DataFrame([{"trial_id": t, "run_s": s} for t, s in run_s.items()])
    times = comparison.training_time(selection, summaries)
    assert [r["env"] for r in times["rows"]] == ["CartPole-v1", "brax/humanoid", "gymnax/Acrobot-v1"]
    assert times["missing"] == ["brax/ant"]
    cart, humanoid, acrobot = times["rows"]
    assert cart["run_s"] == {"eggroll": 10.0, "openes": 21.0} and cart["ratio"] == 2.1
    assert (cart["label"], cart["paper"]) == ("2.10x faster", paper.wall_clock_ratio("CartPole-v1")["label"])
    assert (humanoid["label"], humanoid["paper"]) == ("1.50x slower", "1.80x slower")
    assert (acrobot["label"], acrobot["paper"]) == ("1.00x faster", "—")
    md = comparison.training_time_markdown(times)
    assert "| CartPole-v1 | 10 | 21 | 2.10x faster | 1.83x faster |" in md
    assert "| gymnax/Acrobot-v1 | 5 | 5 | 1.00x faster | — |" in md
    assert "without a training time (run_s): brax/ant." in md
    fig = figures.plot_training_time(times)
    heights = {p.get_gid(): p.get_height() for p in fig.axes[0].patches}
    assert (
        heights["CartPole-v1|openes"] == 21.0
        and heights["brax/humanoid|eggroll"] == 30.0
        and len(heights) == 6
    )


def test_chosen_hyperparameters_beside_the_papers():
    ours_egg = {**paper.row("eggroll", "CartPole-v1"), "sigma": 0.5, "not_a_paper_field": 3}
    selection = selection_of(
        ("CartPole-v1", "eggroll", "e1"),
        ("gymnax/Acrobot-v1", "eggroll", "e2"),
        ("CartPole-v1", "openes", "o1"),
        ("CartPole-v1", "my_es", "m1"),
    )
    summaries = pd.DataFrame(
        [
            {"trial_id": "e1", "hparams": ours_egg},
            {"trial_id": "e2", "hparams": paper.row("eggroll", "CartPole-v1")},
            {
                "trial_id": "o1",
                "hparams": {**paper.row("openes", "CartPole-v1"), "learning_rate": 0.1 + 1e-17},
            },
            {"trial_id": "m1", "hparams": {"sigma": 1.0}},  # no paper column for it: not shown
        ]
    )
    chosen = hparams.chosen_hparams(selection, summaries)
    assert list(chosen) == ["eggroll", "openes"]
    e1, e2 = chosen["eggroll"]
    assert e1["differs"] == ["sigma"] and "not_a_paper_field" not in e1["ours"]
    assert e1["ours"] == {**paper.row("eggroll", "CartPole-v1"), "sigma": 0.5}
    assert e2["paper"] is None and e2["differs"] == []
    assert chosen["openes"][0]["differs"] == []  # equal up to float noise
    md = hparams.hparams_markdown(chosen)
    header = next(line for line in md.splitlines() if line.startswith("| environment | pop_size"))
    fields = [c.strip() for c in header.split("|")[2:-1]]
    assert fields == list(paper.row("eggroll", "CartPole-v1"))
    row = next(line for line in md.splitlines() if line.startswith("| CartPole-v1 | 2048"))
    cells = dict(zip(fields, [c.strip() for c in row.split("|")[2:-1]]))
    assert cells["sigma"] == "**0.5** (0.2)" and cells["pop_size"] == "2048" and cells["optimizer"] == "sgd"
    assert cells["deterministic_policy"] == "false"
    assert "| gymnax/Acrobot-v1 (not in the paper's tables) |" in md
    record = {
        "sampler": "tpe",
        "search_trials": 20,
        "tuning_seeds": [0, 1],
        "final_seeds": [10, 11],
        "budget": "1e6 env steps",
    }
    assert "TPE (Optuna), not the paper's" in hparams.sampler_text(record, final_stage=True)
    assert "random search (the paper's)" in hparams.sampler_text(
        {**record, "sampler": "random"}, final_stage=True
    )
    own = hparams.sampler_text(
        {**record, "final_seeds_per_env": {"Pendulum-v1": [0, 1, 2]}}, final_stage=True
    )
    assert own.endswith("final seeds [10, 11]; on Pendulum-v1, final seeds [0, 1, 2].")


def test_settings_the_tables_do_not_give_are_stated():
    """What ran beside the rows: every hparams field outside the paper's row, each distinct value once."""
    selection = selection_of(
        ("CartPole-v1", "ppo", "p1"), ("Pendulum-v1", "ppo", "p2"), ("CartPole-v1", "my_es", "m1")
    )
    summaries = pd.DataFrame(
        [
            {
                "trial_id": "p1",
                "hparams": {**paper.row("ppo", "CartPole-v1"), "flavour": "rejax", "network": "rejax"},
            },
            {
                "trial_id": "p2",
                "hparams": {**paper.row("ppo", "Pendulum-v1"), "flavour": "esbench", "network": "rejax"},
            },
            {"trial_id": "m1", "hparams": {"sigma": 1.0}},
        ]
    )
    unstated = hparams.unstated_settings(selection, summaries)
    assert unstated == {
        "ppo": {"flavour": ["rejax", "esbench"], "network": ["rejax"]},
        "my_es": {"sigma": [1.0]},
    }
    md = hparams.unstated_markdown(unstated)
    assert "| PPO | flavour rejax / esbench, network rejax |" in md and "| my_es | sigma 1 |" in md


# --------------------------------------------------------- final stage ----


def protocol_inputs():
    """A protocol run: search trials with absurd returns, final trials (NORM_CURVES), summaries, the record."""
    final = normalised_frame(stage="final")
    search = frame(
        trial_rows("s1", "CartPole-v1", "eggroll", {0: [1e9, 1e9]}, stage="search"),
        trial_rows("s2", "CartPole-v1", "eggroll", {0: [-1e9, -1e9]}, stage="search"),
        trial_rows("s3", "CartPole-v1", "openes", {0: [5e8, 5e8]}, stage="search"),
    )
    hp = {
        "eggroll-CartPole-v1": {**paper.row("eggroll", "CartPole-v1"), "sigma": 0.5},
        "openes-CartPole-v1": paper.row("openes", "CartPole-v1"),
        "ppo-CartPole-v1": paper.row("ppo", "CartPole-v1"),
    }
    run_s = {"eggroll-CartPole-v1": 10.0, "openes-CartPole-v1": 21.0}
    summaries = pd.DataFrame(
        [
            {
                "trial_id": t,
                "env": e,
                "algo": a,
                "stage": "final",
                "hparams": hp.get(t, {}),
                "run_s": run_s.get(t, 1.0),
            }
            for t, e, a in final[["trial_id", "env", "algo"]].drop_duplicates().itertuples(index=False)
        ]
        + [
            {
                "trial_id": t,
                "env": "CartPole-v1",
                "algo": a,
                "stage": "search",
                "hparams": {"sigma": 9.0},
                "run_s": 1e-3,
            }
            for t, a in (("s1", "eggroll"), ("s2", "eggroll"), ("s3", "openes"))
        ]
    )
    protocol = {
        "sampler": "random",
        "search_trials": 2,
        "tuning_seeds": [0],
        "final_seeds": [0, 1],
        "budget": "2000 env steps",
        "selection": [
            {
                "env": "CartPole-v1",
                "algo": "eggroll",
                "trial_id": "s1",
                "score": 1e9,
                "n_candidates": 2,
                "n_diverged": 0,
                "tied_with": ["s2"],
                "note": "hand-made",
            }
        ],
    }
    return final, search, summaries, protocol


def test_report_reads_only_the_final_stage(tmp_path):
    final, search, summaries, protocol = protocol_inputs()
    both = build_report(
        pd.concat([search, final], ignore_index=True),
        tmp_path / "both",
        summaries,
        protocol,
        n_bootstrap=20,
        formats=("png",),
    )
    alone = build_report(final, tmp_path / "alone", summaries, protocol, n_bootstrap=20, formats=("png",))
    with_both, with_alone = (json.loads(w["summary.json"].read_text()) for w in (both, alone))
    assert with_both["reported"] == {"final_stage": True, "n_trials": 8, "excluded": {"search": 3}}
    assert with_alone["reported"] == {"final_stage": True, "n_trials": 8, "excluded": {}}
    # the search trials, absurd returns and all, change nothing but the count of what was left out
    assert {k: v for k, v in with_both.items() if k != "reported"} == {
        k: v for k, v in with_alone.items() if k != "reported"
    }
    for name in ("final_return.md", "final_return.tex"):
        assert both[name].read_text() == alone[name].read_text()
    assert set(both) == set(alone) and {"ppo_normalised_return.png", "training_time.png"} <= set(both)

    s = with_both
    assert s["final_return"]["CartPole-v1"]["eggroll"]["mean"] == 120.0  # (110 + 130) / 2, not 1e9
    assert s["training_time"]["rows"] == [
        {
            "env": "CartPole-v1",
            "trial_id": {"eggroll": "eggroll-CartPole-v1", "openes": "openes-CartPole-v1"},
            "run_s": {"eggroll": 10.0, "openes": 21.0},
            "ratio": 2.1,
            "label": "2.10x faster",
            "paper": "1.83x faster",
        }
    ]
    assert [e["differs"] for e in s["hparams"]["by_algo"]["eggroll"]] == [["sigma"], [], [], []]
    assert s["ppo_normalised"]["envs"] == ["CartPole-v1", "Pendulum-v1"]
    report = both["report.md"].read_text()
    assert "Final stage only" in report and "Trials left out: 3 search." in report
    assert "| CartPole-v1 | 10 | 21 | 2.10x faster | 1.83x faster |" in report
    assert "random search (the paper's)" in report
    assert (
        "| CartPole-v1 | EGGROLL | `s1` | 1e+09 | — | 2 | 0 | `s2` | hand-made |" in report
    )  # no re-selection
    assert "shading: mean ± SEM over seeds" in report and "ppo_normalised_return.png" in report
    assert "brax/ant (no PPO result)" in report
    rules = rules_used("sem", final_stage=True, with_summaries=True)
    assert s["rules"] == rules and all(rule in report for rule in rules.values())
    assert RULES["reported_sweep"] not in report
