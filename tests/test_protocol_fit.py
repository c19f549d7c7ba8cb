"""A protocol whose search space holds points too big for the device: those points fail alone (a failure
record each, ranked last), the search and the final stage finish, and the command says some trials failed."""

import json
import textwrap

import pytest
import yaml

from esbench import cli
from esbench.results import load_failures, load_protocol, load_summaries

SWEEP = """
name: fit
envs: [CartPole-v1]
algorithms: {eggroll: {}}
paper_rows: true
trial: {seeds: 1, env_steps: 20000, num_logs: 2, eval_episodes: 2, max_episode_steps: 20}
budgets:
  tiny:
    algorithms:
      eggroll: {rank: 1, layer_size: 8, n_layers: 1, n_parallel_evaluations: 1}
    protocol:
      search_trials: 3
      tuning_seeds: 1
      final_seeds: 2
      space:
        eggroll: {pop_size: [8, 512], sigma: paper}
default_budget: tiny
"""
LIMIT = "300kB"  # a population of 8 fits (about 0.1 MB on this CPU), one of 512 does not (0.5 MB)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fit")
    path, out = tmp / "sweep.yaml", tmp / "out"
    path.write_text(yaml.safe_dump(yaml.safe_load(textwrap.dedent(SWEEP))))
    code = cli.main(["reproduce", str(path), "--out", str(out), "--memory-limit", LIMIT, "--quiet"])
    return path, out, code


def test_points_that_cannot_fit_rank_last_and_the_protocol_finishes(run):
    _, out, code = run
    assert code == 1  # some trials failed
    record, failures = load_protocol(out), load_failures(out)
    (entry,) = record["selection"]
    failed = [c for c in entry["search"] if "failed" in c]
    assert {c["trial_id"] for c in failed} == set(failures) and len(failed) == entry["n_failed"] >= 1
    assert all(f["kind"] == "memory" and "cannot fit 300.0 kB" in f["reason"] for f in failures.values())
    assert all(c["score"] is None for c in failed)  # no score: ranked after every point that ran
    assert entry["point"]["pop_size"] == 8
    assert record["stages"]["search"] == {"status": "done", "trials": 3, "finished": 3 - len(failed)} | {
        "failed": len(failed)
    }
    assert record["stages"]["final"]["status"] == "done"
    finals = load_summaries(out).query("stage == 'final'")
    assert [h["pop_size"] for h in finals.hparams] == [8]


def test_a_rerun_runs_nothing_again(run, capsys):
    path, out, _ = run
    before = json.dumps(load_protocol(out), sort_keys=True)
    cli.main(["reproduce", str(path), "--out", str(out), "--memory-limit", LIMIT, "--quiet"])
    assert "ran 0 trial(s)" in capsys.readouterr().out
    assert json.dumps(load_protocol(out), sort_keys=True) == before
