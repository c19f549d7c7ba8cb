"""The statistics behind the protocol's verdicts, on synthetic data with known answers: re-selection picks better
points than single-seed selection, the paired interval covers the true difference at its nominal rate, and the
matched stage pairs each ES with the other's final configuration."""

import dataclasses
import math

import numpy as np
import pytest
import scipy.stats
import yaml
from test_protocol import _set, assert_one_error_before_anything_runs, sweep_file

from esbench.report.matched import paired_difference
from esbench.runner.config import resolve_trial
from esbench.runner.protocol import prepare_protocol
from esbench.runner.selection import Candidate, ranked, reselect, select
from esbench.runner.stages import matched_specs

PAIR = ("Noisy-v0", "es")


def _single_seed_choice(true_means, rng, noise):
    """The paper's rule: the best of one noisy draw per point."""
    candidates = [
        Candidate({"i": i}, f"t{i}", float(m + noise * rng.standard_normal()))
        for i, m in enumerate(true_means)
    ]
    return select(PAIR, candidates)["point"]["i"], candidates


def _reselected_choice(candidates, true_means, rng, noise, top, seeds):
    """The best `top` candidates re-drawn `seeds` times each; the best mean of those wins."""
    best = ranked(candidates)[:top]
    again = [
        Candidate(
            c.point,
            f"r{c.point['i']}",
            float(np.mean(true_means[c.point["i"]] + noise * rng.standard_normal(seeds))),
        )
        for c in best
    ]
    return reselect(PAIR, best, again)["point"]["i"]


def test_reselection_chooses_points_with_a_better_true_mean_than_single_seed_selection():
    rng = np.random.default_rng(0)
    true_means = np.linspace(0.0, 1.0, 12)  # 12 search points; seed noise twice the spread of the true means
    single, reselected = [], []
    for _ in range(2000):
        chosen, candidates = _single_seed_choice(true_means, rng, noise=2.0)
        single.append(true_means[chosen])
        reselected.append(true_means[_reselected_choice(candidates, true_means, rng, 2.0, top=3, seeds=3)])
    gain = np.asarray(reselected) - np.asarray(single)
    assert gain.mean() > 4 * gain.std(ddof=1) / math.sqrt(gain.size), (
        gain.mean(),
        np.mean(single),
        np.mean(reselected),
    )


def test_reselection_winner_is_the_best_on_the_fresh_seeds_and_names_its_search_trial():
    top = [Candidate({"i": 0}, "s0", 9.0), Candidate({"i": 1}, "s1", 8.0), Candidate({"i": 2}, "s2", 7.0)]
    again = [Candidate({"i": 0}, "r0", 1.0), Candidate({"i": 1}, "r1", 3.0), Candidate({"i": 2}, "r2", 3.0)]
    entry = reselect(PAIR, top, again)
    assert (entry["trial_id"], entry["score"], entry["point"]) == ("s1", 8.0, {"i": 1})
    assert entry["reselect"]["trial_id"] == "r1" and entry["reselect"]["score"] == 3.0
    assert entry["tied_with"] == ["s2"]  # equal re-selection scores: the better search rank wins
    assert [c["trial_id"] for c in entry["reselect"]["candidates"]] == ["r0", "r1", "r2"]


def test_ranked_puts_diverged_last_and_keeps_search_order_on_ties():
    cs = [Candidate({}, "a", 1.0), Candidate({}, "b", None), Candidate({}, "c", 2.0), Candidate({}, "d", 1.0)]
    assert [c.trial_id for c in ranked(cs)] == ["c", "a", "d", "b"]


def test_paired_difference_is_the_t_interval_of_the_per_seed_differences():
    a, b = {0: 5.0, 1: 7.0, 2: 6.0, 3: math.nan}, {0: 4.0, 1: 4.0, 2: 5.5, 9: 1.0}
    cell = paired_difference(a, b)
    d = np.array([1.0, 3.0, 0.5])
    half = scipy.stats.t.ppf(0.975, 2) * d.std(ddof=1) / math.sqrt(3)
    assert cell["seeds"] == [0, 1, 2] and cell["n"] == 3
    assert cell["mean"] == pytest.approx(d.mean()) and cell["ci_low"] == pytest.approx(d.mean() - half)
    assert cell["ci_high"] == pytest.approx(d.mean() + half)
    assert cell["verdict"] == ("higher" if d.mean() - half > 0 else "no difference detected")
    assert paired_difference({0: 1.0}, {0: 0.0})["verdict"] == "no difference detected"
    assert paired_difference({0: 2.0, 1: 3.0}, {0: 0.0, 1: 1.0})["verdict"] == "higher"  # constant gap of 2


def test_paired_interval_covers_the_true_difference_at_its_nominal_rate():
    rng = np.random.default_rng(1)
    true_difference, n_seeds, draws = 0.7, 5, 4000
    covered = 0
    for _ in range(draws):
        shared = 3.0 * rng.standard_normal(
            n_seeds
        )  # a seed's luck, common to both algorithms: what pairing removes
        a = dict(enumerate(10.0 + true_difference + shared + rng.standard_normal(n_seeds)))
        b = dict(enumerate(10.0 + shared + rng.standard_normal(n_seeds)))
        cell = paired_difference(a, b)
        covered += cell["ci_low"] <= true_difference <= cell["ci_high"]
    rate = covered / draws
    assert abs(rate - 0.95) < 4 * math.sqrt(0.95 * 0.05 / draws), rate


def test_matched_stage_runs_each_es_on_the_other_final_configuration(tmp_path):
    edit = _set("budgets.tiny.protocol.matched", True)
    protocol = prepare_protocol(yaml.safe_load(sweep_file(tmp_path, edit=edit).read_text()), "tiny")
    points = {
        "eggroll": {"sigma": 0.05, "learning_rate": 0.001},
        "openes": {"sigma": 0.5, "learning_rate": 0.1},
    }
    finals = {pair: resolve_trial(protocol.final_spec(pair, points[pair[1]])) for pair in protocol.pairs}
    entries = matched_specs(protocol, finals)
    assert [(e["env"], e["algo"], e["point_of"]) for e, _ in entries] == [
        ("CartPole-v1", "eggroll", "openes"),
        ("CartPole-v1", "openes", "eggroll"),
    ]
    for entry, spec in entries:
        trial, own = resolve_trial(spec), finals[entry["env"], entry["algo"]]
        other = finals[entry["env"], entry["point_of"]]
        assert entry["partner_trial_id"] == other.trial_id
        assert trial.spec.stage == "matched" and trial.spec.seeds == own.spec.seeds == other.spec.seeds
        mine, theirs = dataclasses.asdict(trial.cfg), dataclasses.asdict(other.cfg)
        shared = set(mine) & set(theirs) - {"rank"}
        assert shared >= {"sigma", "learning_rate", "optimizer", "pop_size", "layer_size"}
        assert {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}
        if entry["algo"] == "eggroll":
            assert trial.cfg.rank == own.cfg.rank


BAD = [
    (
        "reselect_top above search_trials",
        {"reselect_top": 4, "reselect_seeds": 2},
        "budgets.tiny.protocol.reselect_top = 4 is invalid; allowed: an integer from 1 to search_trials (3)",
    ),
    (
        "reselect seeds overlapping the tuning seeds",
        {"reselect_top": 2, "reselect_seeds": [1000000, 7]},
        "budgets.tiny.protocol: tuning_seeds and reselect_seeds overlap in 1000000",
    ),
    (
        "reselect seeds overlapping the final seeds",
        {"reselect_top": 2, "reselect_seeds": [1, 2000000]},
        "budgets.tiny.protocol: reselect_seeds and final_seeds overlap in 1",
    ),
    (
        "reselect_top without seeds",
        {"reselect_top": 2},
        "budgets.tiny.protocol.reselect_seeds: reselect_top = 2 needs the seeds",
    ),
    (
        "reselect seeds without reselect_top",
        {"reselect_seeds": 2},
        "budgets.tiny.protocol.reselect_top: reselect_seeds is set but reselect_top is 0",
    ),
    (
        "re-selection without a search",
        {"reselect_top": 2, "reselect_seeds": 2, "skip_search": True},
        "budgets.tiny.protocol.reselect_top: re-selection re-runs the best search points, "
        "and skip_search runs no search",
    ),
    (
        "matched without OpenES",
        {"matched": True, "space": {"eggroll": {"sigma": "paper", "learning_rate": "paper"}}},
        "budgets.tiny.protocol.matched: the matched stage runs EGGROLL and OpenES on each other's winning point, "
        "and the sweep has no openes; its algorithms: eggroll",
    ),
    (
        "matched not a boolean",
        {"matched": "yes please"},
        "budgets.tiny.protocol.matched = 'yes please' is invalid",
    ),
]


@pytest.mark.parametrize("label,settings,message", BAD, ids=[b[0] for b in BAD])
def test_bad_stage_settings_are_one_error_before_anything_runs(tmp_path, capsys, label, settings, message):
    def edit(data):
        data["budgets"]["tiny"]["protocol"].update(settings)
        if "openes" not in str(settings.get("space", "openes")):
            del data["algorithms"]["openes"], data["budgets"]["tiny"]["algorithms"]["openes"]

    assert_one_error_before_anything_runs(tmp_path, capsys, edit, message)
