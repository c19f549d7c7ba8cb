"""Trial specs, and their resolution, once, into what the backends and the runner pass along.

    spec  = TrialSpec(env="CartPole-v1", algo="eggroll", hparams={...}, seeds=(0, 1, 2), env_steps=10**6)
    trial = resolve_trial(spec)     # validated: env built, algorithm found, Config built, budget scheduled
    trial.trial_id, trial.config, trial.algorithm, trial.cfg, trial.env, trial.schedule

Every problem is one `ConfigError` naming the field path and the allowed
values, raised before anything runs or is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from esbench.algorithms import get_algorithm
from esbench.envs import Env, make
from esbench.provenance import PROTOCOL_VERSION
from esbench.runner.schedule import Schedule, schedule_trial
from esbench.validation import ConfigError, build, check_names, rule, validate

DEFAULT_NUM_LOGS = 20
DEFAULT_EVAL_EPISODES = 16
_POSITIVE = rule(lambda v: v >= 1, "an integer >= 1")


def _seeds_ok(seeds) -> bool:
    return len(seeds) > 0 and len(set(seeds)) == len(seeds) and all(0 <= s < 2**32 for s in seeds)


@dataclass(frozen=True)
class TrialSpec:
    """One trial: env x algorithm x hyperparameters x seeds x budget x logging cadence."""

    env: str
    algo: str
    hparams: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = field(
        default=(0,), metadata=rule(_seeds_ok, "a non-empty list of distinct integers in [0, 2^32)")
    )
    env_steps: int = field(default=100_000, metadata=_POSITIVE)
    num_logs: int = field(default=DEFAULT_NUM_LOGS, metadata=_POSITIVE)
    eval_every: int = field(default=1, metadata=_POSITIVE)
    eval_episodes: int = field(default=DEFAULT_EVAL_EPISODES, metadata=_POSITIVE)
    max_episode_steps: int | None = field(
        default=None, metadata=rule(lambda v: v >= 1, "an integer >= 1, or null")
    )
    num_gpus: float = field(
        default=0.0, metadata=rule(lambda v: v >= 0, "a number >= 0")
    )  # resources: not in the id
    stage: Literal["sweep", "search", "reselect", "final", "matched"] = (
        "sweep"  # of the protocol (`esbench reproduce`)
    )

    def validate(self, owner: str = "trial") -> None:
        validate(self, owner)
        if not isinstance(self.hparams, dict):
            raise ConfigError(
                f"{owner}.hparams: expected a mapping, got {type(self.hparams).__name__} {self.hparams!r}"
            )

    @property
    def trial_id(self) -> str:
        return resolve_trial(self).trial_id


@dataclass(frozen=True, eq=False)
class ResolvedTrial:
    """A validated trial with everything built: what backends, runner and benchmarks pass along."""

    spec: TrialSpec
    config: dict[
        str, Any
    ]  # the resolved config as stored with the results (every default filled in, trial_id)
    algorithm: Any
    cfg: Any  # the algorithm's Config
    env: Env
    schedule: Schedule  # how the budget is spent in chunks (schedule.py)

    @property
    def trial_id(self) -> str:
        return self.config["trial_id"]


def check_hparam_names(algo_name: str, hparams: Any, path: str) -> dict[str, Any]:
    """`hparams` if it is a mapping of names the algorithm's Config has; ConfigError otherwise."""
    try:
        algo = get_algorithm(algo_name)
    except KeyError as err:
        raise ConfigError(f"{path}: {err}") from None
    return check_names(algo.Config, hparams, path, what=f"hyperparameter for {algo_name}")


def with_budget(config_cls, hparams: dict[str, Any], env_steps: int) -> dict[str, Any]:
    """`hparams` plus what is derived from the trial's budget: PPO's lr-annealing horizon.

    `anneal_lr: true` without `anneal_env_steps` anneals to 0 at the end of
    the trial's `env_steps`; an explicit `anneal_env_steps` is kept.
    """
    names = {f.name for f in dataclasses.fields(config_cls)}
    if hparams.get("anneal_lr") is True and "anneal_env_steps" not in hparams and "anneal_env_steps" in names:
        return {**hparams, "anneal_env_steps": env_steps}
    return hparams


def config_to_dict(cfg) -> dict[str, Any]:
    """A JSON-ready dict of a Config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def resolve_trial(spec: TrialSpec, owner: str = "trial") -> ResolvedTrial:
    """Validate `spec` and build what running it needs; ConfigError naming the first problem."""
    spec.validate(owner)
    try:
        algorithm = get_algorithm(spec.algo)
    except KeyError as err:
        raise ConfigError(f"{owner}.algo: {err}") from None
    check_hparam_names(spec.algo, spec.hparams, f"{owner}.hparams")
    cfg = build(
        algorithm.Config, with_budget(algorithm.Config, spec.hparams, spec.env_steps), f"{owner}.hparams"
    )
    try:
        env = make(spec.env, spec.max_episode_steps)
    except KeyError as err:
        raise ConfigError(f"{owner}.env: {err}") from None
    try:
        schedule = schedule_trial(spec.env_steps, spec.num_logs, algorithm, env, cfg)
    except ConfigError as err:
        raise ConfigError(f"{owner} [{spec.env} x {spec.algo}]: {err}") from None
    config = {
        "env": spec.env,
        "algo": spec.algo,
        "hparams": config_to_dict(cfg),
        "seeds": list(spec.seeds),
        "env_steps": spec.env_steps,
        "num_logs": spec.num_logs,
        "eval_every": spec.eval_every,
        "eval_episodes": spec.eval_episodes,
        "max_episode_steps": spec.max_episode_steps,
        "stage": spec.stage,
        "protocol_version": PROTOCOL_VERSION,
    }
    config["trial_id"] = trial_id(config)
    return ResolvedTrial(spec, config, algorithm, cfg, env, schedule)


def trial_id(config: dict[str, Any]) -> str:
    """Stable id: readable env/algo prefix + hash of the resolved config and the protocol version (resources
    excluded)."""
    body = {k: v for k, v in config.items() if k != "trial_id"}
    digest = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{config['env']}-{config['algo']}").strip("_")
    return f"{slug}-{digest}"
