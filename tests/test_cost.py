"""esbench plan and the memory guard: XLA's counts with loops, the guard's refusal, bad input, and a plan checked against its run."""

import json
import time

import jax
import jax.numpy as jnp
import pytest

from esbench import cli
from esbench.faults import MachineFault
from esbench.results import ResultStore
from esbench.runner import load_sweep_file, resolve_trial
from esbench.runner import programs as programs_module
from esbench.runner import trial as trial_module
from esbench.runner.memory import MemoryRefused, parse_size
from esbench.runner.protocol import prepare_protocol, run_protocol
from esbench.runner.roofline import loop_corrected_cost
from esbench.runner.run_plan import plan_run, protocol_groups
from esbench.runner.trial import RunOptions, run_group
from esbench.validation import ConfigError

from conftest import tiny_spec

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
    monkeypatch.setattr(trial_module, "run_chunks", lambda *a, **k: chunks.append(1) or real_run_chunks(*a, **k))
    with pytest.raises(MemoryRefused) as refusal:
        run_group([trial], RunOptions(progress=False, memory_limit=1000))
    message = str(refusal.value)
    assert isinstance(refusal.value, MachineFault)
    assert "1.0 kB is available (--memory-limit)" in message and "needs" in message and "pop_size (now 8)" in message
    assert chunks == []
    result, = run_group([trial], RunOptions(progress=False, memory_limit=1000, memory_guard=False))
    assert chunks == [1] and result.summary["status"] == "finished"


@pytest.mark.parametrize("text, size", [("40GB", 40 * 10**9), ("512MiB", 512 * 2**20), ("1.5TB", 1.5e12), ("123", 123)])
def test_sizes_take_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["40 parsecs", "-1GB", "0", "GB", ""])
def test_bad_sizes_name_the_allowed_units(text):
    with pytest.raises(ConfigError, match="e.g. 40GB"):
        parse_size(text)


@pytest.mark.parametrize("args, says", [
    (["--accelerator", "h1000"], "Known: h100-sxm, h100-pcie, a100-80gb, h200, this-cpu"),
    (["--steps", "0"], "--steps 0"),
    (["--budget", "nope"], "budget 'nope' is not defined"),
    (["--envs", "Nope-v0"], "--envs: Nope-v0 not in the budget's envs"),
    (["--memory-limit", "lots"], "--memory-limit 'lots'"),
])
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
    (tmp_path / "plan_vs_run.json").write_text(json.dumps({"projected_s": plan.projected_s, "measured_s": measured}))
    print(f"projected {plan.projected_s:.1f} s, measured {measured:.1f} s")  # the README quotes a run of this
    assert plan.projected_s / 2 <= measured <= plan.projected_s * 2


def test_figure15_table_sets_our_speedup_beside_the_papers():
    from esbench.report.plan_figure import figure15_table

    program = dict(stage="final", status="ok")
    plan = {"programs": [{**program, "env": "Pendulum-v1", "algo": "eggroll", "env_steps_per_s": 300.0},
                         {**program, "env": "Pendulum-v1", "algo": "openes", "env_steps_per_s": 100.0},
                         {**program, "env": "brax/humanoid", "algo": "eggroll", "env_steps_per_s": 10.0},
                         {**program, "env": "brax/humanoid", "algo": "openes", "env_steps_per_s": 20.0},
                         {**program, "env": "CartPole-v1", "algo": "ppo", "env_steps_per_s": 5.0}]}
    table = figure15_table(plan).set_index("env")
    assert list(table.index) == ["Pendulum-v1", "brax/humanoid"]
    assert table.loc["Pendulum-v1", "speedup_here"] == 3.0 and table.loc["Pendulum-v1", "speedup_paper"] == 7.81
    assert table.loc["brax/humanoid", "speedup_paper"] == pytest.approx(1 / 1.80)


def test_run_eta_projects_the_remaining_env_steps_at_the_pace_so_far(monkeypatch):
    from types import SimpleNamespace

    from esbench.runner.progress import RunEta

    def group(budget, points, seeds):
        trial = SimpleNamespace(plan=SimpleNamespace(budget=budget), spec=SimpleNamespace(seeds=tuple(range(seeds))))
        return [trial] * points

    now = [0.0]
    eta = RunEta([group(100, 2, 1), group(100, 1, 2), group(50, 1, 1), group(300, 1, 1)])
    eta._clock, eta.start = (lambda: now[0]), 0.0
    assert "ETA follows the first group" in eta.text()
    eta.skip(3)  # another process runs it: not this run's work
    now[0] = 10.0
    eta.finished(0)
    assert eta.text() == "run: 44% of its env steps in 0m10s, ETA 0m12s"  # 200 of 450 env steps in 10 s
