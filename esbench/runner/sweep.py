"""Sweep files: envs x algorithms x hyperparameter search, with named budgets, expanded into trials.

    name: smoke
    envs: [CartPole-v1, Pendulum-v1]      # or "paper16" for esbench.envs.PAPER_ENVS
    algorithms:                           # algorithm -> base hyperparameters
      eggroll: {pop_size: 64}
      ppo: {}
    paper_rows: true                      # each (env, algorithm) starts from the paper's row
                                          # (esbench/paper/rl_tables.yaml, Tables 17-34)
    env_overrides:                        # env -> algorithm -> hyperparameters
      Pendulum-v1: {eggroll: {sigma: 0.05}}
    search:                               # optional, over "<algo>.<hyperparameter>"
      grid: {eggroll.learning_rate: [0.01, 0.1]}
      random: {num_samples: 4, seed: 0, space: {eggroll.sigma: {log_uniform: [0.01, 0.5]}}}
    trial: {seeds: 3, env_steps: 100000, num_logs: 20, eval_every: 1, eval_episodes: 16,
            max_episode_steps: null, num_gpus: 0}
    budgets:                              # named; each may override `trial` fields (env_steps may
      smoke:                              # be a map env -> steps with a `default`), and
        env_steps: {default: 20000, brax/ant: 2000}
        algorithms: {eggroll: {pop_size: 16}}      # hyperparameters applied last
        env_overrides: {brax/ant: {ppo: {num_envs: 8}}}
    default_budget: smoke

Hyperparameters are applied in this order: the algorithm's defaults, `algorithms`, the paper's
row (with `paper_rows: true`), `env_overrides`, the search point, the budget's `algorithms`, the
budget's `env_overrides`.
"""

from __future__ import annotations

import itertools
import math
import os
import random
from typing import Any

import yaml

from esbench.envs import PAPER_ENVS
from esbench import paper, plugins
from esbench.envs import resolve
from esbench.runner.config import TrialSpec, check_hparam_names
from esbench.validation import ConfigError, build, suggest

TOP_KEYS = ("name", "description", "imports", "envs", "algorithms", "paper_rows", "env_overrides", "search", "trial",
            "budgets", "default_budget")
TRIAL_KEYS = ("seeds", "env_steps", "num_logs", "eval_every", "eval_episodes", "max_episode_steps", "num_gpus")
BUDGET_KEYS = (*TRIAL_KEYS, "algorithms", "env_overrides", "description")
SEARCH_KEYS = ("grid", "random")
DISTRIBUTIONS = ("uniform", "log_uniform", "choice", "int_uniform")


def _check_keys(mapping: Any, allowed, path: str) -> dict:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(mapping).__name__} {mapping!r}")
    if allowed is None:  # free keys (env ids, budget names), checked elsewhere
        return mapping
    for key in mapping:
        if key not in allowed:
            raise ConfigError(f"{path}.{key}: unknown key.{suggest(str(key), allowed)} Allowed: {', '.join(allowed)}")
    return mapping


def load_sweep_file(path: str | os.PathLike) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"sweep file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"sweep file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"sweep file {path}: expected a mapping at the top level, got {type(data).__name__}")
    load_imports(data, folder=os.path.dirname(os.path.abspath(path)))
    return data


def load_imports(data: dict, folder: str = ".") -> None:
    """Import the sweep's `imports:` (plugin modules registering envs or algorithms), found also beside the file."""
    imports = data.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        raise ConfigError(f"imports = {imports!r} is invalid; allowed: a list of module names")
    plugins.load(imports, paths=(".", folder))


def seed_list(seeds: Any, path: str) -> tuple[int, ...]:
    """`seeds: 3` (seeds 0, 1, 2) or an explicit list of seeds."""
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds >= 1:
        return tuple(range(seeds))
    if isinstance(seeds, list) and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        return tuple(seeds)
    raise ConfigError(f"{path} = {seeds!r} is invalid; allowed: a count >= 1 or a list of integer seeds")


def _env_list(envs: Any) -> list[str]:
    if envs == "paper16":
        return list(PAPER_ENVS)
    if isinstance(envs, str):
        return [envs]
    if not isinstance(envs, list) or not envs or not all(isinstance(e, str) for e in envs):
        raise ConfigError("envs: expected a non-empty list of environment ids, or 'paper16'")
    return envs


def _split_search_key(key: str, algos, path: str) -> tuple[str, str]:
    algo, dot, name = str(key).partition(".")
    if not dot or algo not in algos:
        raise ConfigError(f"{path}.{key}: search keys are '<algorithm>.<hyperparameter>' with algorithm one of: {', '.join(algos)}")
    return algo, name


def _sample(dist: Any, rng: random.Random, path: str) -> Any:
    if not isinstance(dist, dict) or len(dist) != 1:
        raise ConfigError(f"{path}: expected one of {{{': [..], '.join(DISTRIBUTIONS)}: [..]}}, got {dist!r}")
    (kind, args), = dist.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{path}: unknown distribution {kind!r}.{suggest(str(kind), DISTRIBUTIONS)} Allowed: {', '.join(DISTRIBUTIONS)}")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{path}.choice: expected a non-empty list")
        return rng.choice(args)
    if not (isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) for a in args) and args[0] < args[1]):
        raise ConfigError(f"{path}.{kind}: expected [low, high] with low < high, got {args!r}")
    low, high = args
    if kind == "uniform":
        return rng.uniform(low, high)
    if kind == "int_uniform":
        return rng.randint(int(low), int(high))
    if low <= 0:
        raise ConfigError(f"{path}.log_uniform: bounds must be positive, got {args!r}")
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def search_points(search: Any, algos, path: str = "search") -> list[dict[str, dict[str, Any]]]:
    """Hyperparameter points: list of {algo: {name: value}} (one empty point without a search)."""
    search = _check_keys(search, SEARCH_KEYS, path)
    points: list[dict[str, dict[str, Any]]] = [{}]
    grid = _check_keys(search.get("grid"), None, f"{path}.grid")
    if grid:
        keys, values = [], []
        for key, options in grid.items():
            _split_search_key(key, algos, f"{path}.grid")
            if not isinstance(options, list) or not options:
                raise ConfigError(f"{path}.grid.{key}: expected a non-empty list of values, got {options!r}")
            keys.append(key)
            values.append(options)
        points = []
        for combo in itertools.product(*values):
            point: dict[str, dict[str, Any]] = {}
            for key, value in zip(keys, combo):
                algo, name = _split_search_key(key, algos, f"{path}.grid")
                point.setdefault(algo, {})[name] = value
            points.append(point)
    rand = search.get("random")
    if rand is not None:
        rand = _check_keys(rand, ("num_samples", "seed", "space"), f"{path}.random")
        n = rand.get("num_samples")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{path}.random.num_samples: must be a positive integer, got {n!r}")
        space = rand.get("space")
        if not isinstance(space, dict) or not space:
            raise ConfigError(f"{path}.random.space: expected a non-empty mapping '<algo>.<hyperparameter>': distribution")
        rng = random.Random(rand.get("seed", 0))
        sampled = []
        for base in points:
            for _ in range(n):
                point = {a: dict(v) for a, v in base.items()}
                for key, dist in space.items():
                    algo, name = _split_search_key(key, algos, f"{path}.random.space")
                    point.setdefault(algo, {})[name] = _sample(dist, rng, f"{path}.random.space.{key}")
                sampled.append(point)
        points = sampled
    return points


def paper_rows(enabled: Any, envs: list[str], algos: list[str]) -> dict[tuple[str, str], dict]:
    """{(env, algo): the paper's row} for `paper_rows: true`; ConfigError naming a pair the tables lack."""
    if not isinstance(enabled, bool):
        raise ConfigError(f"paper_rows = {enabled!r} is invalid; allowed: true, false")
    if not enabled:
        return {}
    rows = {}
    for env in envs:
        for algo in algos:
            try:
                rows[env, algo] = paper.row(algo, env)
            except paper.TableError as err:
                raise ConfigError(f"paper_rows: {err}") from None
    return rows


def _per_env(value: Any, env: str, path: str) -> Any:
    """A budget field given either plainly or as {env: value, default: value}."""
    if not isinstance(value, dict):
        return value
    if env in value:
        return value[env]
    if "default" in value:
        return value["default"]
    raise ConfigError(f"{path}: no value for {env!r} and no 'default'")


def expand_sweep(data: dict, budget: str | None = None) -> list[TrialSpec]:
    """Every trial of the sweep under `budget`, validated; ConfigError on the first problem."""
    _check_keys(data, TOP_KEYS, "sweep")
    load_imports(data)
    envs = _env_list(data.get("envs"))
    for i, env in enumerate(envs):
        try:
            resolve(env)
        except KeyError as err:
            raise ConfigError(f"envs[{i}]: {err}") from None
    algos = data.get("algorithms")
    if not isinstance(algos, dict) or not algos:
        raise ConfigError("algorithms: expected a non-empty mapping algorithm -> hyperparameters")
    for algo, base in algos.items():
        check_hparam_names(algo, base, f"algorithms.{algo}")
    env_overrides = _check_keys(data.get("env_overrides"), None, "env_overrides")
    budgets = _check_keys(data.get("budgets"), None, "budgets")
    budget = budget or data.get("default_budget")
    if budget is None and budgets:
        raise ConfigError(f"no budget given and no default_budget; choose one of: {', '.join(budgets)}")
    if budget is not None and budget not in budgets:
        raise ConfigError(f"budget {budget!r} is not defined.{suggest(budget, budgets)} Allowed: {', '.join(budgets) or '(none)'}")
    chosen = _check_keys(budgets.get(budget) if budget else {}, BUDGET_KEYS, f"budgets.{budget}")
    trial_defaults = {**_check_keys(data.get("trial"), TRIAL_KEYS, "trial"),
                      **{k: v for k, v in chosen.items() if k in TRIAL_KEYS}}
    for env in env_overrides:
        if env not in envs:
            raise ConfigError(f"env_overrides.{env}: not one of the sweep's envs.{suggest(env, envs)}")
    points = search_points(data.get("search"), list(algos))
    rows = paper_rows(data.get("paper_rows", False), envs, list(algos))

    trials = []
    for env in envs:
        for algo, base in algos.items():
            for p, point in enumerate(points):
                hparams = {
                    **check_hparam_names(algo, base, f"algorithms.{algo}"),
                    **rows.get((env, algo), {}),
                    **check_hparam_names(algo, (env_overrides.get(env) or {}).get(algo), f"env_overrides.{env}.{algo}"),
                    **check_hparam_names(algo, point.get(algo), f"search.{algo}"),
                    **check_hparam_names(algo, (chosen.get("algorithms") or {}).get(algo), f"budgets.{budget}.algorithms.{algo}"),
                    **check_hparam_names(algo, ((chosen.get("env_overrides") or {}).get(env) or {}).get(algo),
                                         f"budgets.{budget}.env_overrides.{env}.{algo}"),
                }
                fields = {k: _per_env(v, env, f"trial.{k}") for k, v in trial_defaults.items()}
                fields["seeds"] = seed_list(fields.get("seeds", 1), "trial.seeds")
                owner = f"trial[{env} x {algo}" + (f" x point {p}" if len(points) > 1 else "") + "]"
                trials.append(build(TrialSpec, {"env": env, "algo": algo, "hparams": hparams, **fields}, owner))
    return trials
