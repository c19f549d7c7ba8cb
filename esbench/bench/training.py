"""Env steps per second of one full `update` of each algorithm, with the paper's settings.

For every (environment, algorithm): the paper's hyperparameters (the
algorithm's row in sweeps/paper16.yaml; the Config defaults where the file or
row is missing), population / number of envs multiplied by `scale`, episodes
optionally capped at `max_episode_steps` (for CPU). `update` is compiled on
its own (compile time recorded apart), run `warmup` times, then timed
`repeats` times; throughput = env_steps_per_update / median seconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Callable, Optional

import jax

from esbench.algorithms import get_algorithm
from statistics import median

from esbench.bench.forward import memory_report
from esbench.envs import make
from esbench.runner import build_algo_config, load_sweep_file
from esbench.runner.config import config_to_dict

PAPER_SWEEP = Path(__file__).resolve().parents[2] / "sweeps" / "paper16.yaml"
DEFAULT_ENVS = ("CartPole-v1", "brax/ant", "craftax/Craftax-Classic-Symbolic")
ALGORITHMS = ("eggroll", "openes", "ppo")
# The field `scale` multiplies in each algorithm's config.
SCALED_FIELD = {"eggroll": "pop_size", "openes": "pop_size", "ppo": "num_envs"}


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    envs: tuple[str, ...] = DEFAULT_ENVS
    algos: tuple[str, ...] = ALGORITHMS
    scale: float = 1.0
    max_episode_steps: Optional[int] = None
    repeats: int = 3
    warmup: int = 1
    layer_size: Optional[int] = None  # None: the paper's network (the Config default)
    n_layers: Optional[int] = None
    seed: int = 0
    sweep_file: Path = PAPER_SWEEP

    def validate(self) -> None:
        def fail(field, allowed):
            raise ValueError(f"bench: {field} = {getattr(self, field)!r} is invalid; allowed: {allowed}")

        if not self.envs:
            fail("envs", "at least one environment id")
        if not self.algos or any(a not in ALGORITHMS for a in self.algos):
            fail("algos", ", ".join(ALGORITHMS))
        if not self.scale > 0:
            fail("scale", "a number > 0")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            fail("max_episode_steps", "an integer >= 1")
        if self.repeats < 1:
            fail("repeats", "an integer >= 1")
        if self.warmup < 0:
            fail("warmup", "an integer >= 0")
        for name in ("layer_size", "n_layers"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                fail(name, "an integer >= 1")


def paper_hparams(env_id: str, algo: str, sweep_file: Path) -> tuple[dict, str]:
    """The algorithm's hyperparameters for `env_id` in the paper sweep, and where they came from."""
    if not Path(sweep_file).exists():
        return {}, "Config defaults (no sweep file)"
    data = load_sweep_file(sweep_file)
    base = dict((data.get("algorithms") or {}).get(algo) or {})
    row = ((data.get("env_overrides") or {}).get(env_id) or {}).get(algo)
    if row is None:
        return base, f"Config defaults (no {env_id} row in {Path(sweep_file).name})"
    return {**base, **row}, f"{Path(sweep_file).name}: {env_id} / {algo}"


def largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0)


def scale_hparams(algo: str, hparams: dict, scale: float) -> dict:
    """pop_size (ES, kept even) or num_envs (PPO) times `scale`; PPO's minibatch count kept a divisor."""
    cfg = build_algo_config(algo, hparams)
    value = getattr(cfg, SCALED_FIELD[algo]) * scale
    out = dict(hparams)
    if algo == "ppo":
        out["num_envs"] = max(1, math.floor(value + 0.5))  # nearest, ties up
        batch = out["num_envs"] * cfg.num_steps
        out["num_minibatches"] = largest_divisor_at_most(batch, cfg.num_minibatches)
    else:
        out["pop_size"] = max(2, 2 * math.floor(value / 2 + 0.5))  # nearest even, ties up
    return out


def measure_update(env_id: str, algo_name: str, settings: TrainingSettings) -> dict:
    record: dict[str, Any] = {
        "env": env_id, "algorithm": algo_name, "scale": settings.scale,
        "max_episode_steps": None, "hparams_source": None, "config": None,
        "status": "ok", "reason": None, "compile_s": None, "times_s": [], "median_s": None,
        "env_steps_per_update": None, "valid_env_steps_per_update": None, "env_steps_per_s": None, "memory": None,
    }
    try:
        env = make(env_id)
        if settings.max_episode_steps and settings.max_episode_steps < env.spec.max_episode_steps:
            env = env.with_time_limit(settings.max_episode_steps)
        record["max_episode_steps"] = env.spec.max_episode_steps
        hparams, record["hparams_source"] = paper_hparams(env_id, algo_name, settings.sweep_file)
        for name in ("layer_size", "n_layers"):
            if getattr(settings, name) is not None:
                hparams[name] = getattr(settings, name)
        hparams = scale_hparams(algo_name, hparams, settings.scale)
        algo = get_algorithm(algo_name)
        cfg = build_algo_config(algo_name, hparams, path=f"{env_id}/{algo_name}")
        record["config"] = config_to_dict(cfg)

        state = jax.block_until_ready(jax.jit(lambda key: algo.init(key, env, cfg))(jax.random.PRNGKey(settings.seed)))
        start = time.perf_counter()
        update = jax.jit(lambda s: algo.update(s, env, cfg)).lower(state).compile()
        record["compile_s"] = time.perf_counter() - start
        record["memory"] = memory_report(update)
        for _ in range(settings.warmup):
            state, metrics = jax.block_until_ready(update(state))
        valid = []
        for _ in range(settings.repeats):
            start = time.perf_counter()
            state, metrics = jax.block_until_ready(update(state))
            record["times_s"].append(time.perf_counter() - start)
            valid.append(float(metrics["valid_env_steps"]))
        record["median_s"] = median(record["times_s"])
        record["env_steps_per_update"] = int(algo.env_steps_per_update(env, cfg))
        record["valid_env_steps_per_update"] = median(valid)
        record["env_steps_per_s"] = record["env_steps_per_update"] / record["median_s"]
    except Exception as err:  # a suite that fails to build or a device out of memory: record and go on
        first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
        record.update(status="failed", reason=f"{type(err).__name__}: {first_line[:300]}")
    return record


def run_training(settings: TrainingSettings, progress: Optional[Callable[[str], Any]] = None) -> list[dict]:
    settings.validate()
    records = []
    for env_id in settings.envs:
        for algo in settings.algos:
            if progress:
                progress(f"training: {env_id}, {algo}")
            records.append(measure_update(env_id, algo, settings))
    return records
