"""esbench plan and the memory guard: XLA's counts with loops, the guard's refusal, bad input, and a plan
checked against its run."""

import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest
from conftest import tiny_spec

from esbench import cli
from esbench.faults import MachineFault
from esbench.results import ResultStore
from esbench.runner import load_sweep_file, resolve_trial
from esbench.runner import programs as programs_module
from esbench.runner import trial as trial_module
from esbench.runner.memory import MemoryRefused, parse_size
from esbench.runner.plan import plan_run, protocol_groups
from esbench.runner.protocol import prepare_protocol, run_protocol
from esbench.runner.roofline import loop_corrected_cost
from esbench.runner.trial import RunOptions, run_group
from esbench.validation import ConfigError

TWO_ENVS = """
    name: two-envs
    envs: [CartPole-v1, Pendulum-v1]
    algorithms: {eggroll: {}}
    paper_rows: true
    trial: {seeds: 2, env_steps: 16000, num_logs: 4, eval_episodes: 2}
    budgets:
      tiny:
        max_episode_steps: 20
        algorithms:
          eggroll: {pop_size: 8, rank: 1, layer_size: 8, n_layers: 1, n_parallel_evaluations: 1}
        protocol: {skip_search: true, final_seeds: 2}
    default_budget: tiny
"""


def test_loop_bodies_are_counted_by_their_trips():
    """XLA counts a scan's body once; the corrected count is trips x the body's."""
    x = jnp.ones((32, 32))

    def scanned(x, n):
        return jax.lax.scan(lambda c, _: (jnp.tanh(c @ c), None), x, None, length=n)[0]

    one = loop_corrected_cost(jax.make_jaxpr(lambda x: scanned(x, 1))(x), 1)[0]
    ten = loop_corrected_cost(jax.make_jaxpr(lambda x: scanned(x, 10))(x), 1)[0]
    assert one >= 2 * 32**3
    assert ten == pytest.approx(10 * one, rel=0.01)


def test_memory_guard_refuses_before_any_chunk_and_the_override_runs(monkeypatch):
    trial = resolve_trial(tiny_spec("eggroll"))
    chunks = []
    real_run_chunks = trial_module.run_chunks
    monkeypatch.setattr(
        trial_module, "run_chunks", lambda *a, **k: chunks.append(1) or real_run_chunks(*a, **k)
    )
    with pytest.raises(MemoryRefused) as refusal:
        run_group([trial], RunOptions(progress=False, memory_limit=1000))
    message = str(refusal.value)
    assert isinstance(refusal.value, MachineFault)
    assert (
        "1.0 kB is available (--memory-limit)" in message
        and "needs" in message
        and "pop_size (now 8)" in message
    )
    assert chunks == []
    (result,) = run_group([trial], RunOptions(progress=False, memory_limit=1000, memory_guard=False))
    assert chunks == [1] and result.summary["status"] == "finished"


@pytest.mark.parametrize(
    "text, size", [("40GB", 40 * 10**9), ("512MiB", 512 * 2**20), ("1.5TB", 1.5e12), ("123", 123)]
)
def test_sizes_take_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["40 parsecs", "-1GB", "0", "GB", ""])
def test_bad_sizes_name_the_allowed_units(text):
    with pytest.raises(ConfigError, match="e.g. 40GB"):
        parse_size(text)


@pytest.mark.parametrize(
    "args, says",
    [
        (["--accelerator", "h1000"], "Known: h100-sxm, h100-pcie, a100-80gb, h200, l40s, this-cpu"),
        (["--steps", "0"], "--steps 0"),
        (["--budget", "nope"], "budget 'nope' is not defined"),
        (["--envs", "Nope-v0"], "--envs: Nope-v0 not in the budget's envs"),
        (["--memory-limit", "lots"], "--memory-limit 'lots'"),
        (["--time-limit", "0"], "--time-limit 0.0: expected a number of seconds > 0"),
        (["--algos", "ppo"], "--algos: ppo not planned by this budget; its algorithms: eggroll"),
    ],
)
def test_bad_plan_input_is_one_error_and_writes_nothing(write_sweep, tmp_path, capsys, args, says):
    path, out = write_sweep(TWO_ENVS), tmp_path / "plan.json"
    assert cli.main(["plan", str(path), "--json", str(out), *args]) == cli.EXIT_BAD_INPUT
    assert says in capsys.readouterr().err
    assert not out.exists()


def test_run_options_reject_a_bad_memory_limit(write_sweep, tmp_path, capsys):
    path = write_sweep(TWO_ENVS)
    code = cli.main(["reproduce", str(path), "--out", str(tmp_path / "r"), "--memory-limit", "9 bananas"])
    assert code == cli.EXIT_BAD_INPUT and "units: B, KB" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


@pytest.fixture
def no_compilation_cache():
    """Plan and run each compile from scratch, as two separate commands would (conftest caches compiles)."""
    from jax._src import compilation_cache

    jax.config.update("jax_enable_compilation_cache", False)
    compilation_cache.reset_cache()
    programs_module._EVAL_CACHE.clear()
    yield
    jax.config.update("jax_enable_compilation_cache", True)
    compilation_cache.reset_cache()


def test_plan_of_a_two_env_protocol_is_within_2x_of_its_run(write_sweep, tmp_path, no_compilation_cache):
    protocol = prepare_protocol(load_sweep_file(write_sweep(TWO_ENVS)), "tiny")
    plan = plan_run(protocol_groups(protocol), steps=2)
    assert [c.status for c in plan.programs] == ["ok", "ok"] and all(c.peak_bytes > 0 for c in plan.programs)
    programs_module._EVAL_CACHE.clear()
    start = time.perf_counter()
    outcome = run_protocol(protocol, ResultStore(tmp_path / "run"), options=RunOptions(progress=False))
    measured = time.perf_counter() - start
    assert outcome.complete
    (tmp_path / "plan_vs_run.json").write_text(
        json.dumps({"projected_s": plan.projected_s, "measured_s": measured})
    )
    print(f"projected {plan.projected_s:.1f} s, measured {measured:.1f} s")  # the README quotes a run of this
    assert plan.projected_s / 2 <= measured <= plan.projected_s * 2


def test_a_program_measured_apart_keeps_its_compile_figures_past_its_time_limit(write_sweep):
    """In a child process: generous limit, the in-process figures; a limit no update meets, status "over time",
    the compile's figures and a projection that is a lower bound (measure_in_child.py)."""
    from esbench.runner.measure_in_child import measure_in_child
    from esbench.runner.plan import RunPlan, format_plan
    from esbench.runner.roofline import accelerator

    protocol = prepare_protocol(load_sweep_file(write_sweep(TWO_ENVS)), "tiny", envs=["CartPole-v1"])
    (staged,) = protocol_groups(protocol)
    chip = accelerator("h100-sxm")
    done = measure_in_child(staged.trials, "final", 1, chip, None, time_limit=300)
    assert done.status == "ok" and done.env_steps_per_s > 0 and done.eval_s > 0 and done.roofline_s > 0
    stopped = measure_in_child(staged.trials, "final", 1, chip, None, time_limit=1e-6)
    assert stopped.status == "over time" and "lower bound" in stopped.note
    assert stopped.peak_bytes == done.peak_bytes and stopped.compile_s > 0 and stopped.roofline_s > 0
    plan = staged.trials[0].schedule
    fewest_updates = min(plan.budget / plan.max_env_steps_per_update, plan.max_updates)
    assert stopped.projected_s == pytest.approx(stopped.compile_s + fewest_updates * 1e-6 / 2)
    assert "projected at least" in format_plan(RunPlan([stopped], [1], chip))


def test_saved_plans_read_back_as_one_with_per_env_totals(tmp_path, capsys):
    """`esbench plan --from-json` measures nothing: parts planned apart are one plan, totals per env included."""
    from esbench.runner.cost import ProgramCost
    from esbench.runner.plan import RunPlan
    from esbench.runner.roofline import accelerator

    def part(name, *costs, chip="h100-sxm"):
        path = tmp_path / name
        path.write_text(json.dumps(RunPlan(list(costs), [1] * len(costs), accelerator(chip)).as_json()))
        return str(path)

    cost = dict(stage="final", trials=1, seeds=3, budget=1000, compile_s=1.0)
    a = part(
        "a.json",
        ProgramCost("CartPole-v1", "eggroll", projected_s=10.0, roofline_s=1.0, peak_bytes=5, **cost),
        ProgramCost("CartPole-v1", "openes", projected_s=30.0, roofline_s=2.0, peak_bytes=9, **cost),
    )
    b = part(
        "b.json",
        ProgramCost(
            "Pendulum-v1",
            "openes",
            status="over time",
            projected_s=100.0,
            roofline_s=4.0,
            peak_bytes=7,
            **cost,
        ),
        ProgramCost("Pendulum-v1", "ppo", status="too big", roofline_s=3.0, peak_bytes=90, **cost),
    )
    merged = tmp_path / "merged.json"
    assert cli.main(["plan", "--from-json", a, b, "--json", str(merged)]) == 0
    plan = json.loads(merged.read_text())
    assert [(p["env"], p["algo"]) for p in plan["programs"]] == [
        ("CartPole-v1", "eggroll"),
        ("CartPole-v1", "openes"),
        ("Pendulum-v1", "openes"),
        ("Pendulum-v1", "ppo"),
    ]
    assert plan["projected_s"] == 140.0 and plan["projected_is_lower_bound"] and plan["roofline_s"] == 10.0
    assert plan["envs"]["CartPole-v1"] == {
        "projected_s": 40.0,
        "lower_bound": False,
        "unprojected": 0,
        "roofline_s": 3.0,
        "peak_bytes": 9,
        "largest": "openes",
    }
    assert plan["envs"]["Pendulum-v1"]["unprojected"] == 1 and plan["envs"]["Pendulum-v1"]["largest"] == "ppo"
    assert "Pendulum-v1  > 100.0 s (+1 not run)" in capsys.readouterr().out
    # planned again: the most complete measurement is kept, its gaps filled from the other
    again = part(
        "again.json",
        ProgramCost(
            "CartPole-v1",
            "eggroll",
            status="over time",
            projected_s=5.0,
            roofline_s=0.5,
            roofline_at_limit_s=0.5,
            **cost,
        ),
        ProgramCost("CartPole-v1", "openes", status="failed", **cost),
    )
    assert cli.main(["plan", "--from-json", a, b, again, "--json", str(merged)]) == 0
    programs = json.loads(merged.read_text())["programs"]
    assert len(programs) == 4 and programs[0]["status"] == programs[1]["status"] == "ok"
    assert (programs[0]["projected_s"], programs[0]["roofline_s"], programs[0]["roofline_at_limit_s"]) == (
        10.0,
        1.0,
        0.5,
    )
    c = part("c.json", ProgramCost("Pendulum-v1", "ppo", **cost), chip="h200")
    assert cli.main(["plan", "--from-json", a, c]) == cli.EXIT_BAD_INPUT
    assert "different accelerators: h100-sxm, h200" in capsys.readouterr().err
    assert cli.main(["plan", "--from-json", str(tmp_path / "none.json")]) == cli.EXIT_BAD_INPUT
    assert "none.json: no such file" in capsys.readouterr().err
    assert cli.main(["plan"]) == cli.EXIT_BAD_INPUT
    assert "give a sweep file to plan, or --from-json" in capsys.readouterr().err
    assert (
        cli.main(["plan", "--from-json", a, "--envs", "CartPole-v1", "--time-limit", "5"])
        == cli.EXIT_BAD_INPUT
    )
    assert "--from-json measures nothing: --envs, --time-limit" in capsys.readouterr().err
    # within one plan, programs alike (points searched one by one) are all kept
    twins = part("twins.json", *[ProgramCost("CartPole-v1", "eggroll", projected_s=1.0, **cost)] * 3)
    assert len(RunPlan.from_json([json.loads(Path(twins).read_text())]).programs) == 3


def test_figure15_table_sets_our_speedup_beside_the_papers():
    from esbench.report.plan_figure import figure15_table

    program = dict(stage="final", status="ok")
    plan = {
        "programs": [
            {**program, "env": "Pendulum-v1", "algo": "eggroll", "env_steps_per_s": 300.0},
            {**program, "env": "Pendulum-v1", "algo": "openes", "env_steps_per_s": 100.0},
            {**program, "env": "brax/humanoid", "algo": "eggroll", "env_steps_per_s": 10.0},
            {**program, "env": "brax/humanoid", "algo": "openes", "env_steps_per_s": 20.0},
            {**program, "env": "CartPole-v1", "algo": "ppo", "env_steps_per_s": 5.0},
            # too big to time here: only the accelerator's bounds compare them
            {
                **program,
                "env": "jumanji/Snake-v1",
                "algo": "eggroll",
                "env_steps_per_s": None,
                "status": "too big",
                "roofline_s": 2.0,
            },
            {
                **program,
                "env": "jumanji/Snake-v1",
                "algo": "openes",
                "env_steps_per_s": None,
                "status": "over time",
                "roofline_s": 10.0,
            },
        ]
    }
    plan["programs"][0]["roofline_at_limit_s"], plan["programs"][1]["roofline_at_limit_s"] = 1.0, 4.0
    plan["programs"][2]["roofline_s"] = 3.0  # a timed program's bound with the episodes it saw: not compared
    table = figure15_table(plan).set_index("env")
    assert list(table.index) == ["Pendulum-v1", "brax/humanoid", "jumanji/Snake-v1"]
    assert (
        table.loc["Pendulum-v1", "speedup_here"] == 3.0 and table.loc["Pendulum-v1", "speedup_paper"] == 7.81
    )
    assert table.loc["Pendulum-v1", "speedup_roofline"] == 4.0
    assert table.loc["brax/humanoid", "speedup_paper"] == pytest.approx(1 / 1.80)
    assert math.isnan(table.loc["brax/humanoid", "speedup_roofline"])
    assert math.isnan(table.loc["jumanji/Snake-v1", "speedup_here"])
    assert table.loc["jumanji/Snake-v1", "speedup_roofline"] == 5.0
