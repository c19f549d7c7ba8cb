"""The margin verdicts' statistics on synthetic data with known answers, and their bad input."""

import math

import numpy as np
import pytest
import yaml

from esbench.report import verdicts
from esbench.report.learned import seed_outcome
from esbench.report.verdicts import classify, independent_difference, paired_mean_difference, seeds_needed
from esbench.validation import ConfigError

REPS = 4000


def mc_tolerance(p: float, reps: int) -> float:
    """Four Monte Carlo standard errors of a rate p over reps draws."""
    return 4 * math.sqrt(p * (1 - p) / reps)


def equivalent_rate(true_diff, n, sd, delta, reps=REPS, paired=False, seed=0) -> float:
    """How often TOST declares equivalence (verdicts.tost_equivalent)."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(reps):
        if paired:
            d = paired_mean_difference(rng.normal(true_diff, sd, n), delta)
        else:
            d = independent_difference(rng.normal(true_diff, sd, n), rng.normal(0, sd, n), delta)
        hits += verdicts.tost_equivalent(d, delta)
    return hits / reps


def test_tost_type_one_error_at_the_margin_is_alpha():
    # true difference exactly at the margin: "equivalent" must be said at most alpha of the time
    rate = equivalent_rate(true_diff=1.5, n=20, sd=1.0, delta=1.5)
    assert abs(rate - verdicts.ALPHA) < mc_tolerance(verdicts.ALPHA, REPS)


def test_tost_type_one_error_at_the_margin_paired():
    rate = equivalent_rate(true_diff=-0.8, n=16, sd=1.0, delta=0.8, paired=True, seed=1)
    assert abs(rate - verdicts.ALPHA) < mc_tolerance(verdicts.ALPHA, REPS)


@pytest.mark.parametrize("paired", [False, True])
def test_planned_seed_count_reaches_80_percent_power(paired):
    sd, delta = 1.0, 0.9
    n = seeds_needed(sd, delta, paired, "equivalent")
    power = equivalent_rate(0.0, n, sd, delta, reps=2000, paired=paired, seed=2)
    fewer = equivalent_rate(0.0, n - 2, sd, delta, reps=2000, paired=paired, seed=3)
    tol = mc_tolerance(verdicts.POWER, 2000)
    assert power > verdicts.POWER - tol  # enough seeds reach the power
    assert fewer < power and power < verdicts.POWER + 0.1  # and the count is not wastefully high


def test_noninferiority_plan_reaches_its_power():
    sd, delta = 2.0, 1.0
    n = seeds_needed(sd, delta, False, "non-inferior")
    rng = np.random.default_rng(4)
    hits = 0
    for _ in range(2000):
        d = independent_difference(rng.normal(0, sd, n), rng.normal(0, sd, n), delta)
        hits += d.ci90[0] > -delta
    assert abs(hits / 2000 - verdicts.POWER) < 0.05


def test_the_minimum_detectable_effect_is_detected_80_percent_of_the_time():
    rng = np.random.default_rng(5)
    n, sd = 12, 1.0
    d0 = independent_difference(rng.normal(0, sd, n), rng.normal(0, sd, n), 1.0)
    se = sd * math.sqrt(2 / n)  # the true standard error
    mde = verdicts.minimum_detectable_effect(se, 2 * n - 2)
    hits = sum(
        classify(independent_difference(rng.normal(mde, sd, n), rng.normal(0, sd, n), 10.0), 10.0) == "better"
        for _ in range(2000)
    )
    assert d0 is not None and abs(hits / 2000 - verdicts.POWER) < 0.05


@pytest.mark.parametrize("paired", [False, True])
def test_bootstrap_intervals_cover_at_their_nominal_level(paired):
    rng = np.random.default_rng(6)
    reps, n, covered95, covered90 = 600, 40, 0, 0
    for i in range(reps):
        if paired:
            d = paired_mean_difference(rng.normal(0.3, 1.0, n), 1.0, bootstrap=True, seed=i)
        else:
            d = independent_difference(
                rng.normal(0.3, 1, n), rng.normal(0, 1, n), 1.0, bootstrap=True, seed=i
            )
        covered95 += d.ci95[0] <= 0.3 <= d.ci95[1]
        covered90 += d.ci90[0] <= 0.3 <= d.ci90[1]
    assert abs(covered95 / reps - 0.95) < mc_tolerance(0.95, reps) + 0.01
    assert abs(covered90 / reps - 0.90) < mc_tolerance(0.90, reps) + 0.01


def test_bootstrap_is_deterministic_given_its_seed():
    a, b = [500, 500, 481, 494, 500], [500, 500, 436, 500, 493]
    one, two = (independent_difference(a, b, 95.0, bootstrap=True, seed=0) for _ in range(2))
    assert one == two and one.method == "bootstrap"


@pytest.mark.parametrize(
    ("a", "b", "delta", "kind"),
    [
        ([10.0, 10.2, 9.8, 10.1, 9.9], [5.0, 5.2, 4.8, 5.1, 4.9], 1.0, "better"),
        ([5.0, 5.2, 4.8, 5.1, 4.9], [10.0, 10.2, 9.8, 10.1, 9.9], 1.0, "worse"),
        ([10.0, 10.2, 9.8, 10.1, 9.9], [10.05, 10.1, 9.85, 10.0, 9.95], 1.0, "equivalent"),
        # 90% lower end above -delta, upper end above +delta, 95% interval contains 0
        ([0.0, 2.0, 4.0, 1.0, 3.0], [0.0, 1.0, 2.0, 0.5, 1.5], 2.0, "non-inferior"),
        ([0.0, 10.0, -8.0, 5.0, 3.0], [1.0, -6.0, 9.0, 0.0, 2.0], 1.0, "inconclusive"),
    ],
)
def test_constructed_examples_reach_each_verdict(a, b, delta, kind):
    assert classify(independent_difference(a, b, delta), delta) == kind


def test_fewer_than_two_seeds_is_inconclusive():
    assert independent_difference([1.0], [2.0, 3.0], 1.0) is None
    assert classify(None, 1.0) == "inconclusive"
    assert verdicts.verdict(None, 1.0, 5.0)["verdict"] == "inconclusive"


def test_identical_constant_samples_are_equivalent_and_known_exactly():
    d = independent_difference([500.0] * 5, [500.0] * 5, 95.0)
    assert (d.estimate, d.se, d.ci95, d.ci90) == (0.0, 0.0, (0.0, 0.0), (0.0, 0.0))
    assert classify(d, 95.0) == "equivalent"


def test_welch_interval_is_the_explicit_formula():
    a, b, delta = np.array([1.0, 2.0, 4.0, 7.0]), np.array([0.0, 1.0, 1.5]), 2.0
    va, vb = a.var(ddof=1) / 4, b.var(ddof=1) / 3
    dof = (va + vb) ** 2 / (va**2 / 3 + vb**2 / 2)
    half = __import__("scipy").stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    d = independent_difference(a, b, delta)
    est = a.mean() - b.mean()
    assert d.ci95 == pytest.approx((est - half, est + half), rel=1e-12)
    assert d.p_noninferior == pytest.approx(
        __import__("scipy").stats.t.sf((est + delta) / math.sqrt(va + vb), dof), rel=1e-12
    )


def test_holm_step_down_is_the_explicit_rule():
    p = {"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.2}
    # sorted 0.01 <= 0.05/4, 0.03 > 0.05/3: stop; only a is rejected
    assert verdicts.holm_rejections(p) == {"a": True, "b": False, "c": False, "d": False}
    assert verdicts.holm_rejections({"a": 0.01, "b": 0.02}) == {"a": True, "b": True}  # 0.02 <= 0.05/1


def test_a_cap_needs_two_seeds_at_it():
    assert verdicts.is_capped([500, 500, 481], 500)
    assert not verdicts.is_capped([500, 499, 481], 500)
    assert not verdicts.is_capped([500, 500, 481], None)


def test_seeds_needed_shrinks_with_the_margin_and_pairing_helps():
    wide, narrow = seeds_needed(1.0, 1.0, False, "equivalent"), seeds_needed(1.0, 0.5, False, "equivalent")
    assert narrow > wide >= 2
    assert seeds_needed(1.0, 1.0, True, "equivalent") < wide
    assert seeds_needed(1.0, 1.0, False, "non-inferior") < wide
    assert seeds_needed(100.0, 0.01, False, "equivalent") is None  # beyond the cap


# ----------------------------------------------------------------------------------- bad input ---


@pytest.mark.parametrize("margin", [0, 1, 1.5, -0.1, True, "0.2"])
def test_a_margin_outside_zero_one_is_one_error(margin):
    with pytest.raises(ConfigError, match=r"margin = .* allowed: a number in \(0, 1\)"):
        verdicts.check_margin(margin)


def _cpu_sweep(edit):
    from pathlib import Path

    data = yaml.safe_load((Path(__file__).resolve().parents[1] / "sweeps" / "paper16.yaml").read_text())
    edit(data)
    return data


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["budgets"]["cpu"]["protocol"].update(margin=1.5), r"margin = 1.5 is invalid"),
        (lambda d: d["references"].pop("Pendulum-v1"), r"margin: Pendulum-v1 has no reference scores"),
        (lambda d: d["references"]["Pendulum-v1"].update(reference=-2000), r"must be above random"),
        (lambda d: d["references"]["CartPole-v1"].update(cap=100), r"cap = 100 is below reference"),
        (lambda d: d["references"].update({"Nope-v0": {"random": 0, "reference": 1}}), r"references.Nope-v0"),
    ],
)
def test_bad_verdict_settings_are_one_error(edit, message):
    from esbench.runner.protocol import prepare_protocol

    with pytest.raises(ConfigError, match=message):
        prepare_protocol(_cpu_sweep(edit), "cpu")


# ------------------------------------------------------------------------- the report and the planner ---

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
REFERENCES = {
    "CartPole-v1": {"random": 23.0, "reference": 500.0, "cap": 500.0},
    "Pendulum-v1": {"random": -1204.0, "reference": -200.0},
    "jumanji/Knapsack-v1": {"random": 4.2, "reference": 20.1},
}


@pytest.fixture(scope="module")
def reference_run():
    from esbench.results import load, load_protocol, load_summaries

    folder = ROOT / "results" / "cpu"
    record = {**load_protocol(folder), "margin": 0.2, "competence": 0.5, "references": REFERENCES}
    return load(folder), load_summaries(folder), record


def _report(tmp_path, reference_run, **kwargs):
    import json

    from esbench.report import build_report

    df, summaries, record = reference_run
    build_report(
        df, tmp_path, summaries=summaries, protocol=record, formats=("png",), n_bootstrap=50, **kwargs
    )
    return json.loads((tmp_path / "summary.json").read_text()), (tmp_path / "report.md").read_text()


@pytest.fixture(scope="module")
def declared(reference_run, tmp_path_factory):
    """The committed run's report at the declared margin, built once: (summary.json, report.md)."""
    return _report(tmp_path_factory.mktemp("declared"), reference_run)


def test_the_report_gives_each_comparison_one_verdict_at_the_declared_margin(declared):
    data, text = declared
    v = data["verdicts"]
    assert (v["margin"], v["post_hoc"]) == (0.2, False)
    assert v["tuned"]["n"] == 3 and v["matched"]["n"] == 6
    for family in ("tuned", "matched"):
        cells = v[family]["per_comparison"].values()
        assert sum(v[family]["counts"].values()) == v[family]["n"]
        for c in cells:
            assert c["verdict"] == verdicts.classify(
                verdicts.Difference(
                    c["estimate"], c["se"], c["dof"], tuple(c["ci95"]), tuple(c["ci90"]), c["method"], 0.0
                ),
                c["delta"],
            )
            assert c["in_margins"]["ci90"] == pytest.approx([x / c["delta"] for x in c["ci90"]])
    # CartPole's seeds sit at the cap: its comparisons are bootstrapped; the others use t intervals
    assert v["tuned"]["per_comparison"]["CartPole-v1"]["method"] == "bootstrap"
    assert v["tuned"]["per_comparison"]["Pendulum-v1"]["method"] == "welch"
    assert data["verdict_lines"][0] in text and "(declared)" in data["verdict_lines"][0]
    assert "not set beside these" in text  # the paper's counts are not presented as comparable


def test_the_tuned_pendulum_verdict_is_welch_computed_by_hand(declared, reference_run):
    import scipy.stats

    from esbench.report import aggregate as agg

    data, _ = declared
    df, _, record = reference_run
    finals = agg.final_returns(agg.reported_trials(agg.check_results(df))[0])
    pend = finals[finals["env"] == "Pendulum-v1"]
    a, b = (pend.loc[pend["algo"] == algo, "final_return"].to_numpy() for algo in ("eggroll", "openes"))
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    dof = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = scipy.stats.t.ppf(0.975, dof) * math.sqrt(va + vb)
    delta = 0.2 * (-200.0 + 1204.0)
    cell = data["verdicts"]["tuned"]["per_comparison"]["Pendulum-v1"]
    est = a.mean() - b.mean()
    assert cell["ci95"] == pytest.approx([est - half, est + half], rel=1e-9)
    expected = "better" if est - half > 0 else "worse" if est + half < 0 else None
    if expected:
        assert cell["verdict"] == expected
    assert cell["delta"] == pytest.approx(delta)
    tuned = data["verdicts"]["tuned"]
    p = {k: c["p_noninferior"] for k, c in tuned["per_comparison"].items()}
    assert tuned["holm_noninferior"] == sorted(k for k, r in verdicts.holm_rejections(p).items() if r)


def test_an_env_without_final_returns_on_a_side_is_kept_as_inconclusive():
    import pandas as pd

    from esbench.report.equivalence import margin_verdicts

    finals = pd.DataFrame(
        {
            "env": ["Pendulum-v1"] * 4,
            "algo": ["eggroll", "eggroll", "openes", "openes"],
            "trial_id": ["e", "e", "o", "o"],
            "seed": [0, 1, 0, 1],
            "final_return": [-300.0, -320.0, float("nan"), float("nan")],
        }
    )
    record = {"margin": 0.2, "references": {"Pendulum-v1": REFERENCES["Pendulum-v1"]}}
    cell = margin_verdicts(finals, finals, None, record)["tuned"]["per_comparison"]["Pendulum-v1"]
    assert (cell["verdict"], cell["note"], cell["n_b"]) == ("inconclusive", "no final return on a side", 0)


def test_another_margin_is_labelled_post_hoc(tmp_path, reference_run):
    data, text = _report(tmp_path, reference_run, margin=0.1)
    assert data["verdicts"]["post_hoc"] and "post hoc: the declared 20%" in data["verdict_lines"][0]


def test_the_aggregates_use_the_fixed_references_and_r0_per_algorithm(declared):
    data, _ = declared
    assert data["aggregate"]["normalisation"] == "reference"
    r0 = data["ppo_normalised"]["normalising_returns"]["CartPole-v1"]["r0"]
    learned = {(c["env"], c["algo"]): c["untrained_mean"] for c in data["learned"]["cells"]}
    assert r0 == {algo: pytest.approx(learned["CartPole-v1", algo]) for algo in ("eggroll", "openes", "ppo")}
    poi = data["aggregate"]["probability_of_improvement"]
    assert poi["conclusive"] == (not poi["ci_low"] <= 0.5 <= poi["ci_high"])


def test_each_seed_is_judged_against_its_own_untrained_return_and_the_threshold(declared):
    data, _ = declared
    for c in data["learned"]["cells"]:
        ref = REFERENCES[c["env"]]
        threshold = ref["random"] + 0.5 * (ref["reference"] - ref["random"])
        assert c["competence_threshold"] == pytest.approx(threshold)
        for s in c["seeds"].values():
            expected = (
                "not learned"
                if s["final"] <= s["untrained"]
                else "learned"
                if s["final"] >= threshold
                else "improved"
            )
            assert s["outcome"] == expected


def test_each_pair_and_each_env_gets_an_outcome_from_its_gain_half_width_and_threshold(declared):
    data, text = declared
    rank = ("learned", "improved below the threshold", "not learned")
    best = {}
    for c in data["learned"]["cells"]:
        gain_is_clear = c["final_mean"] - c["untrained_mean"] > c["half_width"]
        expected = (
            "not learned"
            if not gain_is_clear
            else "learned"
            if c["final_mean"] >= c["competence_threshold"]
            else "improved below the threshold"
        )
        assert c["outcome"] == expected, c
        best[c["env"]] = min(best.get(c["env"], "not learned"), expected, key=rank.index)
    assert {env: e["outcome"] for env, e in data["learned"]["envs"].items()} == best
    assert "| environment | outcome | by |" in text


def test_a_seed_learned_only_at_a_declared_threshold():
    assert seed_outcome(5.0, 0.0, 4.0) == "learned"
    assert seed_outcome(3.0, 0.0, 4.0) == "improved"
    assert seed_outcome(1e-9, 0.0, None) == "improved"  # no threshold: a gain, however small, is all it shows
    assert seed_outcome(0.0, 0.0, None) == "not learned"
    assert seed_outcome(float("nan"), 0.0, None) == "not learned"


def test_the_winners_curse_leaves_out_pairs_at_the_cap(declared):
    data, text = declared
    capped = {(p["env"], p["algo"]) for p in data["search"]["pairs"] if p["capped"]}
    assert capped == {
        (p["env"], p["algo"]) for p in data["search"]["pairs"] if p["winner_tuning_score"] >= 500
    }
    assert capped and all(env == "CartPole-v1" for env, _ in capped)
    assert all(p["curse_se"] > 0 for p in data["search"]["pairs"])
    assert "Left out of these counts" in text


def pilot_sweep() -> dict:
    """test_protocol's tiny protocol, with a matched stage, a margin and CartPole's references."""
    from test_protocol import TINY

    data = yaml.safe_load(TINY)
    data["references"] = {"CartPole-v1": {"random": 9.0, "reference": 20, "cap": 20}}
    protocol = data["budgets"]["tiny"]["protocol"]
    protocol.update(search_trials=2, final_seeds=4, matched=True, margin=0.2)
    return data


def write_sweep(path, data):
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def pilot(tmp_path_factory):
    from esbench import cli

    tmp = tmp_path_factory.mktemp("pilot")
    sweep = write_sweep(tmp / "tiny.yaml", pilot_sweep())
    assert cli.main(["reproduce", str(sweep), "--pilot", "--out", str(tmp / "pilot"), "--quiet"]) == 0
    return sweep, tmp / "pilot"


def test_the_planner_turns_the_pilots_spread_into_seeds(pilot, capsys):
    from esbench import cli
    from esbench.report.power import plan_power
    from esbench.results import load, load_protocol
    from esbench.runner.protocol import prepare_protocol
    from esbench.runner.sweep_file import load_sweep_file

    sweep, folder = pilot
    plan = plan_power(prepare_protocol(load_sweep_file(sweep)), folder)
    record, df = load_protocol(folder), load(folder)
    assert record["pilot"] and min(record["final_seeds"]) >= 9_000_000
    final = {e["algo"]: e["trial_id"] for e in record["final"]}
    last = df.sort_values("env_steps").groupby(["trial_id", "seed"]).last()["eval_return_mean"]
    a, b = (last[final[algo]].to_numpy() for algo in ("eggroll", "openes"))
    pooled = math.sqrt((3 * a.var(ddof=1) + 3 * b.var(ddof=1)) / 6)
    tuned = plan["rows"][0]
    assert tuned["comparison"] == "tuned" and tuned["sd"] == pytest.approx(pooled)
    assert tuned["delta"] == pytest.approx(0.2 * 11)
    assert tuned["seeds_equivalent"] == seeds_needed(pooled, 0.2 * 11, False, "equivalent")
    assert sorted(r["comparison"] for r in plan["rows"][1:]) == [
        "matched at eggroll's configuration",
        "matched at openes's configuration",
    ]
    assert cli.main(["power", str(sweep), "--pilot", str(folder)]) == 0
    assert "final seeds for equivalence" in capsys.readouterr().out


def test_a_planner_needs_a_pilot_of_the_same_sweep_and_budget(pilot, tmp_path, capsys):
    from esbench import cli

    sweep, folder = pilot
    other = write_sweep(tmp_path / "other.yaml", {**pilot_sweep(), "name": "other"})
    assert cli.main(["power", str(other), "--pilot", str(folder)]) == 2
    assert "is a run of sweep 'tiny'" in capsys.readouterr().err
    assert cli.main(["power", str(sweep), "--pilot", str(tmp_path / "none")]) == 2
    assert "no protocol.json, so not a pilot" in capsys.readouterr().err
    data = pilot_sweep()
    del data["budgets"]["tiny"]["protocol"]["margin"]
    no_margin = write_sweep(tmp_path / "no_margin.yaml", data)
    assert cli.main(["power", str(no_margin), "--pilot", str(folder)]) == 2
    assert "margin: not declared" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --pilot is required
        cli.main(["power", str(sweep)])
