"""The command line end to end: envs, run, sweep (a slice of the smoke reproduction), report."""

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from esbench import cli, paper
from esbench.envs import PAPER_ENVS
from esbench.results import load, load_summaries
from esbench.runner import expand_sweep, load_sweep_file, resolve_trial
from esbench.runner.backends import resolve_trials

ROOT = Path(__file__).resolve().parents[1]
PAPER16 = ROOT / "sweeps" / "paper16.yaml"


@pytest.mark.parametrize("budget", ["smoke", "short", "paper"])
def test_paper16_expands_to_all_48_combinations(budget):
    specs = expand_sweep(load_sweep_file(PAPER16), budget)
    assert [(s.env, s.algo) for s in specs] == [
        (e, a) for e in PAPER_ENVS for a in ("eggroll", "openes", "ppo")
    ]
    assert len({s.trial_id for s in specs}) == 48
    assert all(len(s.seeds) == {"smoke": 2, "short": 3, "paper": 10}[budget] for s in specs)
    resolve_trials(specs)  # every trial validates and its budget fits at least one update


def test_learn16_runs_ppo_on_all_16_envs_and_eggroll_on_the_cheap_ones():
    specs = expand_sweep(load_sweep_file(PAPER16), "learn16")
    es = {"CartPole-v1", "Pendulum-v1", "brax/inverted_double_pendulum", "jumanji/Game2048-v1"}
    es |= {"jumanji/Knapsack-v1", "jumanji/Snake-v1"}
    assert [(s.env, s.algo) for s in specs] == [
        (e, a) for e in PAPER_ENVS for a in ("eggroll", "ppo") if a == "ppo" or e in es
    ]
    assert all(len(s.seeds) == 3 and s.hparams["layer_size"] == 64 for s in specs)
    resolve_trials(specs)


@pytest.mark.parametrize("budget", ["short", "paper"])
def test_paper16_trials_resolve_to_exactly_their_table_rows(budget):
    """Every one of the 48 trials runs the paper's row: each field the table gives, and nothing else set."""
    for spec in expand_sweep(load_sweep_file(PAPER16), budget):
        row = paper.row(spec.algo, spec.env)
        assert spec.hparams == row, (spec.env, spec.algo)
        cfg = resolve_trial(spec).cfg
        assert {k: getattr(cfg, k) for k in row} == row, (spec.env, spec.algo)


def test_nothing_else_restates_the_papers_rows():
    """No tracked file but the vendored table holds a line that sets six or more of a row's fields to its values."""
    rows = [dict(paper.row(a, e)) for a in paper.ALGORITHMS for e in paper.env_ids()]
    pair = re.compile(r"([A-Za-z_]+)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9_.\-]+)")
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = []
    for name in tracked:
        path = ROOT / name
        if name == "esbench/paper/rl_tables.yaml" or path.suffix not in (
            ".py",
            ".yaml",
            ".yml",
            ".md",
            ".json",
            ".txt",
        ):
            continue
        for n, line in enumerate(path.read_text(errors="ignore").splitlines(), 1):
            found = {k: v for k, v in pair.findall(line)}
            for row in rows:
                same = [k for k, v in row.items() if k in found and found[k].lower() == str(v).lower()]
                if len(same) >= 6:
                    offenders.append(f"{name}:{n}")
                    break
    assert not offenders, offenders


def test_envs_lists_and_checks(capsys):
    assert cli.main(["envs"]) == 0
    listing = capsys.readouterr().out
    for env_id in ("CartPole-v1", "navix/DoorKey-8x8", "kinetix/l/hard_pinball"):
        assert env_id in listing
    assert (
        cli.main(
            ["envs", "--check", "CartPole-v1", "jumanji/Game2048-v1", "--num-envs", "4", "--steps", "10"]
        )
        == 0
    )
    checked = capsys.readouterr().out
    assert "CartPole-v1" in checked and "Game2048" in checked and "FAILED" not in checked


def test_envs_check_unknown_id(capsys):
    assert cli.main(["envs", "--check", "navix/DoorKey-8x8", "Cartpole-v1"]) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "unknown environment id 'Cartpole-v1'" in err and "CartPole-v1" in err


def test_run_then_sweep_then_report(tmp_path, capsys):
    out = tmp_path / "runs"
    code = cli.main(
        [
            "run",
            "--env",
            "CartPole-v1",
            "--algo",
            "openes",
            "--set",
            "pop_size=8",
            "--set",
            "layer_size=8",
            "--set",
            "n_layers=1",
            "--set",
            "n_parallel_evaluations=1",
            "--seeds",
            "2",
            "--env-steps",
            "640",
            "--max-episode-steps",
            "20",
            "--num-logs",
            "2",
            "--eval-episodes",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    assert "final eval return seed 0:" in capsys.readouterr().out
    assert set(load(out).seed) == {0, 1}

    # A slice of the smoke reproduction: one env x three algorithms, the smoke budget's settings.
    data = load_sweep_file(PAPER16)
    data["envs"] = ["CartPole-v1"]
    data["budgets"]["smoke"]["env_steps"] = 3200
    data["budgets"]["smoke"]["max_episode_steps"] = 20
    sweep = tmp_path / "slice.yaml"
    sweep.write_text(yaml.safe_dump(data))
    results = tmp_path / "smoke"
    assert cli.main(["sweep", str(sweep), "--out", str(results), "--quiet"]) == 0
    summaries = load_summaries(results)
    assert len(summaries) == 3 and set(summaries.algo) == {"eggroll", "openes", "ppo"}
    assert cli.main(["sweep", str(sweep), "--out", str(results), "--quiet"]) == 0
    assert "ran 0 trial(s), skipped 3" in capsys.readouterr().out

    plots = tmp_path / "plots"
    assert cli.main(["report", str(results), "--out", str(plots), "--bootstrap", "50"]) == 0
    assert (plots / "report.md").is_file()
    pngs = list(plots.glob("*.png"))
    assert pngs and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert list(plots.glob("*.pdf"))


def test_report_of_empty_folder_is_an_error(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path)]) == cli.EXIT_BAD_INPUT
    assert "no results in" in capsys.readouterr().err
