"""`esbench reproduce`: the paper's protocol (search, select, final) resumes after kill -9, keeps its seeds apart,
feeds the report only final trials, rejects bad input before anything runs, and reruns TPE to the same points."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from esbench import cli, paper
from esbench.results import load, load_protocol, load_summaries
from esbench.runner import samplers
from esbench.runner.config import resolve_trial
from esbench.runner.protocol import Protocol, prepare_protocol
from esbench.runner.protocol_record import base_record
from esbench.runner.protocol_settings import PILOT_SEED_BASES, TUNING_SEED_BASE, protocol_settings
from esbench.runner.stages import Final, ProtocolState, matched_specs, next_round
from esbench.runner.sweep import parse_sweep
from esbench.runner.sweep_file import load_sweep_file
from esbench.validation import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PAPER16 = ROOT / "sweeps" / "paper16.yaml"
NON_TIME_COLUMNS = [
    "trial_id",
    "env",
    "algo",
    "stage",
    "seed",
    "log_point",
    "update",
    "env_steps",
    "simulated_env_steps",
    "train_return",
    "eval_return_mean",
    "eval_return_std",
    "diverged",
]

# Two (env, algorithm) pairs, so each stage has two groups to kill between; value-only spaces, so a
# pair's search points run as one program; the budget fixes populations and networks.
TINY = """
name: tiny
envs: [CartPole-v1]
algorithms: {eggroll: {}, openes: {}}
paper_rows: true
trial: {seeds: 1, env_steps: 480, num_logs: 4, eval_episodes: 2, max_episode_steps: 20}
budgets:
  tiny:
    algorithms:
      eggroll: {pop_size: 8, rank: 1, layer_size: 8, n_layers: 1, n_parallel_evaluations: 1}
      openes: {pop_size: 8, layer_size: 8, n_layers: 1, n_parallel_evaluations: 1}
    protocol:
      search_trials: 3
      tuning_seeds: 1
      final_seeds: 2
      space:
        eggroll: {sigma: paper, learning_rate: paper}
        openes: {sigma: paper, learning_rate: paper}
default_budget: tiny
"""


def sweep_file(tmp_path, body=TINY, edit=None, name="sweep.yaml") -> Path:
    data = yaml.safe_load(textwrap.dedent(body))
    if edit is not None:
        edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _command(path, out, *args):
    return [sys.executable, "-m", "esbench.cli", "reproduce", str(path), "--out", str(out), "--quiet", *args]


def _env(cache):
    return {
        **os.environ,
        "JAX_COMPILATION_CACHE_DIR": str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }


def reproduce(cache, path, out, *args):
    done = subprocess.run(
        _command(path, out, *args), cwd=ROOT, env=_env(cache), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def finished(out) -> dict[str, tuple[str, int]]:
    """{trial folder: (stage, mtime of its summary)} of every finished trial."""
    root = Path(out) / "trials"
    folders = [p for p in root.glob("*") if not p.name.startswith(".tmp-")] if root.is_dir() else []
    return {
        p.name: (
            json.loads((p / "config.json").read_text())["stage"],
            (p / "summary.json").stat().st_mtime_ns,
        )
        for p in folders
        if (p / "summary.json").is_file() and (p / "policy.msgpack").is_file()
    }


def kill_when(cache, path, out, condition, *args, timeout=600) -> dict:
    """Start the protocol, SIGKILL it as soon as `condition(finished(out))` holds; the trials finished by then."""
    proc = subprocess.Popen(
        _command(path, out, *args),
        cwd=ROOT,
        env=_env(cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None and not condition(finished(out)):
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return finished(out)


def stages(folders: dict) -> list[str]:
    return [stage for stage, _ in folders.values()]


def final_table(out) -> pd.DataFrame:
    df = load(out)
    df = df[df.stage == "final"][NON_TIME_COLUMNS]
    return df.sort_values(["trial_id", "seed", "log_point"]).reset_index(drop=True)


def selection(out) -> list[dict]:
    return load_protocol(out)["selection"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, jax_cache):
    """The tiny protocol, run once without interruption."""
    tmp = tmp_path_factory.mktemp("reference")
    out = tmp / "out"
    reproduce(jax_cache, sweep_file(tmp), out)
    return out


# ------------------------------------------------------------------------------ kill -9 ---


def test_killed_during_search_and_during_final_gives_the_same_final_table(tmp_path, jax_cache, reference):
    path, out = sweep_file(tmp_path), tmp_path / "out"
    in_search = kill_when(jax_cache, path, out, lambda f: stages(f).count("search") >= 3)
    assert 3 <= stages(in_search).count("search") < 6 and "final" not in stages(in_search), (
        "killed during the search"
    )
    in_final = kill_when(jax_cache, path, out, lambda f: "final" in stages(f))
    assert stages(in_final).count("search") == 6 and stages(in_final).count("final") == 1, (
        "killed during the final stage"
    )
    assert all(in_final[name] == value for name, value in in_search.items()), (
        "finished search trials were re-run"
    )

    reproduce(jax_cache, path, out)
    after = finished(out)
    assert all(after[name] == value for name, value in in_final.items()), "finished trials were re-run"
    assert set(after) == set(finished(reference)), (
        "the resumed run ran other trials than the uninterrupted one"
    )
    pd.testing.assert_frame_equal(final_table(out), final_table(reference), check_exact=True)
    assert selection(out) == selection(reference)
    df = load(out)
    assert not df.duplicated(["trial_id", "seed", "log_point"]).any()
    record = load_protocol(out)
    assert record["stages"]["search"] == {"status": "done", "trials": 6, "finished": 6}
    assert record["stages"]["final"] == {"status": "done", "trials": 2, "finished": 2}


def test_a_finished_protocol_reruns_nothing(tmp_path, jax_cache, reference):
    before = finished(reference)
    done = reproduce(jax_cache, sweep_file(tmp_path), reference)
    assert "ran 0 trial(s), skipped 8 already finished" in done.stdout
    assert finished(reference) == before


# -------------------------------------------------------------------------------- seeds ---


def test_final_seeds_are_disjoint_from_tuning_seeds(reference):
    summaries = load_summaries(reference)
    tuning = {s for seeds in summaries[summaries.stage == "search"].seeds for s in seeds}
    final = {s for seeds in summaries[summaries.stage == "final"].seeds for s in seeds}
    assert tuning == {TUNING_SEED_BASE} and final == {0, 1}
    record = load_protocol(reference)
    assert (record["tuning_seeds"], record["final_seeds"]) == ([TUNING_SEED_BASE], [0, 1])


def test_a_pilot_runs_every_stage_on_seeds_no_final_run_uses():
    data = yaml.safe_load(PAPER16.read_text())
    final = prepare_protocol(data, "cpu")
    pilot = prepare_protocol(data, "cpu", pilot=True)
    stages = ("tuning_seeds", "reselect_seeds", "final_seeds")
    for name in stages:
        ours, theirs = getattr(final.settings, name), getattr(pilot.settings, name)
        base = PILOT_SEED_BASES[name]
        assert theirs == tuple(range(base, base + len(ours)))  # as many seeds, from the pilot's base
    pilot_seeds = {s for name in stages for s in getattr(pilot.settings, name)}
    assert not pilot_seeds & {s for name in stages for s in getattr(final.settings, name)}
    assert pilot.settings.pilot and not final.settings.pilot


def _cpu_protocol(pilot=False, **protocol):
    """paper16.yaml's cpu budget with `protocol` keys added to its protocol section."""
    data = yaml.safe_load(PAPER16.read_text())
    data["budgets"]["cpu"]["protocol"].update(protocol)
    return prepare_protocol(data, "cpu", pilot=pilot)


def test_an_env_of_final_seeds_per_env_runs_its_final_and_matched_stages_on_its_own_seeds():
    protocol = _cpu_protocol(final_seeds_per_env={"Pendulum-v1": 7, "jumanji/Knapsack-v1": [40, 41]})
    s = protocol.settings
    assert s.final_seeds == (0, 1, 2, 3, 4)
    assert s.final_seeds_per_env == {"Pendulum-v1": tuple(range(7)), "jumanji/Knapsack-v1": (40, 41)}
    own = {"CartPole-v1": s.final_seeds, **s.final_seeds_per_env}
    finals = {}
    for pair in protocol.pairs:
        spec = protocol.final_spec(pair, next_round(protocol, pair, [])[0])
        assert spec.seeds == own[pair[0]], pair
        finals[pair] = resolve_trial(spec)
    matched = matched_specs(protocol, finals)
    assert matched and all(spec.seeds == own[entry["env"]] for entry, spec in matched)
    heading = " ".join(Final().heading(ProtocolState(protocol, None)))
    assert (
        "x 5 seeds [0, 1, 2, 3, 4] (Pendulum-v1: 7 seeds [0, ..., 6]; jumanji/Knapsack-v1: 2 seeds [40, 41])"
        in heading
    )
    recorded = base_record(protocol)["final_seeds_per_env"]
    assert recorded == {"Pendulum-v1": list(range(7)), "jumanji/Knapsack-v1": [40, 41]}
    # none: every env on final_seeds
    assert _cpu_protocol(final_seeds_per_env={}).settings.final_seeds_per_env == {}


@pytest.mark.parametrize(
    "per_env,message",
    [
        (
            {"Pendulm-v1": 24},
            "budgets.cpu.protocol.final_seeds_per_env.Pendulm-v1: not one of the sweep's envs. Did you mean "
            "'Pendulum-v1'? Allowed: ",
        ),
        (
            {"Pendulum-v1": [3, TUNING_SEED_BASE]},
            f"budgets.cpu.protocol: tuning_seeds and final_seeds_per_env.Pendulum-v1 overlap in {TUNING_SEED_BASE}",
        ),
        (
            {"Pendulum-v1": 0},
            "budgets.cpu.protocol.final_seeds_per_env.Pendulum-v1 = 0 is invalid; allowed: a count >= 1 or a list",
        ),
        (
            {"Pendulum-v1": "x"},
            "budgets.cpu.protocol.final_seeds_per_env.Pendulum-v1 = 'x' is invalid; allowed: a count >= 1 or a list",
        ),
        ([24], "budgets.cpu.protocol.final_seeds_per_env: expected a mapping"),
    ],
)
def test_bad_final_seeds_per_env_is_one_error(per_env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        _cpu_protocol(final_seeds_per_env=per_env)


def test_an_env_outside_the_budget_in_final_seeds_per_env_is_ignored():
    protocol = _cpu_protocol(final_seeds_per_env={"Pendulum-v1": 7, "brax/ant": 3})
    assert "brax/ant" not in protocol.sweep.envs  # one of the file's envs, not the cpu budget's
    assert protocol.settings.final_seeds_per_env == {"Pendulum-v1": tuple(range(7))}


def test_a_pilot_moves_the_final_seeds_per_env_too():
    pilot = _cpu_protocol(pilot=True, final_seeds_per_env={"Pendulum-v1": [0, 5, 9]})
    base = PILOT_SEED_BASES["final_seeds"]
    assert pilot.settings.final_seeds_per_env == {"Pendulum-v1": (base, base + 1, base + 2)}
    assert pilot.settings.final_seeds_for("CartPole-v1") == tuple(range(base, base + 5))


def test_winner_is_rerun_with_its_hyperparameters_on_the_final_seeds(reference):
    summaries = load_summaries(reference).set_index("trial_id")
    record = load_protocol(reference)
    for entry in record["selection"]:
        winner, final = summaries.loc[entry["trial_id"]], summaries.loc[entry["final_trial_id"]]
        assert (winner.stage, final.stage) == ("search", "final")
        assert winner.hparams == final.hparams
        assert {k: winner.hparams[k] for k in entry["point"]} == entry["point"]
        scores = [
            s
            for s in summaries[
                (summaries.stage == "search") & (summaries.algo == entry["algo"])
            ].final_eval_return_mean
        ]
        assert entry["score"] == max(scores) and entry["n_candidates"] == 3


# ------------------------------------------------------------------------------- report ---


def test_report_of_a_protocol_folder_reads_only_final_trials(tmp_path, reference):
    from esbench.report import build_report

    build_report(
        load(reference),
        tmp_path / "report",
        summaries=load_summaries(reference),
        protocol=load_protocol(reference),
        n_bootstrap=20,
        formats=("png",),
    )
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    stage = {name: s for name, (s, _) in finished(reference).items()}
    shown = [r["trial_id"] for r in summary["selection"]]
    shown += [a["trial_id"] for per_env in summary["final_return"].values() for a in per_env.values()]
    shown += [e["trial_id"] for entries in summary["hparams"]["by_algo"].values() for e in entries]
    assert shown and {stage[t] for t in shown} == {"final"}
    assert summary["reported"] == {"final_stage": True, "n_trials": 2, "excluded": {"search": 6}}
    assert "random search (the paper's)" in summary["hparams"]["search"]


# ---------------------------------------------------------------------------- bad input ---


def _set(path: str, value):
    """An edit of the sweep data: set a dotted key."""

    def edit(data):
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value

    return edit


BAD = [
    (
        "unknown search key",
        _set("budgets.tiny.protocol.space.eggroll", {"sigm": "paper"}),
        "budgets.tiny.protocol.space.eggroll.sigm: unknown hyperparameter for eggroll. Did you mean 'sigma'?",
    ),
    (
        "a key the algorithm lacks",
        _set("budgets.tiny.protocol.space.openes", {"rank": [1, 2]}),
        "budgets.tiny.protocol.space.openes.rank: unknown hyperparameter for openes",
    ),
    (
        "empty space",
        _set("budgets.tiny.protocol.space.eggroll", {}),
        "budgets.tiny.protocol.space.eggroll: expected 'paper' or a non-empty mapping",
    ),
    (
        "empty choice list",
        _set("budgets.tiny.protocol.space.eggroll", {"sigma": []}),
        "budgets.tiny.protocol.space.eggroll.sigma.choice: expected a non-empty list",
    ),
    (
        "a value the algorithm rejects",
        _set("budgets.tiny.protocol.space.eggroll", {"sigma": [0.1, 0.2, -1.0]}),
        "budgets.tiny.protocol.space.eggroll.sigma = -1.0 fails on CartPole-v1: "
        "search.hparams.sigma = -1.0 is invalid; allowed: a number > 0",
    ),
    (
        "a search value bigger than the budget",
        lambda d: (
            d["budgets"]["tiny"]["algorithms"]["eggroll"].pop("n_parallel_evaluations"),
            _set("budgets.tiny.protocol.space.eggroll.n_parallel_evaluations", [1, 8, 64])(d),
        ),
        "budgets.tiny.protocol.space.eggroll: the space's biggest update (n_parallel_evaluations=64) does not fit "
        "budgets.tiny on CartPole-v1 (narrow the space or raise env_steps): search [CartPole-v1 x eggroll]: "
        "env_steps: a budget of 480 env steps is smaller than one update on CartPole-v1 (at least 512 env steps)",
    ),
    (
        "a search point bigger than the budget",
        lambda d: (
            [
                d["budgets"]["tiny"]["algorithms"]["eggroll"].pop(k)
                for k in ("pop_size", "n_parallel_evaluations")
            ],
            _set(
                "budgets.tiny.protocol.space.eggroll",
                {"pop_size": [8, 16], "n_parallel_evaluations": [1, 32], "sigma": "paper"},
            )(d),
        ),
        "budgets.tiny.protocol.space.eggroll: the space's biggest update (pop_size=16, n_parallel_evaluations=32) does "
        "not fit budgets.tiny on CartPole-v1 (narrow the space or raise env_steps): search [CartPole-v1 x eggroll]: "
        "env_steps: a budget of 480 env steps is smaller than one update on CartPole-v1 (at least 512 env steps)",
    ),
    (
        "a searched key the budget fixes",
        _set("budgets.tiny.protocol.space.eggroll.pop_size", [8, 16]),
        "budgets.tiny.protocol.space.eggroll.pop_size: the budget 'tiny' sets pop_size",
    ),
    (
        "a space smaller than the search",
        _set("budgets.tiny.protocol.space.eggroll", {"sigma": [0.1, 0.2]}),
        "budgets.tiny.protocol.space.eggroll: 2 distinct points, fewer than search_trials = 3",
    ),
    (
        "a space for an algorithm the sweep lacks",
        _set("budgets.tiny.protocol.space.ppo", "paper"),
        "budgets.tiny.protocol.space.ppo: not one of the sweep's algorithms",
    ),
    (
        "overlapping seed lists",
        _set("budgets.tiny.protocol.tuning_seeds", [1, 5]),
        "budgets.tiny.protocol: tuning_seeds and final_seeds overlap in 1; every stage must run on fresh seeds",
    ),
    (
        "final seeds of an env overlapping tuning seeds",
        _set("budgets.tiny.protocol.final_seeds_per_env", {"CartPole-v1": [7, TUNING_SEED_BASE]}),
        f"budgets.tiny.protocol: tuning_seeds and final_seeds_per_env.CartPole-v1 overlap in {TUNING_SEED_BASE}",
    ),
    (
        "unknown protocol key",
        _set("budgets.tiny.protocol.serach_trials", 3),
        "budgets.tiny.protocol.serach_trials: unknown key. Did you mean 'search_trials'?",
    ),
    (
        "unknown sampler",
        _set("budgets.tiny.protocol.sampler", "grid"),
        "budgets.tiny.protocol.sampler = 'grid' is invalid; allowed: random, tpe",
    ),
    (
        "bad seeds",
        _set("budgets.tiny.protocol.final_seeds", 0),
        "budgets.tiny.protocol.final_seeds = 0 is invalid; allowed: a count >= 1 or a list of integer seeds",
    ),
    (
        "a search section",
        _set("search", {"grid": {"eggroll": {"sigma": [0.1, 0.2]}}}),
        "search: `esbench reproduce` searches protocol.space",
    ),
    (
        "an env outside the sweep",
        _set("budgets.tiny.envs", ["Pendulum-v1"]),
        "budgets.tiny.envs[0]: 'Pendulum-v1' is not one of the sweep's envs",
    ),
]


def assert_one_error_before_anything_runs(tmp_path, capsys, edit, message):
    """`esbench reproduce` on the tiny sweep file edited by `edit`: exit 2, one error line with `message`, no folder."""
    out = tmp_path / "out"
    code = cli.main(["reproduce", str(sweep_file(tmp_path, edit=edit)), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert message in err, err
    assert err.count("error:") == 1
    assert not out.exists()


@pytest.mark.parametrize("label,edit,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_error_before_anything_runs(tmp_path, capsys, label, edit, message):
    assert_one_error_before_anything_runs(tmp_path, capsys, edit, message)


def _no_final_budget(data):
    data["budgets"]["tiny"]["env_steps"] = 100  # an ES update spends at least pop_size env steps
    data["budgets"]["tiny"]["algorithms"]["eggroll"]["pop_size"] = 128


BAD_CLI = [
    (
        "skip search on an env the tables lack",
        _set("envs", ["gymnax/Acrobot-v1"]),
        ["--skip-search"],
        "budgets.tiny.protocol.skip_search: the paper's tables have no row for 'gymnax/Acrobot-v1'; "
        "they cover: CartPole-v1, Pendulum-v1",
    ),
    (
        "final stage bigger than the budget",
        _no_final_budget,
        ["--skip-search"],
        "final stage [CartPole-v1 x eggroll]: env_steps: a budget of 100 env steps is smaller than one update on "
        "CartPole-v1 (at least 128 env steps)",
    ),
    (
        "unknown --envs",
        None,
        ["--envs", "CartPol-v1"],
        "--envs: CartPol-v1 not in the budget's envs. Did you mean 'CartPole-v1'?",
    ),
]


@pytest.mark.parametrize("label,edit,args,message", BAD_CLI, ids=[b[0] for b in BAD_CLI])
def test_bad_command_line_is_one_error_before_anything_runs(tmp_path, capsys, label, edit, args, message):
    out = tmp_path / "out"
    data = sweep_file(tmp_path, edit=(lambda d: (d.update(paper_rows=False), edit and edit(d))))
    code = cli.main(["reproduce", str(data), "--out", str(out), "--quiet", *args])
    err = capsys.readouterr().err
    assert code == cli.EXIT_BAD_INPUT
    assert message in err, err
    assert err.count("error:") == 1
    assert not out.exists()


def test_tpe_without_optuna_names_the_install_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna -> ImportError
    code = cli.main(
        ["reproduce", str(sweep_file(tmp_path)), "--out", str(tmp_path / "out"), "--sampler", "tpe"]
    )
    assert code == cli.EXIT_BAD_INPUT
    assert (
        "sampler 'tpe' needs Optuna, which is not installed: pip install 'esbench[tpe]'"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_a_folder_of_another_protocol_is_refused(tmp_path, capsys, reference):
    before = finished(reference)
    code = cli.main(
        [
            "reproduce",
            str(sweep_file(tmp_path, edit=_set("budgets.tiny.protocol.final_seeds", 3))),
            "--out",
            str(reference),
            "--quiet",
        ]
    )
    assert code == cli.EXIT_BAD_INPUT
    assert "records another protocol (it differs in final_seeds)" in capsys.readouterr().err
    assert finished(reference) == before


def test_runs_on_a_subset_of_envs_add_up_in_one_record(tmp_path):
    from esbench.runner.protocol_record import write_record

    def record(env, trial_id):
        return {
            "envs": [env],
            "algorithms": ["eggroll"],
            "env_steps": {env: 480},
            "stages": {},
            "selection": [{"env": env, "algo": "eggroll", "trial_id": trial_id}],
            "final": [{"env": env, "algo": "eggroll", "trial_id": trial_id + "-final"}],
        }

    write_record(tmp_path, record("CartPole-v1", "a"))
    write_record(tmp_path, record("Pendulum-v1", "b"))
    write_record(tmp_path, record("CartPole-v1", "c"))  # a rerun of the first pair replaces its entries
    merged = load_protocol(tmp_path)
    assert merged["envs"] == ["CartPole-v1", "Pendulum-v1"]
    assert [e["trial_id"] for e in merged["selection"]] == ["b", "c"]
    assert [e["trial_id"] for e in merged["final"]] == ["b-final", "c-final"]
    assert [p.name for p in tmp_path.iterdir()] == ["protocol.json"]  # no temp file left


# ------------------------------------------------------------------------------ dry run ---


def test_dry_run_prints_every_stage_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["reproduce", str(sweep_file(tmp_path)), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert not out.exists()
    assert (
        "stage 1, search: 3 trials per (env, algorithm) by random search (the paper's), sampler seed 0, on tuning "
        f"seeds [{TUNING_SEED_BASE}]" in text
    )
    assert "stage 2, select: per (env, algorithm), the best search trial" in text
    assert "stage 3, final: the winner of each (env, algorithm) x 2 seeds [0, 1]" in text
    search, final = (" ".join(part.split()) for part in (text.split("stage 2")[0], text.split("stage 3")[1]))
    assert "env algorithm trials done seeds env steps/run env steps" in search
    assert "CartPole-v1 eggroll 3 0 1 480 1,440 CartPole-v1 openes 3 0 1 480 1,440 total 6 0 2,880" in search
    assert "CartPole-v1 eggroll 1 0 2 480 960 (the winner of its search)" in final
    assert "total 2 0 1,920" in final


def test_dry_run_of_a_finished_folder_names_its_trials(tmp_path, capsys, reference):
    before = sorted(p.name for p in reference.rglob("*")), finished(reference)
    assert cli.main(["reproduce", str(sweep_file(tmp_path)), "--out", str(reference), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert (sorted(p.name for p in reference.rglob("*")), finished(reference)) == before
    assert "CartPole-v1 eggroll 3 3 1 480 1,440" in " ".join(text.split())
    for entry in load_protocol(reference)["final"]:
        assert entry["trial_id"] in text.split("stage 3")[1]


# -------------------------------------------------------------------------- skip search ---


@pytest.mark.parametrize("budget", ["short", "paper"])
def test_skip_search_runs_exactly_the_paper_rows(budget):
    sweep = parse_sweep(load_sweep_file(PAPER16), budget)  # prepare_protocol would also build all 16 envs
    protocol = Protocol(
        sweep,
        protocol_settings(sweep, skip_search=True),
        tuple((env, algo) for env in sweep.envs for algo in sweep.algos),
    )
    assert len(protocol.pairs) == 48
    for pair in protocol.pairs:
        spec = protocol.final_spec(pair, protocol.paper_point(pair))
        assert spec.hparams == paper.row(pair[1], pair[0]), pair
        assert spec.stage == "final" and spec.seeds == protocol.settings.final_seeds


def test_cpu_budget_searches_only_values_so_each_pair_compiles_once():
    from esbench.algorithms import get_algorithm

    protocol = prepare_protocol(
        load_sweep_file(PAPER16), "cpu"
    )  # every search point and final trial validated
    assert protocol.sweep.envs == ("CartPole-v1", "Pendulum-v1", "jumanji/Knapsack-v1")
    settings = protocol.settings
    assert (settings.search_trials, settings.tuning_seeds, settings.final_seeds) == (
        10,
        (TUNING_SEED_BASE,),
        (0, 1, 2, 3, 4),
    )
    assert (settings.reselect_top, settings.reselect_seeds, settings.matched) == (
        2,
        (2_000_000, 2_000_001, 2_000_002),
        True,
    )
    for algo, space in settings.space.items():
        assert set(space) <= set(get_algorithm(algo).VALUE_FIELDS), algo
        assert all(dist == {"choice": paper.search_space(algo)[name]} for name, dist in space.items()), algo


@pytest.fixture(scope="module")
def skipped(tmp_path_factory, jax_cache):
    """The tiny protocol with --skip-search, run once (local backend)."""
    tmp = tmp_path_factory.mktemp("skipped")
    out = tmp / "out"
    reproduce(jax_cache, sweep_file(tmp), out, "--skip-search")
    return out


def test_skip_search_run_records_the_rows_and_no_search(skipped):
    summaries = load_summaries(skipped)
    assert list(summaries.stage) == ["final", "final"]
    fixed = {"pop_size", "rank", "layer_size", "n_layers", "n_parallel_evaluations"}  # the tiny budget's
    for row in summaries.itertuples():
        expected = {k: v for k, v in paper.row(row.algo, row.env).items() if k not in fixed}
        assert {k: row.hparams[k] for k in expected} == expected
    record = load_protocol(skipped)
    assert (record["skip_search"], record["sampler"], record["search_trials"], record["selection"]) == (
        True,
        "none",
        0,
        [],
    )
    assert record["stages"]["search"]["status"] == "skipped"
    assert [e["trial_id"] for e in record["final"]] == list(summaries.trial_id)


def test_ray_backend_gives_the_local_final_table(tmp_path, jax_cache, skipped):
    pytest.importorskip("ray")
    out = tmp_path / "out"
    reproduce(jax_cache, sweep_file(tmp_path), out, "--skip-search", "--backend", "ray")
    pd.testing.assert_frame_equal(final_table(out), final_table(skipped), check_exact=True)
    assert load_protocol(out)["final"] == load_protocol(skipped)["final"]


# ---------------------------------------------------------------------------------- TPE ---

TPE = _set(
    "budgets.tiny.protocol",
    {
        "search_trials": 6,
        "tpe_batch": 3,
        "sampler": "tpe",
        "tuning_seeds": 1,
        "final_seeds": 2,
        "space": {"eggroll": {"sigma": {"log_uniform": [0.01, 1.0]}, "learning_rate": "paper"}},
    },
)


def test_tpe_rounds_are_the_same_after_a_rerun():
    space = {"sigma": {"log_uniform": [0.01, 1.0]}, "learning_rate": {"choice": [0.001, 0.01, 0.1]}}

    def search():
        history = []
        while points := samplers.next_points("tpe", space, history, 9, "key", 3):
            history += [(p, -abs(p["sigma"] - 0.2)) for p in points]
        return history

    first, again = search(), search()
    assert first == again and len({json.dumps(p, sort_keys=True) for p, _ in first}) == 9


def test_tpe_protocol_killed_between_rounds_reruns_to_the_same_trials(tmp_path, jax_cache):
    edit = lambda d: (TPE(d), d["algorithms"].pop("openes"))  # noqa: E731
    path = sweep_file(tmp_path, edit=edit)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    reproduce(jax_cache, path, whole)
    killed = kill_when(jax_cache, path, resumed, lambda f: stages(f).count("search") >= 3)
    assert stages(killed).count("search") in (3, 4, 5), "killed after the first round"
    reproduce(jax_cache, path, resumed)
    after = finished(resumed)
    assert set(after) == set(finished(whole)) and len(after) == 7
    assert all(after[name] == value for name, value in killed.items())
    assert selection(resumed) == selection(whole)
    assert load_protocol(whole)["sampler"] == "tpe" and load_protocol(whole)["tpe_batch"] == 3
