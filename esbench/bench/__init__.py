"""`esbench bench`: throughput benchmarks (see benchmarks/README.md).

    forward   one generation's population forward pass and update: pure inference,
              EGGROLL (r = 1, 4, 16) and OpenES, over population sizes and layer widths
    training  env steps/s of one full `update` of eggroll, openes and ppo

Modes: "quick" finishes on a 2-core CPU in minutes; "full" is for a GPU.
Every setting of a mode can be overridden from the command line.
Writes <out>/forward_<mode>_<platform>.json (+ .png) and <out>/training_<mode>_<platform>.json.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import time
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path
from typing import Any

from esbench.bench.report import SCHEMA_VERSION

MODES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "forward": dict(pop_sizes=(256, 512, 1024), widths=(256, 1024), ranks=(1, 4, 16), depth=3,
                        repeats=5, warmup=1, min_time_s=0.1, openes_mem_cap_gib=1.0),
        "training": dict(envs=("CartPole-v1",), scale=1 / 16, max_episode_steps=None, repeats=3, warmup=1),
    },
    "full": {
        "forward": dict(pop_sizes=(256, 1024, 4096, 16384), widths=(256, 1024, 4096), ranks=(1, 4, 16), depth=3,
                        repeats=10, warmup=2, min_time_s=0.05, openes_mem_cap_gib=8.0),
        "training": dict(envs=("CartPole-v1", "brax/ant", "craftax/Craftax-Classic-Symbolic"), scale=1.0,
                         max_episode_steps=None, repeats=5, warmup=1),
    },
}
BENCHMARKS = ("forward", "training")
SUITE_PACKAGES = {"gymnax": "gymnax", "brax": "brax", "craftax": "craftax", "jumanji": "jumanji",
                  "kinetix": "kinetix-env", "navix": "navix"}


def _arg(args, name: str, default=None):
    value = getattr(args, name, None)
    return default if value is None else value


def parse_scale(value) -> float:
    """A positive number, also written as a fraction: 0.0625 or 1/16."""
    from esbench.runner.config import ConfigError

    try:
        scale = float(Fraction(str(value)))
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"--scale {value!r}: expected a positive number or fraction, e.g. 0.25 or 1/16") from None
    if scale <= 0:
        raise ConfigError(f"--scale {value!r}: expected a positive number or fraction, e.g. 0.25 or 1/16")
    return scale


def forward_settings(args):
    from esbench.bench.forward import ForwardSettings

    mode = MODES[args.mode]["forward"]
    cap_gib = float(_arg(args, "openes_mem_cap_gib", mode["openes_mem_cap_gib"]))
    return ForwardSettings(
        pop_sizes=tuple(_arg(args, "pops", mode["pop_sizes"])),
        widths=tuple(_arg(args, "widths", mode["widths"])),
        ranks=tuple(_arg(args, "ranks", mode["ranks"])),
        depth=int(_arg(args, "depth", mode["depth"])),
        repeats=int(_arg(args, "repeats", mode["repeats"])),
        warmup=int(_arg(args, "warmup", mode["warmup"])),
        min_time_s=float(_arg(args, "min_time_s", mode["min_time_s"])),
        openes_mem_cap_bytes=int(cap_gib * 2**30),
    )


def training_settings(args):
    from esbench.bench.training import TrainingSettings

    mode = MODES[args.mode]["training"]
    return TrainingSettings(
        envs=tuple(_arg(args, "envs", mode["envs"])),
        algos=tuple(_arg(args, "algos", ("eggroll", "openes", "ppo"))),
        scale=parse_scale(_arg(args, "scale", mode["scale"])),
        max_episode_steps=_arg(args, "max_episode_steps", mode["max_episode_steps"]),
        repeats=int(_arg(args, "train_repeats", mode["repeats"])),
        warmup=int(_arg(args, "train_warmup", mode["warmup"])),
        layer_size=_arg(args, "layer_size"),
        n_layers=_arg(args, "n_layers"),
    )


def device_info() -> dict:
    import jax

    device = jax.devices()[0]
    kind = getattr(device, "device_kind", "unknown")
    return {
        "platform": device.platform,
        "device_kind": kind,
        "device_count": jax.device_count(),
        "description": f"{device.platform}:{kind} x{jax.device_count()}",
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def load_average():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def package_versions(envs=()) -> dict:
    names = ["esbench", "jax", "jaxlib", "flax", "optax", "numpy"]
    names += sorted({SUITE_PACKAGES[e.split("/")[0]] for e in envs if e.split("/")[0] in SUITE_PACKAGES})
    if any("/" not in e for e in envs):  # bare ids are gymnax's (CartPole-v1, Pendulum-v1)
        names.append("gymnax")
    versions = {}
    for name in dict.fromkeys(names):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def _settings_dict(settings) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(settings).items()}


def _payload(benchmark: str, mode: str, settings, records: list, started: float, load_start, envs=()) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "benchmark": benchmark,
        "mode": mode,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "device": device_info(),
        "packages": package_versions(envs),
        # The machine may be shared: the load average says how busy it was around the run.
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "wall_s": time.perf_counter() - started,
        "settings": _settings_dict(settings),
        "records": records,
    }


def output_path(out: Path, benchmark: str, mode: str, suffix: str) -> Path:
    import jax

    return Path(out) / f"{benchmark}_{mode}_{jax.devices()[0].platform}.{suffix}"


def run_forward_benchmark(settings, mode: str, out: Path, progress=None) -> tuple[dict, dict]:
    """Run, then write the JSON and the plot; returns (payload, {name: path})."""
    from esbench.bench import report
    from esbench.bench.forward import run_forward

    started, load_start = time.perf_counter(), load_average()
    records = run_forward(settings, progress)
    payload = _payload("forward", mode, settings, records, started, load_start)
    payload["summary"] = report.forward_summary(records)
    paths = {"forward_json": report.write_json(output_path(out, "forward", mode, "json"), payload)}
    paths["forward_plot"] = report.plot_forward(records, output_path(out, "forward", mode, "png"))
    return payload, paths


def run_training_benchmark(settings, mode: str, out: Path, progress=None) -> tuple[dict, dict]:
    from esbench.bench import report
    from esbench.bench.training import run_training

    started, load_start = time.perf_counter(), load_average()
    records = run_training(settings, progress)
    payload = _payload("training", mode, settings, records, started, load_start, settings.envs)
    return payload, {"training_json": report.write_json(output_path(out, "training", mode, "json"), payload)}


def main(args) -> int:
    """`esbench bench`; 0 when every configuration ran or was skipped by rule, 1 when one failed."""
    from rich.console import Console

    from esbench.bench import report
    from esbench.envs import resolve
    from esbench.runner.config import ConfigError

    mode = args.mode
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: allowed: {', '.join(MODES)}")
    only = _arg(args, "only", "all")
    run = BENCHMARKS if only == "all" else (only,)
    out = Path(_arg(args, "out", "benchmarks/results"))
    # Check every input before anything is compiled.
    fwd = forward_settings(args)
    train = training_settings(args)
    try:
        if "forward" in run:
            fwd.validate()
        if "training" in run:
            train.validate()
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if "training" in run:
        for env_id in train.envs:
            resolve(env_id)  # an unknown id raises UnknownEnvError, listing close matches

    console = Console()
    if not console.is_terminal:  # piped or logged: rich would otherwise cut the tables to 80 columns
        console = Console(width=140)
    failed = 0
    for benchmark in run:
        with console.status(f"{benchmark} benchmark ...") as status:
            progress = lambda message: status.update(message)  # noqa: E731
            if benchmark == "forward":
                payload, paths = run_forward_benchmark(fwd, mode, out, progress)
                table = report.forward_table(payload)
            else:
                payload, paths = run_training_benchmark(train, mode, out, progress)
                table = report.training_table(payload)
        console.print(table)
        for name, path in paths.items():
            console.print(f"{name}: {path}")
        failed += sum(r["status"] == "failed" for r in payload["records"])
    if failed:
        console.print(f"[red]{failed} configuration(s) failed; see 'reason' in the JSON[/red]")
    return 1 if failed else 0
