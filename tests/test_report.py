"""The report layer on synthetic results with known values.

Every number the report prints is checked against an independent computation
(scipy's t interval, hand-counted outcomes, pandas group-bys); figures are
checked through the returned Figure objects and the written files.
"""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import scipy.stats
from PIL import Image

from esbench.envs import PAPER_ENVS
from esbench.report import aggregate as agg
from esbench.report import build_report, figures, tables

STEP = 1000


def trial_rows(trial_id, env, algo, evals, diverged_from=None, throughput=None, wall_per_step=1e-3):
    """Rows of one trial. evals: {seed: [eval return or None per log point]}; log point k is at (k+1)*STEP steps.

    diverged_from: {seed: first log point index marked diverged}.
    throughput: {seed: [throughput_sps per log point]}.
    """
    diverged_from = diverged_from or {}
    rows = []
    for seed, values in evals.items():
        for k, v in enumerate(values):
            rows.append({
                "trial_id": trial_id, "env": env, "algo": algo, "seed": seed, "update": k,
                "env_steps": (k + 1) * STEP, "wall_clock_s": (k + 1) * STEP * wall_per_step * (1 + 0.1 * seed),
                "train_return": 0.0 if v is None else v,
                "eval_return_mean": np.nan if v is None else v, "eval_return_std": 1.0,
                "throughput_sps": throughput[seed][k] if throughput else 1.0 / wall_per_step,
                "diverged": k >= diverged_from.get(seed, len(values)),
            })
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
    df = agg.check_results(frame(
        trial_rows("e", "CartPole-v1", "eggroll", egg), trial_rows("o", "CartPole-v1", "openes", opn),
        trial_rows("p", "Pendulum-v1", "ppo", {0: curve(-200.0), 1: curve(-180.0)}),
    ))
    summary = agg.summarise_finals(agg.final_returns(df)).set_index(["env", "algo"])
    for algo, finals in (("eggroll", [400.0, 420.0, 455.0]), ("openes", [380.0, 390.5, 401.0, 379.0])):
        x = np.array(finals)
        lo, hi = scipy.stats.t.interval(0.95, x.size - 1, loc=x.mean(), scale=scipy.stats.sem(x))
        row = summary.loc[("CartPole-v1", algo)]
        assert row["n_seeds"] == x.size
        assert row["mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert row["ci_low"] == pytest.approx(lo, rel=1e-12) and row["ci_high"] == pytest.approx(hi, rel=1e-12)

    md = tables.final_return_markdown(summary.reset_index())
    lines = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in md.splitlines()
             if line.startswith("| ") and not line.startswith("| environment")}
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
        assert abs(float(m.group(1)) - x.mean()) <= 0.5 * 10 ** -decimals + 1e-12
        assert abs(float(m.group(2)) - half) <= 0.5 * 10 ** -decimals + 1e-12

    tex = tables.final_return_latex(summary.reset_index())
    assert r"\textbf{" in tex and "---" in tex and r"$\pm$" in tex and "Pendulum-v1 & --- & --- &" in tex
    assert tex.count(r"\\") == 3  # header + 2 rows


def test_win_tie_loss_and_x_of_n_on_hand_made_case():
    three = lambda vals: {s: [v] for s, v in enumerate(vals)}
    df = agg.check_results(frame(
        # win: eggroll clearly higher
        trial_rows("e1", "CartPole-v1", "eggroll", three([10, 11, 12])),
        trial_rows("o1", "CartPole-v1", "openes", three([1, 2, 3])),
        # tie: eggroll mean lower but the intervals overlap
        trial_rows("e2", "Pendulum-v1", "eggroll", three([5, 6, 7])),
        trial_rows("o2", "Pendulum-v1", "openes", three([5.5, 6.5, 7.5])),
        # loss: eggroll clearly lower
        trial_rows("e3", "brax/ant", "eggroll", three([1, 2, 3])),
        trial_rows("o3", "brax/ant", "openes", three([10, 11, 12])),
        # tie: a single openes seed (its interval is its value, 3) inside eggroll's interval
        trial_rows("e4", "brax/humanoid", "eggroll", three([2, 3, 4])),
        trial_rows("o4", "brax/humanoid", "openes", three([3])),
        # not counted: openes missing
        trial_rows("e5", "navix/FourRooms", "eggroll", three([1, 2, 3])),
        # not counted: openes never evaluated
        trial_rows("e6", "navix/DoorKey-8x8", "eggroll", three([1, 2, 3])),
        trial_rows("o6", "navix/DoorKey-8x8", "openes", {0: [None, None]}),
    ))
    summary = agg.summarise_finals(agg.final_returns(df))
    h2h = agg.head_to_head(summary)
    assert h2h["per_env"] == {"CartPole-v1": "win", "Pendulum-v1": "tie", "brax/ant": "loss", "brax/humanoid": "tie"}
    assert (h2h["wins"], h2h["ties"], h2h["losses"], h2h["matches_or_beats"], h2h["n"]) == (1, 2, 1, 3, 4)
    assert tables.comparison_line(h2h) == \
        "EGGROLL matches or beats OpenES on 3 of 4 environments (1 wins, 2 ties, 1 losses)."
    md = tables.final_return_markdown(summary)
    row = next(line for line in md.splitlines() if line.startswith("| brax/humanoid"))
    assert "3.000 (n=1)" in row  # a single seed is shown without an interval


def test_two_single_seeds_tie_only_when_equal():
    df = agg.check_results(frame(
        trial_rows("e1", "CartPole-v1", "eggroll", {0: [5.0]}), trial_rows("o1", "CartPole-v1", "openes", {0: [5.0]}),
        trial_rows("e2", "Pendulum-v1", "eggroll", {0: [4.0]}), trial_rows("o2", "Pendulum-v1", "openes", {0: [5.0]}),
    ))
    h2h = agg.head_to_head(agg.summarise_finals(agg.final_returns(df)))
    assert h2h["per_env"] == {"CartPole-v1": "tie", "Pendulum-v1": "loss"}


# ---------------------------------------------------------- divergence -----

def test_diverged_seed_kept_with_last_finite_evaluation():
    # seed 1 diverges at log point 2: its row there carries a garbage finite value that must be ignored
    evals = {0: [1.0, 2.0, 3.0, 4.0], 1: [1.5, 2.5, 1e9, None], 2: [0.5, 1.0, 2.0, 6.0], 3: [None, None, None, None]}
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
    c = figures.aligned_curves(df)
    assert c["seeds"] == [0, 1, 2]
    np.testing.assert_array_equal(c["env_steps"], [1000, 2000, 3000, 4000])
    np.testing.assert_array_equal(c["values"], [[1, 2, 3, 4], [1.5, 2.5, 2.5, 2.5], [0.5, 1, 2, 6]])
    fig = figures.plot_return_grid(df, n_bootstrap=50)
    line = fig.axes[0].lines[0]
    np.testing.assert_allclose(line.get_ydata(), [1.0, 11 / 6, 2.5, 12.5 / 3])


def test_seeds_aligned_on_common_log_points():
    # seed 1 has an extra evaluated point that seed 0 lacks: only the shared points are drawn
    evals = {0: [1.0, None, 3.0], 1: [2.0, 5.0, 4.0]}
    c = figures.aligned_curves(agg.check_results(frame(trial_rows("e", "CartPole-v1", "eggroll", evals))))
    np.testing.assert_array_equal(c["env_steps"], [1000, 3000])
    np.testing.assert_array_equal(c["values"], [[1.0, 3.0], [2.0, 4.0]])
    # wall-clock x = mean over seeds of wall_clock_s at that point (seed s runs 1 + 0.1 s times slower)
    np.testing.assert_allclose(c["wall_clock_s"], [1.0 * 1.05, 3.0 * 1.05])


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
    assert [t.split("\n")[0] for t in titles] == ["CartPole-v1", "brax/ant", "gymnax/Acrobot-v1"]
    assert titles[1] == "brax/ant\nno results: OpenES" and "\n" not in titles[0]
    assert fig.axes[0].get_ylabel() == "return" and all(ax.get_xlabel() == "env steps" for ax in fig.axes)
    legend_labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend_labels[:3] == ["EGGROLL", "OpenES", "PPO"]
    # fixed colours, and the plotted mean is the mean over seeds at the common log points
    ax = fig.axes[0]
    colours = [line.get_color() for line in ax.lines]
    assert colours == [figures.FIXED_COLOURS[a] for a in ("eggroll", "openes", "ppo")]
    cart = df[(df["env"] == "CartPole-v1") & (df["algo"] == "eggroll")].dropna(subset=["eval_return_mean"])
    expected = cart.groupby("env_steps")["eval_return_mean"].mean()
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), expected.index.to_numpy())
    np.testing.assert_allclose(ax.lines[0].get_ydata(), expected.to_numpy())
    assert len(ax.collections) == 3  # one CI band per algorithm

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


def test_throughput_bars_are_mean_over_seeds_of_per_seed_means():
    tp = {0: [100.0, 300.0], 1: [1000.0, 1000.0]}
    df = agg.check_results(frame(
        trial_rows("e", "CartPole-v1", "eggroll", {0: [1.0, 2.0], 1: [1.0, 2.0]}, throughput=tp),
        trial_rows("o", "CartPole-v1", "openes", {0: [1.0, 2.0]}, throughput={0: [10.0, np.nan]}),
    ))
    summary = agg.throughput_summary(df).set_index(["env", "algo"])
    assert summary.loc[("CartPole-v1", "eggroll"), "mean"] == (200.0 + 1000.0) / 2
    assert summary.loc[("CartPole-v1", "eggroll"), "min"] == 200.0
    assert summary.loc[("CartPole-v1", "openes"), "mean"] == 10.0  # non-finite chunks are ignored
    fig = figures.plot_throughput(summary.reset_index())
    ax = fig.axes[0]
    heights = {p.get_gid(): p.get_height() for p in ax.patches}
    assert heights == {"CartPole-v1|eggroll": 600.0, "CartPole-v1|openes": 10.0}
    assert ax.get_yscale() == "log" and "env steps / s" in ax.get_ylabel()


# ------------------------------------------------------------ aggregates ----

def pairwise_improvement(x, y):
    """P(x > y) + P(x = y) / 2 over all pairs, by explicit pair counting."""
    d = np.subtract.outer(np.asarray(x, float), np.asarray(y, float))
    return float((d > 0).mean() + 0.5 * (d == 0).mean())


def test_normalisation_iqm_and_probability_of_improvement():
    df = agg.check_results(frame(
        trial_rows("e1", "CartPole-v1", "eggroll", {s: [v] for s, v in enumerate([1.0, 2.0, 3.0])}),
        trial_rows("o1", "CartPole-v1", "openes", {s: [v] for s, v in enumerate([0.0, 2.0, 5.0])}),
        trial_rows("e2", "Pendulum-v1", "eggroll", {s: [v] for s, v in enumerate([-10.0, -10.0])}),
        trial_rows("p2", "Pendulum-v1", "ppo", {s: [v] for s, v in enumerate([-10.0, -10.0, -10.0])}),
    ))
    finals = agg.final_returns(df)
    scores = agg.normalised_scores(finals).set_index(["env", "algo", "seed"]).sort_index()["score"]
    np.testing.assert_allclose(scores.loc[("CartPole-v1", "eggroll")], [0.2, 0.4, 0.6])
    np.testing.assert_allclose(scores.loc[("CartPole-v1", "openes")], [0.0, 0.4, 1.0])
    np.testing.assert_array_equal(scores.loc["Pendulum-v1"], 0.5)  # max == min

    stats = agg.aggregate_statistics(finals, n_bootstrap=200, seed=0)
    egg = stats["iqm"]["eggroll"]
    # eggroll has 3 CartPole seeds and 2 Pendulum seeds: rliable's matrix keeps seeds 0 and 1 of each
    assert (egg["envs"], egg["n_seeds_per_env"], egg["n_scores"], egg["n_dropped"]) == \
        (["CartPole-v1", "Pendulum-v1"], 2, 4, 1)
    assert egg["iqm"] == pytest.approx(scipy.stats.trim_mean(np.ravel([[0.2, 0.5], [0.4, 0.5]]), 0.25), abs=1e-12)
    assert stats["iqm"]["ppo"]["ci_low"] == stats["iqm"]["ppo"]["ci_high"] == 0.5  # no spread, no width
    for s in stats["iqm"].values():
        assert s["ci_low"] <= s["iqm"] <= s["ci_high"]
    assert egg["ci_low"] < egg["ci_high"]
    # hand count over the 9 CartPole pairs: 1>0; 2>0, 2=2; 3>0, 3>2 -> (4 + 0.5) / 9
    poi = stats["probability_of_improvement"]
    assert poi["envs"] == ["CartPole-v1"] and poi["value"] == pytest.approx(0.5, abs=1e-12)
    assert poi["n_seeds_per_env"] == {"eggroll": 3, "openes": 3} and poi["n_dropped"] == {"eggroll": 0, "openes": 0}
    assert poi["ci_low"] <= poi["value"] <= poi["ci_high"] and poi["ci_low"] < poi["ci_high"]


def test_aggregate_intervals_are_deterministic_and_leave_numpy_global_rng_alone():
    rng = np.random.default_rng(0)
    parts = []
    for e, env in enumerate(["CartPole-v1", "Pendulum-v1", "brax/ant"]):
        for algo, shift in (("eggroll", 0.5), ("openes", 0.0)):
            parts.append(trial_rows(f"{algo}{e}", env, algo, {s: [float(v)] for s, v in
                                                              enumerate(rng.normal(shift, 1.0, size=5))}))
    finals = agg.final_returns(agg.check_results(frame(*parts)))
    np.random.seed(123)
    before = np.random.get_state()
    first = agg.aggregate_statistics(finals, n_bootstrap=300, seed=7)
    after = np.random.get_state()
    assert all(np.array_equal(u, v) for u, v in zip(before, after))  # the caller's global RNG state is restored
    np.random.seed(999)  # rliable draws from the global RNG: a different caller state must not change anything
    assert agg.aggregate_statistics(finals, n_bootstrap=300, seed=7) == first
    other = agg.aggregate_statistics(finals, n_bootstrap=300, seed=8)
    assert other["iqm"]["eggroll"]["iqm"] == first["iqm"]["eggroll"]["iqm"]  # point estimates do not resample
    assert (other["iqm"]["eggroll"]["ci_low"], other["iqm"]["eggroll"]["ci_high"]) != \
        (first["iqm"]["eggroll"]["ci_low"], first["iqm"]["eggroll"]["ci_high"])
    for s in (*first["iqm"].values(), *other["iqm"].values()):
        assert s["ci_low"] <= s["iqm"] <= s["ci_high"]
    poi = first["probability_of_improvement"]
    assert poi["ci_low"] <= poi["value"] <= poi["ci_high"]


def test_aggregates_with_unequal_seeds_and_missing_environments():
    # eggroll: seeds {9, 2, 5, 7} on CartPole, {4, 1, 8} on Pendulum, {0, 3, 6} on brax/ant (no OpenES there);
    # openes: 2 seeds on CartPole and Pendulum. Seed ids are not in order on purpose.
    egg = {"CartPole-v1": {9: 4.0, 2: 1.0, 5: 3.0, 7: 0.0}, "Pendulum-v1": {4: -1.0, 1: -3.0, 8: -2.0},
           "brax/ant": {0: 10.0, 3: 30.0, 6: 20.0}}
    opn = {"CartPole-v1": {0: 2.0, 1: 4.0}, "Pendulum-v1": {0: -2.0, 1: -5.0}}
    parts = [trial_rows(f"e-{env}", env, "eggroll", {s: [v] for s, v in vals.items()}) for env, vals in egg.items()]
    parts += [trial_rows(f"o-{env}", env, "openes", {s: [v] for s, v in vals.items()}) for env, vals in opn.items()]
    finals = agg.final_returns(agg.check_results(frame(*parts)))
    stats = agg.aggregate_statistics(finals, n_bootstrap=200, seed=0)

    def norm(env, value):  # min-max over every seed of both algorithms in that environment
        allv = list(egg[env].values()) + list(opn.get(env, {}).values())
        return (value - min(allv)) / (max(allv) - min(allv))

    def kept(table, env, n):  # the n smallest seed ids
        return [norm(env, table[env][s]) for s in sorted(table[env])[:n]]

    s = stats["iqm"]["eggroll"]
    assert (s["envs"], s["n_seeds_per_env"], s["n_dropped"]) == (["CartPole-v1", "Pendulum-v1", "brax/ant"], 3, 1)
    flat = [v for env in s["envs"] for v in kept(egg, env, 3)]  # seed 9 of CartPole is left out
    assert s["iqm"] == pytest.approx(scipy.stats.trim_mean(flat, 0.25), abs=1e-12)
    s = stats["iqm"]["openes"]
    assert (s["envs"], s["n_seeds_per_env"], s["n_dropped"]) == (["CartPole-v1", "Pendulum-v1"], 2, 0)
    assert s["iqm"] == pytest.approx(scipy.stats.trim_mean([norm(e, v) for e in opn for v in opn[e].values()], 0.25))

    poi = stats["probability_of_improvement"]
    assert poi["envs"] == ["CartPole-v1", "Pendulum-v1"]  # brax/ant has no OpenES
    assert poi["n_seeds_per_env"] == {"eggroll": 3, "openes": 2} and poi["n_dropped"] == {"eggroll": 1, "openes": 0}
    expected = np.mean([pairwise_improvement(kept(egg, e, 3), kept(opn, e, 2)) for e in poi["envs"]])
    assert poi["value"] == pytest.approx(expected, abs=1e-12)
    assert poi["ci_low"] <= poi["value"] <= poi["ci_high"]


# ----------------------------------------------------------- selection -----

def test_sweep_keeps_best_trial_per_env_and_algo():
    df = agg.check_results(frame(
        trial_rows("sweep-a", "CartPole-v1", "openes", {0: [1.0, 10.0], 1: [1.0, 12.0]}),
        trial_rows("sweep-b", "CartPole-v1", "openes", {0: [1.0, 30.0], 1: [1.0, 2.0]}),  # mean 16: best
        trial_rows("sweep-c", "CartPole-v1", "openes", {0: [None, None]}),  # never evaluated: last
        trial_rows("egg", "CartPole-v1", "eggroll", {0: [1.0, 5.0]}),
    ))
    chosen, selection = agg.select_trials(df)
    assert set(chosen["trial_id"]) == {"sweep-b", "egg"}
    sel = selection.set_index("algo")
    assert list(selection["algo"]) == ["eggroll", "openes"]
    assert sel.loc["openes", "trial_id"] == "sweep-b" and sel.loc["openes", "n_candidates"] == 3
    assert sel.loc["openes", "mean_final_return"] == 16.0


def test_env_and_algo_order():
    assert agg.env_order(["zzz/custom", "brax/ant", "CartPole-v1", "aaa/x"]) == \
        ["CartPole-v1", "brax/ant", "aaa/x", "zzz/custom"]
    assert agg.env_order(PAPER_ENVS[::-1]) == list(PAPER_ENVS)
    assert agg.algo_order(["evosax:CMA_ES", "ppo", "eggroll", "a"]) == ["eggroll", "ppo", "a", "evosax:CMA_ES"]
    assert figures.algo_colours(["x", "openes"])["openes"] == figures.FIXED_COLOURS["openes"]


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="eval_return_mean"):
        agg.check_results(pd.DataFrame({"trial_id": ["a"], "env": ["CartPole-v1"]}))
    with pytest.raises(ValueError, match="empty"):
        agg.check_results(pd.DataFrame(columns=list(agg.REQUIRED_COLUMNS)))


# ------------------------------------------------------------- build --------

def test_build_report_writes_valid_figures_tables_and_summary(tmp_path):
    df = pd.concat([grid_frame(), pd.DataFrame(trial_rows(
        "o-worse", "CartPole-v1", "openes", {s: curve(0.0) for s in range(3)}))], ignore_index=True)
    written = build_report(df, tmp_path / "report", n_bootstrap=50, seed=0)
    stems = ("returns_vs_env_steps", "returns_vs_wall_clock", "throughput", "aggregate")
    expected = {f"{s}.{f}" for s in stems for f in ("png", "pdf")} | \
        {"final_return.md", "final_return.tex", "summary.json", "report.md"}
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
    assert (h2h["n"], h2h["wins"]) == (2, 2)

    report = written["report.md"].read_text()
    assert "EGGROLL matches or beats OpenES on 2 of 2 environments (2 wins, 0 ties, 0 losses)." in report
    assert "`o1`" in report and "several trials" in report
    assert "![" in report and "returns_vs_env_steps.png" in report
    for rule in agg.RULES.values():
        assert rule in report
    assert written["final_return.md"].read_text() in report
    egg = summary["aggregate"]["iqm"]["eggroll"]
    assert (egg["n_seeds_per_env"], egg["n_dropped"], len(egg["envs"])) == (3, 0, 3)
    assert f"| EGGROLL | {egg['iqm']:.3f} | [{egg['ci_low']:.3f}, {egg['ci_high']:.3f}] | 3 | 3 | 0 |" in report


def test_build_report_with_one_algorithm_and_one_seed(tmp_path):
    # no OpenES, no EGGROLL, a single seed: everything is reported as missing, nothing crashes
    df = frame(trial_rows("only", "brax/ant", "ppo", {0: curve(5.0)}))
    written = build_report(df, tmp_path, n_bootstrap=20, formats=("png",))
    assert {"returns_vs_env_steps.png", "throughput.png", "aggregate.png", "report.md"} <= set(written)
    report = written["report.md"].read_text()
    assert "1 trial, 1 environment, algorithms: PPO." in report
    assert "EGGROLL vs OpenES: no environment has results for both." in report
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
