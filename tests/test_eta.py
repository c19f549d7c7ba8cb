"""The run's ETA (runner/eta.py): each (env, algorithm) at its own pace, compiles per program, and a saved
plan's figures scaled to the run's compiles and to each (env, algorithm)'s runs; checked with a fake clock
against explicit sums."""

import json
from types import SimpleNamespace

import pytest

from esbench.runner.eta import EtaHistory, RunEta, planned_times
from esbench.validation import ConfigError


def group(env, budget, points, seeds=1, algo="eggroll"):
    trial = SimpleNamespace(
        schedule=SimpleNamespace(budget=budget),
        spec=SimpleNamespace(env=env, algo=algo, seeds=tuple(range(seeds))),
    )
    return [trial] * points


def clocked(eta):
    now = [0.0]
    eta._clock, eta.start = (lambda: now[0]), 0.0
    return now


def test_each_env_runs_at_its_own_pace_once_measured_and_at_the_run_pace_until_then():
    eta = RunEta([group("a", 100, 2), group("b", 100, 1), group("a", 50, 1), group("c", 300, 1)])
    now = clocked(eta)
    assert "ETA follows the first chunk" in eta.text()
    eta.skip(3)  # another process runs it: not this run's work
    eta.started(0)
    now[0] = 4.0
    eta.compiled(4.0)
    eta.advanced(0)  # the bar's first call: where the group starts
    assert eta.first_projection() is None  # nothing measured yet
    now[0] = 6.0
    eta.advanced(25)  # 50 of group 0's 200 env steps in 2 s outside its compile: 0.04 s each
    # group 0: 150 x 0.04; group 1 (env b, not measured): a 4 s compile + 100 at the run's 0.04;
    # group 2 (env a): a 4 s compile + 50 x 0.04
    assert eta.remaining_s() == pytest.approx(150 * 0.04 + 4 + 100 * 0.04 + 4 + 50 * 0.04)
    assert eta.text() == "run: 14% of its env steps in 0m06s, ETA 0m20s"
    assert eta.first_projection() == (
        "run: projected 0m26s in all from its first chunk "
        "(each (env, algorithm) at its own pace once measured, the pace so far until then)"
    )
    assert eta.first_projection() is None  # said once
    now[0] = 12.0
    eta.finished(0)  # 200 env steps in 8 s outside the compile: 0.04 s each
    eta.started(1)
    eta.compiled(2.0)
    now[0] = 14.0
    eta.advanced(0)
    now[0] = 15.0
    eta.advanced(10)  # env b: 10 env steps in 1 s (15 - 12 - 2 of compile): 0.1 s each, its own pace
    # group 1: 90 x 0.1; group 2: env a's compile (4 s) + 50 x 0.04
    assert eta.remaining_s() == pytest.approx(90 * 0.1 + 4 + 50 * 0.04)


def test_a_resumed_group_counts_only_its_remaining_work_and_a_failed_one_adds_none():
    eta = RunEta([group("a", 100, 1), group("a", 100, 1)])
    now = clocked(eta)
    eta.started(0)
    eta.compiled(1.0)
    eta.advanced(50)  # resumed from a checkpoint halfway: those 50 env steps are not this run's work
    assert eta.work[0] == 50
    now[0] = 3.0
    eta.advanced(60)  # 10 env steps in 2 s: 0.2 s each
    assert eta.remaining_s() == pytest.approx(40 * 0.2 + 1.0 + 100 * 0.2)
    eta.failed(0)  # stopped: only its 10 env steps count as work
    assert eta.work[0] == 10
    assert eta.remaining_s() == pytest.approx(1.0 + 100 * 0.2)


def test_a_saved_plan_gives_every_program_a_time_scaled_to_the_measured_pace(tmp_path):
    programs = [
        {"env": "a", "algo": "eggroll", "trials": 2, "seeds": 1, "budget": 100, "status": "ok"}
        | {"compile_s": 10.0, "projected_s": 110.0},
        {"env": "b", "algo": "eggroll", "trials": 1, "seeds": 1, "budget": 100, "status": "ok"}
        | {"compile_s": 20.0, "projected_s": 60.0},
        {"env": "c", "algo": "eggroll", "trials": 1, "seeds": 1, "budget": 100, "status": "too big"}
        | {"compile_s": 5.0, "projected_s": None},
    ]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps({"programs": programs}))
    planned = planned_times(path)
    assert planned.times == {
        ("a", "eggroll", 2, 1, 100): [(10.0, 100.0)],
        ("b", "eggroll", 1, 1, 100): [(20.0, 40.0)],
    }
    eta = RunEta([group("a", 100, 2), group("b", 100, 1)], planned)
    now = clocked(eta)
    eta.started(0)
    now[0] = 5.0
    eta.compiled(5.0)  # half the planned compile: this machine runs the plan 2x faster
    eta.advanced(0)
    now[0] = 10.0
    eta.advanced(50)  # 100 of 200 env steps in 5 s
    # group 0 at its own pace (0.05 s per env step); group 1, not yet run, from the plan: its compile at the
    # machine factor (20 s x 0.5), its run as planned (40 s), no (env, algorithm) having finished a run yet
    assert eta.remaining_s() == pytest.approx(100 * 0.05 + 20 * 0.5 + 40)
    assert eta.first_projection() == (
        "run: projected 1m05s in all from its first chunk "
        "(the saved plan's 2 of 2 programs, scaled to this run's compiles and paces)"
    )
    now[0] = 30.0
    eta.advanced(100)  # the rest took 4x longer (longer episodes): env a ran 25 s of a planned 100
    eta.finished(0)
    # env b is no learner of env a's pace: its run as planned, its compile at the machine factor
    assert eta.remaining_s() == pytest.approx(20 * 0.5 + 40)
    later = RunEta([group("a", 100, 2), group("b", 100, 1)], planned)  # the next stage of the command
    clocked(later)
    later.started(0)
    # env a's planned run at its own factor (25 / 100), env b's as planned; both compiles at the machine factor
    assert later.remaining_s() == pytest.approx(10 * 0.5 + 100 * 0.25 + 20 * 0.5 + 40)


def test_the_machine_factor_is_the_median_compile_ratio_and_a_pairs_factor_the_geometric_mean():
    history = EtaHistory()
    assert history.machine_factor() == 1.0  # nothing compiled yet: the plan as it stands
    assert history.run_factor(("b", "eggroll")) == 1.0  # nothing run yet: the plan as it stands
    history.compile_ratios += [0.5, 4.0, 1.0]
    assert history.machine_factor() == 1.0  # one compile slowed by a passing load does not move it
    assert history.run_factor(("b", "eggroll")) == 1.0  # compiles say nothing of runs
    history.pair_ratios[("a", "eggroll")] = [0.25, 2.0]
    history.pair_ratios[("c", "ppo")] = [3.0]
    assert history.run_factor(("a", "eggroll")) == pytest.approx(0.5**0.5)  # the geometric mean
    assert history.run_factor(("b", "eggroll")) == 1.0  # never run: another pair's learning is not its own


def test_a_plan_file_that_is_not_a_saved_plan_is_one_error(tmp_path):
    path = tmp_path / "plan.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match=r"--plan .*plan.json: not a plan saved with `esbench plan --json`"):
        planned_times(path)
    with pytest.raises(ConfigError, match="not a plan saved"):
        planned_times(tmp_path / "missing.json")


def test_a_later_stage_starts_from_the_paces_and_compiles_of_the_stages_before_it():
    history = EtaHistory()
    search = RunEta([group("a", 100, 2)], history)
    now = clocked(search)
    search.started(0)
    search.compiled(3.0)
    now[0] = 13.0
    search.finished(0)  # 200 env steps in 10 s outside the compile: 0.05 s each
    final = RunEta([group("a", 100, 1, seeds=4), group("b", 100, 1)], history)
    clocked(final)
    # env a at the search's pace with its compile; env b, never measured: the mean pace and compile so far
    assert final.remaining_s() == pytest.approx(3.0 + 400 * 0.05 + 3.0 + 100 * 0.05)
