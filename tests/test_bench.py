"""`esbench bench` in a tiny mode: the JSON schema, every configuration timed or skipped with a reason.

No timing thresholds: only that every measured time is finite and positive and
that the derived numbers (medians, samples/s, ratios, speed-ups, env steps)
are the stated functions of the recorded times and configs.
"""

import contextlib
import dataclasses
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from esbench import bench, cli, paper, validation
from esbench.algorithms import algorithm_names, eggroll, networks, openes, ppo
from esbench.bench import forward, measure, report, training
from esbench.validation import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PLATFORM = jax.devices()[0].platform
POPS, WIDTH, RANKS, REPEATS = (4, 8), 8, (1, 2), 2
# OpenES materialises N*8*8*4 bytes per layer: 1024 at N=4 (runs), 2048 at N=8 (skipped).
CAP_GIB = 1.5e-6  # 1610 bytes
TINY = [
    "--pops",
    *map(str, POPS),
    "--widths",
    str(WIDTH),
    "--ranks",
    *map(str, RANKS),
    "--depth",
    "1",
    "--repeats",
    str(REPEATS),
    "--warmup",
    "1",
    "--min-time-s",
    "0.002",
    "--openes-mem-cap-gib",
    str(CAP_GIB),
    "--envs",
    "CartPole-v1",
    "--scale",
    "1/128",
    "--max-episode-steps",
    "10",
    "--layer-size",
    "8",
    "--n-layers",
    "1",
    "--train-repeats",
    str(REPEATS),
    "--train-warmup",
    "1",
    "--exit-envs",
    "CartPole-v1",
    "--exit-env-steps",
    "600",
    "--es-pop-size",
    "4",
    "--es-seeds",
    "1",
    "--grid-sigmas",
    "0.1",
    "0.3",
    "--grid-learning-rates",
    "0.01",
    "--grid-env-steps",
    "300",
]
KIND_NAMES = ("forward", "training", "early_exit", "vectorized_sweep")

NUMBER = (int, float)
NONE = type(None)
TOP_KEYS = {
    "schema_version": int,
    "benchmark": str,
    "mode": str,
    "created_utc": str,
    "device": dict,
    "packages": dict,
    "load_average_start": (list, NONE),
    "load_average_end": (list, NONE),
    "wall_s": NUMBER,
    "settings": dict,
    "records": list,
}
DEVICE_KEYS = {"platform": str, "device_kind": str, "device_count": int, "description": str}
FORWARD_KEYS = {
    "method": str,
    "algorithm": str,
    "rank": (int, NONE),
    "phase": str,
    "pop_size": int,
    "width": int,
    "depth": int,
    "status": str,
    "reason": (str, NONE),
    "compile_s": (float, NONE),
    "inner_calls": (int, NONE),
    "times_s": list,
    "median_s": (float, NONE),
    "samples_per_s": (float, NONE),
    "normalized_throughput": (float, NONE),
    "memory": (dict, NONE),
}
TRAINING_KEYS = {
    "env": str,
    "algorithm": str,
    "scale": NUMBER,
    "scaled_field": (str, NONE),
    "max_episode_steps": int,
    "hparams_source": str,
    "trial_id": str,
    "config": dict,
    "status": str,
    "reason": (str, NONE),
    "compile_s": float,
    "times_s": list,
    "median_s": float,
    "env_steps_per_update": int,
    "valid_env_steps_per_update": NUMBER,
    "simulated_env_steps_per_update": NUMBER,
    "env_steps_per_s": float,
    "memory": dict,
}


def check_types(obj: dict, spec: dict, where: str) -> None:
    missing = set(spec) - set(obj)
    assert not missing, f"{where}: missing keys {missing}"
    for key, types in spec.items():
        assert isinstance(obj[key], types) and not isinstance(obj[key], bool), f"{where}.{key} = {obj[key]!r}"


def positive_finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(["bench", "--mode", "quick", "--out", str(out), *TINY])
    payloads = {name: json.loads((out / f"{name}_quick_{PLATFORM}.json").read_text()) for name in KIND_NAMES}
    return code, out, stdout.getvalue(), payloads


def test_exit_code_files_and_tables(run):
    code, out, stdout, _ = run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{name}_quick_{PLATFORM}.json" for name in KIND_NAMES] + [f"forward_quick_{PLATFORM}.png"]
    )
    assert (out / f"forward_quick_{PLATFORM}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for title in ("throughput / pure inference", "Training loop", "Early exit", "Vectorised sweep"):
        assert title in stdout


@pytest.mark.parametrize("name", KIND_NAMES)
def test_top_level_schema(run, name):
    payload = run[3][name]
    check_types(payload, TOP_KEYS, name)
    check_types(payload["device"], DEVICE_KEYS, f"{name}.device")
    assert payload["schema_version"] == report.SCHEMA_VERSION
    assert payload["benchmark"] == name and payload["mode"] == "quick"
    assert payload["device"]["platform"] == PLATFORM
    assert {"jax", "jaxlib", "esbench"} <= set(payload["packages"])
    if name == "training":
        assert "gymnax" in payload["packages"]


def test_forward_records_cover_the_sweep(run):
    payload = run[3]["forward"]
    settings = payload["settings"]
    assert (
        settings["pop_sizes"] == list(POPS)
        and settings["widths"] == [WIDTH]
        and settings["ranks"] == list(RANKS)
    )
    labels = ["inference", *(f"eggroll_r{r}" for r in RANKS), "openes"]
    expected = {
        (n, label, phase)
        for n in POPS
        for label in labels
        for phase in (("forward",) if label == "inference" else ("forward", "noise", "update"))
    }
    got = [(r["pop_size"], r["method"], r["phase"]) for r in payload["records"]]
    assert sorted(got) == sorted(expected)


def test_forward_every_record_timed_or_skipped_with_reason(run):
    for r in run[3]["forward"]["records"]:
        where = f"{r['method']}/{r['phase']}/N={r['pop_size']}"
        check_types(r, FORWARD_KEYS, where)
        assert r["status"] in ("ok", "skipped"), (where, r["reason"])
        if r["status"] == "skipped":
            assert r["reason"] and r["times_s"] == [] and r["median_s"] is None and r["inner_calls"] is None
            continue
        assert r["reason"] is None
        assert positive_finite(r["compile_s"]), where
        assert 1 <= r["inner_calls"] <= forward.MAX_INNER
        assert len(r["times_s"]) == REPEATS and all(positive_finite(t) for t in r["times_s"]), where
        assert r["median_s"] == forward.median(r["times_s"])
        assert r["samples_per_s"] == pytest.approx(r["pop_size"] / r["median_s"], rel=1e-12)
        for key in (
            "temp_bytes",
            "argument_bytes",
            "output_bytes",
        ):  # compiled memory analysis, every platform
            assert isinstance(r["memory"][key], int) and r["memory"][key] >= 0, where
        assert r["memory"]["argument_bytes"] > 0


def test_openes_skipped_exactly_above_the_memory_cap(run):
    openes = {(r["pop_size"], r["phase"]): r for r in run[3]["forward"]["records"] if r["method"] == "openes"}
    cap = int(CAP_GIB * 2**30)
    for n in POPS:
        over = n * WIDTH * WIDTH * 4 > cap
        for phase in ("forward", "noise", "update"):
            assert openes[n, phase]["status"] == ("skipped" if over else "ok")
            if over:
                assert "cap" in openes[n, phase]["reason"]
    assert any(n * WIDTH * WIDTH * 4 > cap for n in POPS) and any(n * WIDTH * WIDTH * 4 <= cap for n in POPS)


def test_normalized_throughput_is_inference_time_over_method_time(run):
    records = run[3]["forward"]["records"]
    inference = {r["pop_size"]: r["median_s"] for r in records if r["method"] == "inference"}
    for r in records:
        if r["phase"] != "forward" or r["status"] != "ok":
            assert r["normalized_throughput"] is None
        else:
            assert r["normalized_throughput"] == pytest.approx(
                inference[r["pop_size"]] / r["median_s"], rel=1e-12
            )


def test_summary_ratios_and_speedups(run):
    payload = run[3]["forward"]
    ok = {(r["pop_size"], r["method"], r["phase"]): r for r in payload["records"] if r["status"] == "ok"}
    rows = payload["summary"]
    assert [(row["width"], row["pop_size"]) for row in rows] == [(WIDTH, n) for n in POPS]
    for row in rows:
        n = row["pop_size"]
        assert row["inference_samples_per_s"] == ok[n, "inference", "forward"]["samples_per_s"]
        for rank in RANKS:
            label = f"eggroll_r{rank}"
            assert row["normalized_throughput"][label] == ok[n, label, "forward"]["normalized_throughput"]
            for phase in ("forward", "update"):
                speedup = row[f"speedup_vs_openes_{phase}"][label]
                if (n, "openes", phase) in ok:
                    assert speedup == pytest.approx(
                        ok[n, "openes", phase]["median_s"] / ok[n, label, phase]["median_s"]
                    )
                else:
                    assert speedup is None


def test_training_records(run):
    payload = run[3]["training"]
    records = {r["algorithm"]: r for r in payload["records"]}
    assert sorted(records) == sorted(algorithm_names())
    # CartPole's paper rows scaled by 1/128: EGGROLL 2048 -> 16, OpenES 512 -> 4 (x4 episodes),
    # PPO 256 -> 2 envs x 128 steps.
    expected_steps = {"eggroll": 16 * 1 * 10, "openes": 4 * 4 * 10, "ppo": 2 * 128}
    scaled_field = {"eggroll": "pop_size", "openes": "pop_size", "ppo": "num_envs"}
    for algo, r in records.items():
        check_types(r, TRAINING_KEYS, algo)
        assert r["status"] == "ok" and r["reason"] is None
        assert (
            r["env"] == "CartPole-v1"
            and r["max_episode_steps"] == 10
            and (r["config"]["layer_size"], r["config"]["n_layers"]) == (8, 1)
        )
        assert r["hparams_source"] == f"esbench.paper.row({algo!r}, 'CartPole-v1')"
        assert r["scaled_field"] == scaled_field[algo]
        assert r["env_steps_per_update"] == expected_steps[algo]
        assert (
            0
            < r["valid_env_steps_per_update"]
            <= r["simulated_env_steps_per_update"]
            <= r["env_steps_per_update"]
        )
        assert positive_finite(r["compile_s"])
        assert len(r["times_s"]) == REPEATS and all(positive_finite(t) for t in r["times_s"])
        assert r["median_s"] == forward.median(r["times_s"])
        assert r["env_steps_per_s"] == pytest.approx(r["env_steps_per_update"] / r["median_s"], rel=1e-12)
        assert isinstance(r["memory"]["argument_bytes"], int)
    # PPO's batch, every step inside an episode: each timed chunk ran exactly one update
    assert (
        records["ppo"]["valid_env_steps_per_update"]
        == records["ppo"]["simulated_env_steps_per_update"]
        == 2 * 128
    )
    assert records["eggroll"]["config"]["pop_size"] == 16 and records["eggroll"]["config"]["rank"] == 4
    assert records["openes"]["config"]["pop_size"] == 4
    assert records["ppo"]["config"]["num_envs"] == 2


def test_early_exit_records(run):
    payload = run[3]["early_exit"]
    records = {r["algorithm"]: r for r in payload["records"]}
    assert sorted(records) == ["eggroll", "openes"]
    assert payload["early_exit_speedup"] == {"CartPole-v1": {a: r["speedup"] for a, r in records.items()}}
    for algo, r in records.items():
        assert r["status"] == "ok" and r["env"] == "CartPole-v1" and r["solved_return"] == 475.0, r["reason"]
        on, off = r["curves"]["early_exit"], r["curves"]["full_episodes"]
        assert (
            r["same_returns"] is True and on["env_steps"] == off["env_steps"] and on["env_steps"][-1] >= 600
        )
        assert r["speedup"] == off["wall_clock_s"][-1] / on["wall_clock_s"][-1]
        for mode, curve in r["curves"].items():
            assert r["env_steps_per_s"][mode] == curve["env_steps"][-1] / curve["wall_clock_s"][-1]
            assert (
                r["simulated_share"][mode] == curve["simulated_env_steps"][-1] / curve["env_steps"][-1] >= 1
            )
        # the same episodes, fewer steps simulated: early exit stops at the longest episode, not at the limit
        assert on["simulated_env_steps"][-1] <= off["simulated_env_steps"][-1]
        if r["solved_at_env_steps"] is None:
            assert r["speedup_to_solve"] is None
        assert len(r["trial_ids"]) == 2 and r["trial_ids"]["early_exit"] != r["trial_ids"]["full_episodes"]


def test_vectorized_sweep_record(run):
    payload = run[3]["vectorized_sweep"]
    (r,) = payload["records"]
    assert r["status"] == "ok", r["reason"]
    assert (r["env"], r["algorithm"], r["points"]) == ("CartPole-v1", "eggroll", 2)
    # the two points differ only in sigma: one program together, two alone, and the same returns both ways
    assert (r["vectorized_groups"], r["one_by_one_groups"]) == (1, 2) and r["same_results"] is True
    assert positive_finite(r["vectorized_s"]) and positive_finite(r["one_by_one_s"])
    assert payload["vectorized_sweep_speedup"] == r["one_by_one_s"] / r["vectorized_s"]
    together, alone = r["vectorized_parts"], r["one_by_one_parts"]
    for parts in (
        together,
        alone,
    ):  # host_s is the wall clock's rest: positive if the parts are not overcounted
        assert all(parts[k] > 0 for k in ("compile_s", "train_s", "eval_s", "host_s"))
    # the same updates both ways; run in lockstep, a superset of lanes waits for its slowest
    assert together["useful_updates"] == alone["useful_updates"] > 0
    assert 0 < together["occupancy"] <= alone["occupancy"] <= 1


def test_vectorized_grid_is_sigmas_by_learning_rates():
    from esbench.bench import vectorized_sweep

    specs = vectorized_sweep.grid(vectorized_sweep.VectorizedSweepSettings())
    assert [(s.hparams["sigma"], s.hparams["learning_rate"]) for s in specs] == [
        (s, lr) for s in (0.05, 0.2, 0.5) for lr in (0.001, 0.01, 0.03, 0.1)
    ]
    assert len({s.trial_id for s in specs}) == 12


# ---------------------------------------------------------------------------
# The pieces, without running a benchmark


def test_skip_reason_threshold():
    settings = forward.ForwardSettings(pop_sizes=(4,), widths=(8,), openes_mem_cap_gib=4 * 8 * 8 * 4 / 2**30)
    openes_method = forward.Method("openes", "openes")
    assert forward.skip_reason(openes_method, 4, 8, settings) is None  # exactly at the cap: runs
    assert "6*8*8*4 = 1,536 bytes" in forward.skip_reason(openes_method, 6, 8, settings)
    assert forward.skip_reason(forward.Method("eggroll_r4", "eggroll", 4), 10**6, 4096, settings) is None


def test_a_failing_configuration_is_recorded_not_raised(monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1 TiB\nmore detail")

    monkeypatch.setattr(forward, "compile_program", out_of_memory)
    settings = forward.ForwardSettings(pop_sizes=(4,), widths=(8,))
    params = {"layers": []}
    records, programs = forward.prepare_method(
        forward.Method("eggroll_r1", "eggroll", 1),
        params,
        jax.numpy.zeros((4, 8)),
        jax.numpy.zeros(4),
        settings,
    )
    assert [r["phase"] for r in records] == ["forward", "noise", "update"] and programs == []
    for r in records:
        assert r["status"] == "failed"
        assert r["reason"] == "RuntimeError: RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1 TiB"


def test_round_robin_takes_turns_and_records_runtime_failures():
    calls = []

    def program(name, fail_on_call=None):
        def run(*args):
            calls.append(name)
            if calls.count(name) == fail_on_call:
                raise RuntimeError("RESOURCE_EXHAUSTED: out of memory")
            return jax.numpy.zeros(())

        record = {
            "pop_size": 2,
            "status": "ok",
            "reason": None,
            "times_s": [],
            "median_s": None,
            "samples_per_s": None,
            "memory": {"device_peak_bytes_in_use": None},
        }
        return forward.Program(record, run, ())

    a, b = program("a"), program("b", fail_on_call=3)  # b: warm-up, repeat 1, then fails in repeat 2
    settings = forward.ForwardSettings(pop_sizes=(2,), widths=(1,), repeats=3, warmup=1, min_time_s=0.0)
    forward.time_round_robin([a, b], settings)
    assert calls == ["a", "b", "a", "b", "a", "b", "a"]
    assert a.record["status"] == "ok" and len(a.record["times_s"]) == 3 and a.record["inner_calls"] == 1
    assert a.record["median_s"] == forward.median(a.record["times_s"])
    assert b.record["status"] == "failed" and b.record["times_s"] == [] and b.record["median_s"] is None
    assert b.record["reason"] == "RuntimeError: RESOURCE_EXHAUSTED: out of memory"


def test_scaled_values_follow_the_config_not_the_algorithm_name():
    assert training.scaled_values(eggroll.Config(pop_size=2048), 1 / 16) == ("pop_size", {"pop_size": 128})
    assert training.scaled_values(openes.Config(pop_size=512), 1e-6) == (
        "pop_size",
        {"pop_size": 2},
    )  # one pair
    assert training.scaled_values(eggroll.Config(pop_size=100), 0.05)[1] == {
        "pop_size": 6
    }  # 5 -> the nearest even, ties up
    cfg = ppo.Config(num_envs=256, num_steps=10, num_minibatches=32)
    # 160 samples: 32 divides them; 30 samples: 30 is the largest divisor <= 32
    assert training.scaled_values(cfg, 1 / 16) == ("num_envs", {"num_envs": 16, "num_minibatches": 32})
    assert training.scaled_values(cfg, 3 / 256) == ("num_envs", {"num_envs": 3, "num_minibatches": 30})
    assert training.scaled_values(networks.PolicySettings(), 0.5) == (None, {})  # neither field: unscaled


def tiny_training(**values):
    return training.TrainingSettings(
        **{"scale": 1.0, "max_episode_steps": 10, "repeats": 2, "warmup": 1, **values}
    )


@pytest.mark.parametrize("algo", ["eggroll", "openes", "ppo"])
def test_training_hyperparameters_are_the_paper_row_or_the_config_defaults(algo):
    """Before scaling (scale 1): a paper env gets `paper.row`, any other env the algorithm's Config defaults."""
    config = {"eggroll": eggroll.Config, "openes": openes.Config, "ppo": ppo.Config}[algo]
    trial, facts = training.timing_trial("CartPole-v1", algo, tiny_training())
    assert trial.cfg == dataclasses.replace(config(), **paper.row(algo, "CartPole-v1"))
    assert facts["hparams_source"] == f"esbench.paper.row({algo!r}, 'CartPole-v1')"
    trial, facts = training.timing_trial("gymnax/Acrobot-v1", algo, tiny_training())
    assert trial.cfg == config()
    assert facts["hparams_source"].startswith(f"{algo} Config defaults")


def test_timing_trial_budget_is_the_updates_to_run_with_the_cap_and_network():
    settings = tiny_training(scale=1 / 128, layer_size=8, n_layers=1, repeats=3, warmup=2)
    trial, facts = training.timing_trial("CartPole-v1", "eggroll", settings)
    assert facts["scaled_field"] == "pop_size" and trial.cfg.pop_size == 16
    assert (trial.cfg.layer_size, trial.cfg.n_layers, trial.env.spec.max_episode_steps) == (8, 1, 10)
    assert trial.schedule.max_env_steps_per_update == 16 * 10 and trial.spec.seeds == (0,)
    assert (trial.spec.env_steps, trial.spec.num_logs) == (5 * 16 * 10, 5)
    uncapped, _ = training.timing_trial("CartPole-v1", "eggroll", tiny_training(max_episode_steps=10**6))
    assert (
        uncapped.env.spec.max_episode_steps == 500
    )  # a cap above the environment's own limit leaves it alone


def test_settings_modes_overrides_and_fractions():
    quick = bench.settings("training", "quick", envs=None, scale="1/8")
    assert quick == training.TrainingSettings(scale=0.125) and quick.algos == algorithm_names()
    full = bench.settings("forward", "full", depth=2)
    assert full == forward.ForwardSettings(**{**forward.FULL, "depth": 2})
    for kind in bench.KINDS:  # every kind's modes are valid settings
        for mode in bench.MODES:
            bench.settings(kind, mode).validate()
    for bad in ("0", "-1", "x", "1/0"):
        with pytest.raises(
            ConfigError, match=r"bench\.training\.scale = .* is invalid; allowed: a number > 0"
        ):
            bench.settings("training", "quick", scale=bad)
    with pytest.raises(ConfigError, match=r"bench\.mode = 'slow' is invalid; allowed: quick, full"):
        bench.settings("forward", "slow")
    with pytest.raises(
        ConfigError,
        match=r"bench\.benchmark = 'backward' is invalid; allowed: forward, training, early_exit, vectorized_sweep",
    ):
        bench.settings("backward", "quick")


def test_a_new_kind_is_one_function_and_one_entry(tmp_path, monkeypatch):
    @dataclasses.dataclass(frozen=True)
    class CountSettings:
        n: int = dataclasses.field(default=1, metadata=measure.AT_LEAST_ONE)

        def validate(self, owner: str) -> None:
            validation.validate(self, owner)

    def count(settings, progress=None):
        return {
            "records": [{"status": "ok" if i else "failed"} for i in range(settings.n)],
            "total": settings.n,
        }

    monkeypatch.setitem(bench.KINDS, "count", bench.Kind(CountSettings, {"n": 3}, count, table=len))
    outcome = bench.run(["count"], "full", tmp_path)
    path = tmp_path / f"count_full_{PLATFORM}.json"
    assert outcome.paths == {"count_json": path} and outcome.failed == 1
    payload = json.loads(path.read_text())
    check_types(payload, TOP_KEYS, "count")
    assert (payload["benchmark"], payload["settings"], payload["total"]) == ("count", {"n": 3}, 3)
    with pytest.raises(ConfigError, match=r"bench\.count\.n = 0 is invalid; allowed: an integer >= 1"):
        bench.settings("count", "quick", n=0)


def test_run_validates_every_kind_before_running(tmp_path):
    ran = []
    good = forward.ForwardSettings(pop_sizes=(2,), widths=(2,))
    with pytest.raises(ConfigError, match=r"bench\.training\.repeats = 0"):
        bench.run(
            ["forward", "training"],
            "quick",
            tmp_path / "out",
            progress=ran.append,
            forward=good,
            training=training.TrainingSettings(repeats=0),
        )
    with pytest.raises(ConfigError, match="bench.training.algos: unknown algorithm 'egroll'"):
        bench.run(
            ["training"], "quick", tmp_path / "out", training=training.TrainingSettings(algos=("egroll",))
        )
    assert ran == [] and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--only", "training", "--envs", "Cartpole-v1"], "CartPole-v1"),
        (["--only", "forward", "--pops", "5"], "pop_sizes"),
        (["--only", "training", "--scale", "0"], "bench.training.scale = 0.0 is invalid"),
        (["--only", "training", "--scale", "1/0"], "bench.training.scale = '1/0' is invalid"),
    ],
)
def test_bad_input_fails_before_running(tmp_path, capsys, argv, message):
    assert cli.main(["bench", "--out", str(tmp_path / "out"), *argv]) == cli.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_script_is_the_bench_command():
    help_text = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--mode {quick,full}" in help_text and "--openes-mem-cap-gib" in help_text


def test_summary_of_synthetic_records():
    """forward_summary on hand-made records: ratios are exactly those of the medians."""

    def rec(method, phase, median_s, status="ok", rank=None):
        return {
            "method": method,
            "algorithm": method.split("_")[0],
            "rank": rank,
            "phase": phase,
            "pop_size": 2,
            "width": 4,
            "status": status,
            "median_s": median_s,
            "samples_per_s": 2 / median_s if median_s else None,
            "normalized_throughput": None,
        }

    records = [
        rec("inference", "forward", 1.0),
        rec("eggroll_r4", "forward", 2.0, rank=4),
        rec("eggroll_r4", "update", 0.5, rank=4),
        rec("openes", "forward", 8.0),
        rec("openes", "update", 4.0),
    ]
    forward.normalise(records)
    (row,) = forward.forward_summary(records)
    assert row["normalized_throughput"] == {"eggroll_r4": 0.5, "openes": 0.125}
    assert row["speedup_vs_openes_forward"] == {"eggroll_r4": 4.0}
    assert row["speedup_vs_openes_update"] == {"eggroll_r4": 8.0}
    records[3]["status"] = records[4]["status"] = "skipped"
    (row,) = forward.forward_summary(records)
    assert (
        row["speedup_vs_openes_forward"] == {"eggroll_r4": None}
        and row["normalized_throughput"]["openes"] is None
    )
