"""Env steps per second of one `update` of each algorithm, run by the runner's own programs with the paper's settings.

For every (environment, algorithm) a `TrialSpec` is built and handed to the
runner, so the benchmark times exactly what a trial runs:

    hparams   the paper's row (`esbench.paper.row`); the algorithm's Config defaults where the tables lack the pair
    scaled    the Config's population field times `scale` (`scaled_values`); a Config without one runs unscaled
    episodes  capped at `max_episode_steps` where that shortens them (for CPU)
    budget    one seed, exactly `warmup + repeats` updates of the most env steps an update can simulate

`resolve_trial` validates and plans it, `compile_programs` compiles it
(`compile_s`, apart from the run time). Each chunk is called for exactly one
update (`more` = 1): `warmup` untimed, then `repeats` timed. Throughput =
env_steps_per_update (the plan's: the most one update simulates) / median
seconds, so a configuration's rate compares by time per update; the chunk's
counts give what the timed updates actually ran (medians):
`valid_env_steps_per_update` (inside episodes) and
`simulated_env_steps_per_update` (fewer than the most where rollouts exit early).
"""

from __future__ import annotations

import dataclasses
import math
import time
from statistics import median
from typing import Any, Callable, Optional

import jax
import numpy as np

from esbench import paper
from esbench.algorithms import UnknownAlgorithmError, algorithm_names, get_algorithm
from esbench.bench.measure import AT_LEAST_ONE, distinct, failure_reason, memory_report
from esbench.envs import UnknownEnvError, make, resolve
from esbench.runner.config import ResolvedTrial, TrialSpec, resolve_trial
from esbench.runner.programs import compile_programs
from esbench.validation import ConfigError, build, rule, validate

# The probe resolution only reads the plan's env steps per update, which no budget of at least one update changes.
_PROBE_ENV_STEPS = 2**62
_NO_LIMIT = np.iinfo(np.int32).max  # a chunk's env-step goal and room: only its update count (1) stops it


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """Which (env, algorithm) pairs, at what size, timed how; the defaults are the quick mode (a 2-core CPU)."""

    envs: tuple[str, ...] = dataclasses.field(
        default=("CartPole-v1",), metadata=rule(distinct, "one or more distinct environment ids")
    )
    # every registered algorithm (plugins included), read when the settings are made
    algos: tuple[str, ...] = dataclasses.field(
        default_factory=algorithm_names, metadata=rule(distinct, "one or more distinct algorithm names")
    )
    scale: float = dataclasses.field(
        default=1 / 16, metadata=rule(lambda v: v > 0, "a number > 0, or a fraction such as 1/16")
    )
    max_episode_steps: Optional[int] = dataclasses.field(
        default=None,
        metadata=rule(lambda v: v >= 1, "an integer >= 1, or null (the environment's own limit)"),
    )
    repeats: int = dataclasses.field(default=3, metadata=AT_LEAST_ONE)
    warmup: int = dataclasses.field(default=1, metadata=rule(lambda v: v >= 0, "an integer >= 0"))
    layer_size: Optional[int] = dataclasses.field(
        default=None, metadata=rule(lambda v: v >= 1, "an integer >= 1, or null (the paper's network)")
    )
    n_layers: Optional[int] = dataclasses.field(
        default=None, metadata=rule(lambda v: v >= 1, "an integer >= 1, or null (the paper's network)")
    )
    seed: int = dataclasses.field(
        default=0, metadata=rule(lambda v: 0 <= v < 2**32, "an integer in [0, 2^32)")
    )

    def validate(self, owner: str = "bench.training") -> None:
        """The fields' rules, then every env id and algorithm name looked up (nothing is built)."""
        validate(self, owner)
        for field, lookup, unknown in (
            ("envs", resolve, UnknownEnvError),
            ("algos", get_algorithm, UnknownAlgorithmError),
        ):
            for name in getattr(self, field):
                try:
                    lookup(name)
                except unknown as err:
                    raise ConfigError(f"{owner}.{field}: {err}") from None


# The full mode (for a GPU): where it differs from the defaults.
FULL = dict(envs=("CartPole-v1", "brax/ant", "craftax/Craftax-Classic-Symbolic"), scale=1.0, repeats=5)


def paper_hparams(algo: str, env_id: str) -> tuple[dict, str]:
    """The paper's hyperparameters for (algo, env_id) and where they came from; {} (the Config defaults) if it
    has none."""
    try:
        return paper.row(algo, env_id), f"esbench.paper.row({algo!r}, {env_id!r})"
    except paper.TableError:
        return {}, f"{algo} Config defaults (the paper's tables have no {algo} row for {env_id})"


def largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, max(1, min(n, limit)) + 1) if n % d == 0)


def scaled_values(cfg, scale: float) -> tuple[Optional[str], dict]:
    """(the population field scaled, the Config values that change), whatever the algorithm.

    pop_size: times `scale`, to the nearest even number >= 2 (antithetic pairs).
    num_envs: times `scale`, to the nearest integer >= 1; num_minibatches (if
    any) becomes the largest divisor of the new batch num_envs * num_steps not
    above the old count. A Config with neither: (None, {}), run unscaled.
    """
    if hasattr(cfg, "pop_size"):
        return "pop_size", {"pop_size": max(2, 2 * math.floor(cfg.pop_size * scale / 2 + 0.5))}  # ties up
    if hasattr(cfg, "num_envs"):
        num_envs = max(1, math.floor(cfg.num_envs * scale + 0.5))
        values = {"num_envs": num_envs}
        if hasattr(cfg, "num_minibatches") and hasattr(cfg, "num_steps"):
            values["num_minibatches"] = largest_divisor_at_most(num_envs * cfg.num_steps, cfg.num_minibatches)
        return "num_envs", values
    return None, {}


def episode_cap(env_id: str, max_episode_steps: Optional[int]) -> Optional[int]:
    """`max_episode_steps` where it shortens the environment's episodes; None (its own limit) otherwise."""
    if max_episode_steps and max_episode_steps < make(env_id).spec.max_episode_steps:
        return max_episode_steps
    return None


def timing_trial(env_id: str, algo: str, settings: TrainingSettings) -> tuple[ResolvedTrial, dict]:
    """The resolved trial whose updates are timed, and what the record says of its making (hparams_source,
    scaled_field).

    Its budget is exactly `warmup + repeats` updates of the most env steps
    one can simulate: resolved once to read that number (it depends on the
    scaled config and the episode cap), then with that budget.
    """
    owner = f"bench.training[{env_id} x {algo}]"
    hparams, source = paper_hparams(algo, env_id)
    for name in ("layer_size", "n_layers"):  # the paper's network unless the settings replace it
        if getattr(settings, name) is not None:
            hparams[name] = getattr(settings, name)
    field, changes = scaled_values(
        build(get_algorithm(algo).Config, hparams, f"{owner}.hparams"), settings.scale
    )
    n_updates = settings.warmup + settings.repeats
    spec = TrialSpec(
        env=env_id,
        algo=algo,
        hparams={**hparams, **changes},
        seeds=(settings.seed,),
        env_steps=_PROBE_ENV_STEPS,
        num_logs=n_updates,
        max_episode_steps=episode_cap(env_id, settings.max_episode_steps),
    )
    most = resolve_trial(spec, owner).schedule.max_env_steps_per_update
    trial = resolve_trial(dataclasses.replace(spec, env_steps=n_updates * most), owner)
    return trial, {"hparams_source": source, "scaled_field": field}


def time_updates(trial: ResolvedTrial, settings: TrainingSettings, record: dict) -> None:
    """Compile the trial's programs (compile_s, memory); run `warmup` updates, time `repeats`, one chunk each."""
    start = time.perf_counter()
    programs = compile_programs([trial], np.asarray(trial.spec.seeds, np.uint32))
    record["compile_s"] = time.perf_counter() - start
    record["memory"] = memory_report(programs.compiled_chunk)
    one_update = [
        np.full((1, len(trial.spec.seeds)), n, np.int32) for n in (_NO_LIMIT, _NO_LIMIT, 1)
    ]  # goal, room, more
    state = jax.block_until_ready(programs.init())
    for _ in range(settings.warmup):
        state, _, _ = jax.block_until_ready(programs.chunk(state, *one_update))
    valid, simulated = [], []
    for _ in range(settings.repeats):
        start = time.perf_counter()
        state, counts, _ = jax.block_until_ready(programs.chunk(state, *one_update))
        record["times_s"].append(time.perf_counter() - start)
        valid.append(int(np.sum(counts["env_steps"])))  # [1 point, 1 seed]
        simulated.append(int(np.sum(counts["simulated_env_steps"])))
    record["valid_env_steps_per_update"] = median(valid)
    record["simulated_env_steps_per_update"] = median(simulated)


def measure_pair(env_id: str, algo: str, settings: TrainingSettings) -> dict:
    """One (env, algorithm) record; a failure (a suite that does not build, out of memory) is recorded, not raised."""
    record: dict[str, Any] = {
        "env": env_id,
        "algorithm": algo,
        "scale": settings.scale,
        "scaled_field": None,
        "max_episode_steps": None,
        "hparams_source": None,
        "trial_id": None,
        "config": None,
        "status": "ok",
        "reason": None,
        "compile_s": None,
        "times_s": [],
        "median_s": None,
        "env_steps_per_update": None,
        "valid_env_steps_per_update": None,
        "simulated_env_steps_per_update": None,
        "env_steps_per_s": None,
        "memory": None,
    }
    try:
        trial, facts = timing_trial(env_id, algo, settings)
        record.update(
            facts,
            trial_id=trial.trial_id,
            config=trial.config["hparams"],
            max_episode_steps=trial.env.spec.max_episode_steps,
            env_steps_per_update=trial.schedule.max_env_steps_per_update,
        )
        time_updates(trial, settings, record)
        record["median_s"] = median(record["times_s"])
        record["env_steps_per_s"] = record["env_steps_per_update"] / record["median_s"]
    except Exception as err:
        record.update(status="failed", reason=failure_reason(err))
    return record


def measure(settings: TrainingSettings, progress: Optional[Callable[[str], Any]] = None) -> dict:
    """A record per (env, algorithm), envs outermost."""
    records = []
    for env_id in settings.envs:
        for algo in settings.algos:
            if progress:
                progress(f"training: {env_id}, {algo}")
            records.append(measure_pair(env_id, algo, settings))
    return {"records": records}
