"""Trial configs: resolution of hyperparameters against an algorithm's Config, and validation.

Every problem is reported as one `ConfigError` naming the field path and the
allowed values, before anything runs or is written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from esbench.algorithms import get_algorithm
from esbench.envs import resolve
from esbench.provenance import PROTOCOL_VERSION
from esbench.validation import ConfigError, build, check_names

DEFAULT_NUM_LOGS = 20
DEFAULT_EVAL_EPISODES = 16


def check_hparam_names(algo_name: str, hparams: Any, path: str) -> dict[str, Any]:
    """`hparams` if it is a mapping of names the algorithm's Config has; ConfigError otherwise."""
    try:
        algo = get_algorithm(algo_name)
    except KeyError as err:
        raise ConfigError(f"{path}: {err}") from None
    return check_names(algo.Config, hparams, path, what=f"hyperparameter for {algo_name}")


def build_algo_config(algo_name: str, hparams: dict[str, Any], path: str = "hparams"):
    """The algorithm's Config with `hparams` applied, type-checked and validated."""
    check_hparam_names(algo_name, hparams, path)
    return build(get_algorithm(algo_name).Config, hparams, path)


def with_budget(algo_name: str, hparams: Any, env_steps: int) -> Any:
    """`hparams` plus what is derived from the trial's budget: PPO's lr-annealing horizon.

    `anneal_lr: true` without `anneal_env_steps` anneals to 0 at the end of
    the trial's `env_steps`; an explicit `anneal_env_steps` is kept.
    """
    if not isinstance(hparams, dict) or hparams.get("anneal_lr") is not True or "anneal_env_steps" in hparams:
        return hparams
    try:
        fields = {f.name for f in dataclasses.fields(get_algorithm(algo_name).Config)}
    except KeyError:
        return hparams  # build_algo_config reports the unknown algorithm
    return {**hparams, "anneal_env_steps": env_steps} if "anneal_env_steps" in fields else hparams


def config_to_dict(cfg) -> dict[str, Any]:
    """A JSON-ready dict of a Config (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


@dataclass(frozen=True)
class TrialSpec:
    """One trial: env x algorithm x hyperparameters x seeds x budget x logging cadence."""

    env: str
    algo: str
    hparams: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] = (0,)
    env_steps: int = 100_000
    num_logs: int = DEFAULT_NUM_LOGS
    eval_every: int = 1
    eval_episodes: int = DEFAULT_EVAL_EPISODES
    max_episode_steps: int | None = None
    num_gpus: float = 0.0

    def validate(self, path: str = "trial") -> None:
        """Raise ConfigError on the first problem; resolves env and algorithm names."""
        try:
            resolve(self.env)
        except KeyError as err:
            raise ConfigError(f"{path}.env: {err}") from err
        try:
            get_algorithm(self.algo)
        except KeyError as err:
            raise ConfigError(f"{path}.algo: {err}") from err
        if not self.seeds:
            raise ConfigError(f"{path}.seeds: at least one seed is required")
        if not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in self.seeds):
            raise ConfigError(f"{path}.seeds: seeds must be integers in [0, 2^32), got {list(self.seeds)}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"{path}.seeds: seeds must be distinct, got {list(self.seeds)}")
        for name in ("env_steps", "num_logs", "eval_every", "eval_episodes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{path}.{name}: must be a positive integer, got {value!r}")
        if self.max_episode_steps is not None and (not isinstance(self.max_episode_steps, int) or self.max_episode_steps < 1):
            raise ConfigError(f"{path}.max_episode_steps: must be a positive integer or null, got {self.max_episode_steps!r}")
        if not isinstance(self.num_gpus, (int, float)) or self.num_gpus < 0:
            raise ConfigError(f"{path}.num_gpus: must be >= 0, got {self.num_gpus!r}")
        self.algo_config(f"{path}.hparams")

    def algo_config(self, path: str = "hparams"):
        """The algorithm's validated Config for this trial (budget-derived fields filled in)."""
        return build_algo_config(self.algo, with_budget(self.algo, self.hparams, self.env_steps), path)

    def resolved(self) -> dict[str, Any]:
        """The full config with every algorithm default filled in, as stored with the results."""
        cfg = self.algo_config()
        resolved = {
            "env": self.env,
            "algo": self.algo,
            "hparams": config_to_dict(cfg),
            "seeds": list(self.seeds),
            "env_steps": self.env_steps,
            "num_logs": self.num_logs,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "max_episode_steps": self.max_episode_steps,
            "protocol_version": PROTOCOL_VERSION,
        }
        resolved["trial_id"] = trial_id(resolved)
        return resolved


def trial_id(resolved: dict[str, Any]) -> str:
    """Stable id: readable env/algo prefix + hash of the resolved config and the protocol version (resources excluded)."""
    body = {k: v for k, v in resolved.items() if k != "trial_id"}
    digest = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9]+", "_", f"{resolved['env']}-{resolved['algo']}").strip("_")
    return f"{slug}-{digest}"
