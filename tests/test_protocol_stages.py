"""The protocol's optional stages end to end on a tiny run: re-selection and the matched stage run, resume after
kill -9 between stages to the uninterrupted run's results, show in --dry-run, and reach the report."""

import json

import pandas as pd
import pytest
from test_protocol import finished, kill_when, reproduce, stages, sweep_file

from esbench import cli
from esbench.results import load, load_protocol, load_summaries
from esbench.runner.protocol_settings import RESELECT_SEED_BASE, TUNING_SEED_BASE

STAGED = {"reselect_top": 2, "reselect_seeds": 2, "matched": True}


def staged_file(tmp_path):
    return sweep_file(tmp_path, edit=lambda d: d["budgets"]["tiny"]["protocol"].update(STAGED))


def table(out, stage) -> pd.DataFrame:
    df = load(out)
    columns = ["trial_id", "seed", "log_point", "env_steps", "eval_return_mean", "train_return"]
    return df[df.stage == stage][columns].sort_values(columns[:3]).reset_index(drop=True)


@pytest.fixture(scope="module")
def staged(tmp_path_factory, jax_cache):
    """The tiny protocol with re-selection and the matched stage, run once without interruption."""
    tmp = tmp_path_factory.mktemp("staged")
    out = tmp / "out"
    reproduce(jax_cache, staged_file(tmp), out)
    return out


def test_every_stage_runs_on_its_own_seeds_and_the_record_says_what_was_chosen(staged):
    record, summaries = load_protocol(staged), load_summaries(staged)
    assert {name: s["status"] for name, s in record["stages"].items()} == {
        "search": "done",
        "reselect": "done",
        "final": "done",
        "matched": "done",
    }
    seeds = {
        stage: {s for ss in summaries[summaries.stage == stage].seeds for s in ss}
        for stage in ("search", "reselect", "final", "matched")
    }
    assert seeds == {
        "search": {TUNING_SEED_BASE},
        "reselect": {RESELECT_SEED_BASE, RESELECT_SEED_BASE + 1},
        "final": {0, 1},
        "matched": {0, 1},
    }
    by_id = summaries.set_index("trial_id")
    for entry in record["selection"]:
        again = entry["reselect"]["candidates"]
        search = sorted(entry["search"], key=lambda c: -c["score"])
        assert [c["search_trial_id"] for c in again] == [
            c["trial_id"] for c in search[:2]
        ]  # the 2 best, best first
        assert entry["reselect"]["score"] == max(c["score"] for c in again)
        winner = next(c for c in again if c["trial_id"] == entry["reselect"]["trial_id"])
        assert entry["trial_id"] == winner["search_trial_id"] and entry["score"] == winner["tuning_score"]
        assert by_id.loc[entry["final_trial_id"]].hparams == by_id.loc[entry["trial_id"]].hparams
    finals = {e["algo"]: e["trial_id"] for e in record["final"]}
    for entry in record["matched_trials"]:
        assert entry["partner_trial_id"] == finals[entry["point_of"]]
        mine, theirs = by_id.loc[entry["trial_id"]].hparams, by_id.loc[entry["partner_trial_id"]].hparams
        assert {k: mine[k] for k in ("sigma", "learning_rate", "optimizer")} == {
            k: theirs[k] for k in ("sigma", "learning_rate", "optimizer")
        }


def test_killed_between_stages_resumes_to_the_uninterrupted_results(tmp_path, jax_cache, staged):
    path, out = staged_file(tmp_path), tmp_path / "out"
    after_reselect = kill_when(jax_cache, path, out, lambda f: stages(f).count("reselect") == 4)
    assert stages(after_reselect).count("reselect") == 4 and "final" not in stages(after_reselect)
    reproduce(jax_cache, path, out)
    after = finished(out)
    assert all(after[name] == value for name, value in after_reselect.items()), "finished trials were re-run"
    assert set(after) == set(finished(staged))
    for stage in ("reselect", "final", "matched"):
        pd.testing.assert_frame_equal(table(out, stage), table(staged, stage), check_exact=True)
    assert load_protocol(out)["selection"] == load_protocol(staged)["selection"]


def test_dry_run_lists_every_stage_and_what_is_done(tmp_path, capsys, staged):
    assert (
        cli.main(["reproduce", str(staged_file(tmp_path)), "--out", str(tmp_path / "new"), "--dry-run"]) == 0
    )
    fresh = " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "new").exists()
    assert "stage 2b, re-select: per (env, algorithm) the 2 best search trials" in fresh
    assert f"re-selection seeds [{RESELECT_SEED_BASE}, {RESELECT_SEED_BASE + 1}]" in fresh
    assert "CartPole-v1 eggroll 2 0 2 480 1,920" in fresh
    assert "stage 4, matched: per env, eggroll on openes's final configuration" in fresh
    assert "CartPole-v1 eggroll 1 0 2 480 960 (at openes's winning point)" in fresh
    assert cli.main(["reproduce", str(staged_file(tmp_path)), "--out", str(staged), "--dry-run"]) == 0
    done = " ".join(capsys.readouterr().out.split())
    for entry in load_protocol(staged)["matched_trials"]:
        assert f"{entry['algo']} 1 1 2 480 960 {entry['trial_id']}" in done


def test_report_shows_the_matched_comparison_and_the_tuning_scores(tmp_path, staged):
    assert cli.main(["report", str(staged), "--out", str(tmp_path / "plots"), "--bootstrap", "20"]) == 0
    summary = json.loads((tmp_path / "plots" / "summary.json").read_text())
    record = load_protocol(staged)
    assert summary["matched"]["n"] == 2 and summary["matched_line"].startswith("Matched: EGGROLL - OpenES")
    final = {(e["algo"]): e["trial_id"] for e in record["final"]}
    for cell in summary["matched"]["per_env"]["CartPole-v1"]:
        partner = (
            cell["openes_trial_id"] if cell["configuration_of"] == "openes" else cell["eggroll_trial_id"]
        )
        assert partner == final[cell["configuration_of"]]
    pairs = {p["algo"]: p for p in summary["search"]["pairs"]}
    for entry in record["selection"]:
        p = pairs[entry["algo"]]
        assert [q["tuning_score"] for q in p["points"]] == [c["score"] for c in entry["search"]]
        assert p["winner_tuning_score"] == entry["score"]
        assert p["winners_curse"] == pytest.approx(entry["score"] - p["final_mean"])
    text = (tmp_path / "plots" / "report.md").read_text()
    assert "tuning score" in text and "winner's curse" in text and "### Matched" in text
    assert (tmp_path / "plots" / "search.png").is_file()
