"""`esbench bench` in a tiny mode: the JSON schema, every configuration timed or skipped with a reason.

No timing thresholds: only that every measured time is finite and positive and
that the derived numbers (medians, samples/s, ratios, speed-ups, env steps)
are the stated functions of the recorded times and configs.
"""

import contextlib
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import jax
import pytest

from esbench import cli
from esbench.bench import forward, parse_scale, report, training
from esbench.runner.config import ConfigError

ROOT = Path(__file__).resolve().parents[1]
PLATFORM = jax.devices()[0].platform
POPS, WIDTH, RANKS, REPEATS = (4, 8), 8, (1, 2), 2
# OpenES materialises N*8*8*4 bytes per layer: 1024 at N=4 (runs), 2048 at N=8 (skipped).
CAP_GIB = 1.5e-6  # 1610 bytes
TINY = [
    "--pops", *map(str, POPS), "--widths", str(WIDTH), "--ranks", *map(str, RANKS), "--depth", "1",
    "--repeats", str(REPEATS), "--warmup", "1", "--min-time-s", "0.002", "--openes-mem-cap-gib", str(CAP_GIB),
    "--envs", "CartPole-v1", "--scale", "1/128", "--max-episode-steps", "10", "--layer-size", "8", "--n-layers", "1",
    "--train-repeats", str(REPEATS), "--train-warmup", "1",
]

NUMBER = (int, float)
NONE = type(None)
TOP_KEYS = {
    "schema_version": int, "benchmark": str, "mode": str, "created_utc": str, "device": dict, "packages": dict,
    "load_average_start": (list, NONE), "load_average_end": (list, NONE), "wall_s": NUMBER, "settings": dict,
    "records": list,
}
DEVICE_KEYS = {"platform": str, "device_kind": str, "device_count": int, "description": str}
FORWARD_KEYS = {
    "method": str, "algorithm": str, "rank": (int, NONE), "phase": str, "pop_size": int, "width": int, "depth": int,
"status": str, "reason": (str, NONE), "compile_s": (float, NONE), "inner_calls": (int, NONE), "times_s": list,
    "median_s": (float, NONE), "samples_per_s": (float, NONE), "normalized_throughput": (float, NONE),
    "memory": (dict, NONE),
}
TRAINING_KEYS = {
    "env": str, "algorithm": str, "scale": NUMBER, "max_episode_steps": int, "hparams_source": str, "config": dict,
    "status": str, "reason": (str, NONE), "compile_s": float, "times_s": list, "median_s": float,
    "env_steps_per_update": int, "valid_env_steps_per_update": NUMBER, "env_steps_per_s": float, "memory": dict,
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
    payloads = {name: json.loads((out / f"{name}_quick_{PLATFORM}.json").read_text()) for name in ("forward", "training")}
    return code, out, stdout.getvalue(), payloads


def test_exit_code_files_and_tables(run):
    code, out, stdout, _ = run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{name}_quick_{PLATFORM}.{ext}" for name, ext in (("forward", "json"), ("forward", "png"), ("training", "json"))
    )
    assert (out / f"forward_quick_{PLATFORM}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "throughput / pure inference" in stdout and "Training loop" in stdout


@pytest.mark.parametrize("name", ["forward", "training"])
def test_top_level_schema(run, name):
    payload = run[3][name]
    check_types(payload, TOP_KEYS, name)
    check_types(payload["device"], DEVICE_KEYS, f"{name}.device")
    assert payload["benchmark"] == name and payload["mode"] == "quick"
    assert payload["device"]["platform"] == PLATFORM
    assert {"jax", "jaxlib", "esbench"} <= set(payload["packages"])
    if name == "training":
        assert "gymnax" in payload["packages"]


def test_forward_records_cover_the_sweep(run):
    payload = run[3]["forward"]
    settings = payload["settings"]
    assert settings["pop_sizes"] == list(POPS) and settings["widths"] == [WIDTH] and settings["ranks"] == list(RANKS)
    labels = ["inference", *(f"eggroll_r{r}" for r in RANKS), "openes"]
    expected = {(n, label, phase) for n in POPS for label in labels
                for phase in (("forward",) if label == "inference" else ("forward", "noise", "update"))}
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
        for key in ("temp_bytes", "argument_bytes", "output_bytes"):  # compiled memory analysis, every platform
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
            assert r["normalized_throughput"] == pytest.approx(inference[r["pop_size"]] / r["median_s"], rel=1e-12)


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
                    assert speedup == pytest.approx(ok[n, "openes", phase]["median_s"] / ok[n, label, phase]["median_s"])
                else:
                    assert speedup is None


def test_training_records(run):
    payload = run[3]["training"]
    records = {r["algorithm"]: r for r in payload["records"]}
    assert sorted(records) == ["eggroll", "openes", "ppo"]
    # CartPole's paper rows scaled by 1/128: EGGROLL 2048 -> 16, OpenES 512 -> 4 (x4 episodes), PPO 256 -> 2 envs x 128 steps.
    expected_steps = {"eggroll": 16 * 1 * 10, "openes": 4 * 4 * 10, "ppo": 2 * 128}
    for algo, r in records.items():
        check_types(r, TRAINING_KEYS, algo)
        assert r["status"] == "ok" and r["reason"] is None
        assert r["env"] == "CartPole-v1" and r["max_episode_steps"] == 10 and (r["config"]["layer_size"], r["config"]["n_layers"]) == (8, 1)
        assert "paper16.yaml" in r["hparams_source"]
        assert r["env_steps_per_update"] == expected_steps[algo]
        assert 0 < r["valid_env_steps_per_update"] <= r["env_steps_per_update"]
        assert positive_finite(r["compile_s"])
        assert len(r["times_s"]) == REPEATS and all(positive_finite(t) for t in r["times_s"])
        assert r["median_s"] == forward.median(r["times_s"])
        assert r["env_steps_per_s"] == pytest.approx(r["env_steps_per_update"] / r["median_s"], rel=1e-12)
    assert records["eggroll"]["config"]["pop_size"] == 16 and records["eggroll"]["config"]["rank"] == 4
    assert records["openes"]["config"]["pop_size"] == 4
    assert records["ppo"]["config"]["num_envs"] == 2


# ---------------------------------------------------------------------------
# The pieces, without running a benchmark


def test_skip_reason_threshold():
    settings = forward.ForwardSettings(pop_sizes=(4,), widths=(8,), openes_mem_cap_bytes=4 * 8 * 8 * 4)
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
    records, programs = forward.prepare_method(forward.Method("eggroll_r1", "eggroll", 1), params, jax.numpy.zeros((4, 8)),
                                     jax.numpy.zeros(4), settings)
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

        record = {"pop_size": 2, "status": "ok", "reason": None, "times_s": [], "median_s": None,
                  "samples_per_s": None, "memory": {"device_peak_bytes_in_use": None}}
        return forward.Program(record, run, ())

    a, b = program("a"), program("b", fail_on_call=3)  # b: warm-up, repeat 1, then fails in repeat 2
    settings = forward.ForwardSettings(pop_sizes=(2,), widths=(1,), repeats=3, warmup=1, min_time_s=0.0)
    forward.time_round_robin([a, b], settings)
    assert calls == ["a", "b", "a", "b", "a", "b", "a"]
    assert a.record["status"] == "ok" and len(a.record["times_s"]) == 3 and a.record["inner_calls"] == 1
    assert a.record["median_s"] == forward.median(a.record["times_s"])
    assert b.record["status"] == "failed" and b.record["times_s"] == [] and b.record["median_s"] is None
    assert b.record["reason"] == "RuntimeError: RESOURCE_EXHAUSTED: out of memory"


def test_scale_hparams():
    assert training.scale_hparams("eggroll", {"pop_size": 2048}, 1 / 16)["pop_size"] == 128
    assert training.scale_hparams("openes", {"pop_size": 512}, 1e-6)["pop_size"] == 2  # at least one pair
    assert training.scale_hparams("eggroll", {"pop_size": 100}, 0.05)["pop_size"] == 6  # 5 -> even
    ppo = training.scale_hparams("ppo", {"num_envs": 256, "num_steps": 10, "num_minibatches": 32}, 1 / 16)
    assert (ppo["num_envs"], ppo["num_minibatches"]) == (16, 32)  # 160 samples: 32 divides them
    ppo = training.scale_hparams("ppo", {"num_envs": 256, "num_steps": 10, "num_minibatches": 32}, 3 / 256)
    assert (ppo["num_envs"], ppo["num_minibatches"]) == (3, 30)  # 30 samples: the largest divisor <= 32


def test_paper_hparams(tmp_path):
    row, source = training.paper_hparams("CartPole-v1", "eggroll", training.PAPER_SWEEP)
    assert (row["pop_size"], row["rank"], row["sigma"]) == (2048, 4, 0.2) and "CartPole-v1" in source
    row, source = training.paper_hparams("gymnax/Acrobot-v1", "ppo", training.PAPER_SWEEP)
    assert row == {} and "Config defaults" in source
    assert training.paper_hparams("CartPole-v1", "ppo", tmp_path / "missing.yaml")[0] == {}


def test_parse_scale():
    assert parse_scale("1/16") == 0.0625 and parse_scale("0.5") == 0.5 and parse_scale(2) == 2.0
    for bad in ("0", "-1", "x", "1/0"):
        with pytest.raises(ConfigError, match="--scale"):
            parse_scale(bad)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--only", "training", "--envs", "Cartpole-v1"], "CartPole-v1"),
        (["--only", "forward", "--pops", "5"], "pop_sizes"),
        (["--only", "training", "--scale", "0"], "--scale"),
    ],
)
def test_bad_input_fails_before_running(tmp_path, capsys, argv, message):
    assert cli.main(["bench", "--out", str(tmp_path / "out"), *argv]) == cli.EXIT_BAD_INPUT
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_script_is_the_bench_command():
    help_text = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--help"],
                               capture_output=True, text=True, check=True).stdout
    assert "--mode {quick,full}" in help_text and "--openes-mem-cap-gib" in help_text


def test_summary_of_synthetic_records():
    """forward_summary on hand-made records: ratios are exactly those of the medians."""
    def rec(method, phase, median_s, status="ok", rank=None):
        return {"method": method, "algorithm": method.split("_")[0], "rank": rank, "phase": phase, "pop_size": 2,
                "width": 4, "status": status, "median_s": median_s, "samples_per_s": 2 / median_s if median_s else None,
                "normalized_throughput": None}

    records = [rec("inference", "forward", 1.0), rec("eggroll_r4", "forward", 2.0, rank=4),
               rec("eggroll_r4", "update", 0.5, rank=4), rec("openes", "forward", 8.0), rec("openes", "update", 4.0)]
    forward.normalise(records)
    (row,) = report.forward_summary(records)
    assert row["normalized_throughput"] == {"eggroll_r4": 0.5, "openes": 0.125}
    assert row["speedup_vs_openes_forward"] == {"eggroll_r4": 4.0}
    assert row["speedup_vs_openes_update"] == {"eggroll_r4": 8.0}
    records[3]["status"] = records[4]["status"] = "skipped"
    (row,) = report.forward_summary(records)
    assert row["speedup_vs_openes_forward"] == {"eggroll_r4": None} and row["normalized_throughput"]["openes"] is None
