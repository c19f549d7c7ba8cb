"""A sweep file under one budget: its envs, algorithms and trial settings, and the trials it expands into.

    sweep = parse_sweep(load_sweep_file(path), "cpu")     # validated (sweep_file.py documents the format)
    spec = sweep.spec("CartPole-v1", "eggroll", point)    # one trial's TrialSpec at a search point
    specs = expand_sweep(data, "cpu")                     # `esbench sweep`: every trial of the file

Hyperparameters are applied in this order: the algorithm's defaults, `algorithms`, the paper's
row (with `paper_rows: true`), `env_overrides`, the search point, the budget's `algorithms`, the
budget's `env_overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from esbench import paper
from esbench.envs import PAPER_ENVS, resolve
from esbench.runner.config import TrialSpec, check_hparam_names
from esbench.runner.search_space import search_points
from esbench.runner.sweep_file import BUDGET_KEYS, TOP_KEYS, TRIAL_KEYS, check_keys, load_imports
from esbench.validation import ConfigError, build, suggest


def seed_list(seeds: Any, path: str, first: int = 0) -> tuple[int, ...]:
    """`seeds: 3` (seeds first, first + 1, first + 2) or an explicit list of seeds."""
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        return tuple(range(first, first + seeds))
    if isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        return tuple(seeds)
    raise ConfigError(f"{path} = {seeds!r} is invalid; allowed: a count >= 1 or a list of integer seeds")


def _env_list(envs: Any, path: str = "envs") -> list[str]:
    if envs == "paper16":
        return list(PAPER_ENVS)
    if isinstance(envs, str):
        return [envs]
    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) for e in envs):
        raise ConfigError(f"{path}: expected a non-empty list of environment ids, or 'paper16'")
    return envs


def paper_row(algo: str, env: str, path: str) -> dict[str, Any]:
    """The paper's row for (algo, env); ConfigError naming the env and the envs the tables cover."""
    try:
        return paper.row(algo, env)
    except paper.TableError as err:
        raise ConfigError(f"{path}: {err}") from None


def paper_rows(enabled: Any, envs: list[str], algos: list[str]) -> dict[tuple[str, str], dict]:
    """{(env, algo): the paper's row} for `paper_rows: true`; ConfigError naming a pair the tables lack."""
    if not isinstance(enabled, bool):
        raise ConfigError(f"paper_rows = {enabled!r} is invalid; allowed: true, false")
    if not enabled:
        return {}
    return {(env, algo): paper_row(algo, env, "paper_rows") for env in envs for algo in algos}


def _per_env(value: Any, env: str, path: str) -> Any:
    """A budget field given either plainly or as {env: value, default: value}."""
    if not isinstance(value, dict):
        return value
    if env in value:
        return value[env]
    if "default" in value:
        return value["default"]
    raise ConfigError(f"{path}: no value for {env!r} and no 'default'")


@dataclass(frozen=True)
class Sweep:
    """A sweep file under one budget, validated: its envs and algorithms, and how a trial's settings are made."""

    data: dict
    budget: str | None
    envs: tuple[str, ...]
    algos: dict[str, dict]  # algorithm -> base hyperparameters
    env_overrides: dict
    budget_section: dict  # the budget's section ({} without budgets)
    trial_defaults: dict
    rows: dict  # (env, algo) -> the paper's row, with `paper_rows: true`
    all_envs: tuple[str, ...] = ()  # the file's envs (`envs` is the budget's subset of them)

    def only(self, envs, option: str = "--envs") -> tuple[str, ...]:
        """The budget's envs among `envs` (None or empty: all of them), in the file's order; ConfigError
        naming an env the budget lacks and the budget's envs."""
        if not envs:
            return self.envs
        unknown = [e for e in envs if e not in self.envs]
        if unknown:
            raise ConfigError(
                f"{option}: {', '.join(unknown)} not in the budget's envs.{suggest(unknown[0], self.envs)} "
                f"Its envs: {', '.join(self.envs)}"
            )
        return tuple(e for e in self.envs if e in envs)

    @property
    def path(self) -> str:
        """Where the budget's settings live in the file, for error messages."""
        return f"budgets.{self.budget}" if self.budget else "sweep"

    @property
    def checkpoint_every(self) -> int | None:
        """Chunks between mid-trial checkpoints: the budget's `checkpoint_every`, else the file's (None: unset)."""
        path = (
            f"{self.path}.checkpoint_every"
            if "checkpoint_every" in self.budget_section
            else "checkpoint_every"
        )
        value = self.budget_section.get("checkpoint_every", self.data.get("checkpoint_every"))
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(
                f"{path} = {value!r} is invalid; allowed: an integer >= 1 (chunks between checkpoints)"
            )
        return value

    @property
    def protocol_path(self) -> str:
        """Where the protocol settings live in the file (the budget's section, else the top level's)."""
        return f"{self.path}.protocol" if "protocol" in self.budget_section else "protocol"

    def algos_on(self, env: str) -> tuple[str, ...]:
        """The algorithms that run on `env`: the budget's `algorithms_per_env` for it (else its `default`), or
        every algorithm of the file; in the file's order."""
        chosen = self.budget_section.get("algorithms_per_env")
        if chosen is None:
            return tuple(self.algos)
        names = _per_env(chosen, env, f"{self.path}.algorithms_per_env")
        return tuple(a for a in self.algos if a in names)

    def fixed(self, algo: str) -> set[str]:
        """Hyperparameters the budget sets for `algo` (applied after the search point, so never searched)."""
        names = set((self.budget_section.get("algorithms") or {}).get(algo) or {})
        for per_algo in (self.budget_section.get("env_overrides") or {}).values():
            names |= set((per_algo or {}).get(algo) or {})
        return names

    def hparams(
        self, env: str, algo: str, point: dict | None = None, point_path: str = "search"
    ) -> dict[str, Any]:
        """`algo`'s hyperparameters on `env` with a search point, in the order the module doc states."""
        budget_overrides = (self.budget_section.get("env_overrides") or {}).get(env) or {}
        return {
            **check_hparam_names(algo, self.algos[algo], f"algorithms.{algo}"),
            **self.rows.get((env, algo), {}),
            **check_hparam_names(
                algo, (self.env_overrides.get(env) or {}).get(algo), f"env_overrides.{env}.{algo}"
            ),
            **check_hparam_names(algo, point, f"{point_path}.{algo}"),
            **check_hparam_names(
                algo,
                (self.budget_section.get("algorithms") or {}).get(algo),
                f"{self.path}.algorithms.{algo}",
            ),
            **check_hparam_names(algo, budget_overrides.get(algo), f"{self.path}.env_overrides.{env}.{algo}"),
        }

    def spec(
        self,
        env: str,
        algo: str,
        point: dict | None = None,
        owner: str | None = None,
        point_path: str = "search",
        **fields,
    ) -> TrialSpec:
        """The trial of (env, algo) at a search point; `fields` override the trial fields (seeds, stage)."""
        values = {k: _per_env(v, env, f"trial.{k}") for k, v in self.trial_defaults.items()}
        values["seeds"] = seed_list(values.get("seeds", 1), "trial.seeds")
        values.update(fields)
        hparams = self.hparams(env, algo, point, point_path)
        return build(
            TrialSpec,
            {"env": env, "algo": algo, "hparams": hparams, **values},
            owner or f"trial[{env} x {algo}]",
        )


def _check_envs(envs: list[str], path: str) -> None:
    for i, env in enumerate(envs):
        try:
            resolve(env)
        except KeyError as err:
            raise ConfigError(f"{path}[{i}]: {err}") from None


def _check_algorithms_per_env(chosen: Any, envs: list[str], algos: dict, path: str) -> None:
    """`algorithms_per_env`: a list of the file's algorithms, or {env or default: that list}, every env covered."""
    if chosen is None:
        return
    per_env = chosen if isinstance(chosen, dict) else {"default": chosen}
    for key, names in per_env.items():
        if key != "default" and key not in envs:
            raise ConfigError(f"{path}.{key}: not one of the budget's envs.{suggest(key, envs)}")
        if not isinstance(names, list) or not names or not all(isinstance(a, str) for a in names):
            raise ConfigError(
                f"{path}.{key} = {names!r} is invalid; allowed: a non-empty list of: {', '.join(algos)}"
            )
        for name in names:
            if name not in algos:
                raise ConfigError(
                    f"{path}.{key}: {name!r} is not one of the sweep's algorithms.{suggest(name, algos)} "
                    f"Allowed: {', '.join(algos)}"
                )
    if "default" not in per_env:
        missing = [e for e in envs if e not in per_env]
        if missing:
            raise ConfigError(f"{path}: no algorithms for {', '.join(missing)} and no 'default'")


def parse_sweep(data: dict, budget: str | None = None) -> Sweep:
    """The sweep under `budget` (default: its default_budget), validated; ConfigError on the first problem."""
    check_keys(data, TOP_KEYS, "sweep")
    load_imports(data)
    envs = _env_list(data.get("envs"))
    _check_envs(envs, "envs")
    algos = data.get("algorithms")
    if not isinstance(algos, dict) or not algos:
        raise ConfigError("algorithms: expected a non-empty mapping algorithm -> hyperparameters")
    for algo, base in algos.items():
        check_hparam_names(algo, base, f"algorithms.{algo}")
    env_overrides = check_keys(data.get("env_overrides"), None, "env_overrides")
    budgets = check_keys(data.get("budgets"), None, "budgets")
    budget = budget or data.get("default_budget")
    if budget is None and budgets:
        raise ConfigError(f"no budget given and no default_budget; choose one of: {', '.join(budgets)}")
    if budget is not None and budget not in budgets:
        raise ConfigError(
            f"budget {budget!r} is not defined.{suggest(budget, budgets)} Allowed: {', '.join(budgets) or '(none)'}"
        )
    chosen = check_keys(budgets.get(budget) if budget else {}, BUDGET_KEYS, f"budgets.{budget}")
    trial_defaults = {
        **check_keys(data.get("trial"), TRIAL_KEYS, "trial"),
        **{k: v for k, v in chosen.items() if k in TRIAL_KEYS},
    }
    for env in env_overrides:
        if env not in envs:
            raise ConfigError(f"env_overrides.{env}: not one of the sweep's envs.{suggest(env, envs)}")
    if "envs" in chosen:
        subset = _env_list(chosen["envs"], f"budgets.{budget}.envs")
        for i, env in enumerate(subset):
            if env not in envs:
                raise ConfigError(
                    f"budgets.{budget}.envs[{i}]: {env!r} is not one of the sweep's envs.{suggest(env, envs)}"
                )
        all_envs, envs = envs, subset
    else:
        all_envs = envs
    _check_algorithms_per_env(
        chosen.get("algorithms_per_env"), envs, algos, f"budgets.{budget}.algorithms_per_env"
    )
    rows = paper_rows(data.get("paper_rows", False), envs, list(algos))
    sweep = Sweep(
        data, budget, tuple(envs), algos, env_overrides, chosen, trial_defaults, rows, tuple(all_envs)
    )
    sweep.checkpoint_every  # validated here, before anything runs
    return sweep


def expand_sweep(data: dict, budget: str | None = None, envs=None) -> list[TrialSpec]:
    """Every trial of the sweep under `budget` (of `envs` only, if given), validated; ConfigError on the first
    problem."""
    sweep = parse_sweep(data, budget)
    chosen = sweep.only(envs)
    points = search_points(data.get("search"), list(sweep.algos), sweep.fixed, sweep.budget)
    return [
        sweep.spec(
            env,
            algo,
            point.get(algo),
            owner=f"trial[{env} x {algo}" + (f" x point {p}" if len(points) > 1 else "") + "]",
        )
        for env in chosen
        for algo in sweep.algos_on(env)
        for p, point in enumerate(points)
    ]
