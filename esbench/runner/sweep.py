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
    search:                               # optional, over "<algo>.<hyperparameter>" (`esbench sweep` only)
      grid: {eggroll.learning_rate: [0.01, 0.1]}
      random: {num_samples: 4, seed: 0, space: {eggroll.sigma: {log_uniform: [0.01, 0.5]}}}
    trial: {seeds: 3, env_steps: 100000, num_logs: 20, eval_every: 1, eval_episodes: 16,
            max_episode_steps: null, num_gpus: 0}
    protocol:                             # `esbench reproduce` (runner/protocol.py); every key optional
      search_trials: 20                   # per (env, algorithm); default: the tables' (20)
      tuning_seeds: 1                     # search seeds: a count (seeds 1000000, 1000001, ...) or a list
      final_seeds: 10                     # final-stage seeds: a count (seeds 0, 1, ...) or a list;
                                          # default: the tables' (10); never overlapping tuning_seeds
      sampler: random                     # random (the paper's) or tpe (Optuna: pip install 'esbench[tpe]')
      sampler_seed: 0                     # seeds the sampler (per env and algorithm, per TPE round)
      tpe_batch: 5                        # TPE suggests this many points per round (the first round: random)
      skip_search: false                  # true: no search; the final stage runs the paper's rows
      reselect_top: 0                     # > 0: the m best search points re-run on reselect_seeds; the
      reselect_seeds: 3                   #   best there wins (a count: seeds 2000000, ...; or a list)
      matched: false                      # true: EGGROLL on OpenES's final configuration and OpenES on
                                          #   EGGROLL's, on the final seeds (needs both algorithms)
      space:                              # algorithm -> what the search samples; default: `paper`
        eggroll: paper                    #   the paper's Table 15 (ES) / Table 16 (PPO), every field
        ppo: {learning_rate: paper,       #   or {hyperparameter: paper (that field's choices in the
              gamma: [0.99, 0.999],       #   table) | [choices] | {uniform|log_uniform|int_uniform|
              clip_eps: {uniform: [0.1, 0.3]}}    # choice: [..]}}
    budgets:                              # named; each may override `trial` fields (env_steps may
      smoke:                              # be a map env -> steps with a `default`), and
        env_steps: {default: 20000, brax/ant: 2000}
        envs: [CartPole-v1]               # a subset of the sweep's envs
        algorithms: {eggroll: {pop_size: 16}}      # hyperparameters applied last
        env_overrides: {brax/ant: {ppo: {num_envs: 8}}}
        protocol: {search_trials: 4}      # overrides the top-level `protocol` key by key (space: by algorithm)
    default_budget: smoke
    checkpoint_every: 10                  # chunks between mid-trial checkpoints (also per budget; the
                                          # command line's --checkpoint-every wins; default: ~1 a minute)

Hyperparameters are applied in this order: the algorithm's defaults, `algorithms`, the paper's
row (with `paper_rows: true`), `env_overrides`, the search point, the budget's `algorithms`, the
budget's `env_overrides`. The protocol's search point takes the search point's place (with
`skip_search`, the paper's row does); a hyperparameter the budget sets is fixed: it is left out
of a `paper` space, and naming it in an explicit space is an error. `esbench sweep` ignores
`protocol`; it runs each (env, algorithm) once, with the budget's `seeds`.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import random
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from esbench import paper, plugins
from esbench.algorithms import get_algorithm
from esbench.envs import PAPER_ENVS, resolve
from esbench.faults import MachineFault, fault_line
from esbench.runner.config import TrialSpec, check_hparam_names
from esbench.validation import ConfigError, build, field_names, rule, suggest

TOP_KEYS = (
    "name",
    "description",
    "imports",
    "plugins",
    "envs",
    "algorithms",
    "paper_rows",
    "env_overrides",
    "search",
    "trial",
    "protocol",
    "budgets",
    "default_budget",
    "checkpoint_every",
)
TRIAL_KEYS = (
    "seeds",
    "env_steps",
    "num_logs",
    "eval_every",
    "eval_episodes",
    "max_episode_steps",
    "num_gpus",
)
BUDGET_KEYS = (
    *TRIAL_KEYS,
    "envs",
    "algorithms",
    "env_overrides",
    "protocol",
    "description",
    "checkpoint_every",
)
SEARCH_KEYS = ("grid", "random")
DISTRIBUTIONS = ("uniform", "log_uniform", "choice", "int_uniform")
PAPER_SPACE = "paper"  # in `protocol.space`: the paper's Table 15 / 16, or an algorithm's own SEARCH_SPACE (all, or one field's)
TUNING_SEED_BASE = (
    1_000_000  # tuning seeds given as a count start here, final seeds at 0: disjoint by construction
)
MATCHED_ALGOS = ("eggroll", "openes")  # the matched stage: each runs on the other's winning point
RESELECT_SEED_BASE = (
    2_000_000  # re-selection seeds given as a count start here: fresh for the search and the final stage
)


def _check_keys(mapping: Any, allowed, path: str) -> dict:
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(mapping).__name__} {mapping!r}")
    if allowed is None:  # free keys (env ids, budget names), checked elsewhere
        return mapping
    for key in mapping:
        if key not in allowed:
            raise ConfigError(
                f"{path}.{key}: unknown key.{suggest(str(key), allowed)} Allowed: {', '.join(allowed)}"
            )
    return mapping


def load_sweep_file(path: str | os.PathLike) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"sweep file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"sweep file {path} is not valid YAML: {err}") from None
    except UnicodeDecodeError as err:  # the decoder's error does not name the file
        raise MachineFault(
            f"sweep file {path}: {fault_line(err, 'nothing was run or written', 'then rerun')}"
        ) from err
    if not isinstance(data, dict):
        raise ConfigError(
            f"sweep file {path}: expected a mapping at the top level, got {type(data).__name__}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if isinstance(data.get("plugins"), list):  # folders named relative to the file: resolved once, here
        data["plugins"] = [os.path.join(folder, p) if isinstance(p, str) else p for p in data["plugins"]]
    load_imports(data, folder=folder)
    return data


def load_imports(data: dict, folder: str = ".") -> None:
    """Load the sweep's `imports:` (plugin modules, found also beside the file) and `plugins:` (drop-in folders)."""
    imports = data.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        raise ConfigError(f"imports = {imports!r} is invalid; allowed: a list of module names")
    folders = data.get("plugins") or []
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        raise ConfigError(
            f"plugins = {folders!r} is invalid; allowed: a list of folders of plugin files (*.py), "
            "relative to the sweep file"
        )
    plugins.load(imports, paths=(".", folder))
    for plugin_folder in folders:
        plugins.load_folder(os.path.join(folder, plugin_folder))


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


def _split_search_key(key: str, algos, path: str) -> tuple[str, str]:
    algo, dot, name = str(key).partition(".")
    if not dot or algo not in algos:
        raise ConfigError(
            f"{path}.{key}: search keys are '<algorithm>.<hyperparameter>' with algorithm one of: {', '.join(algos)}"
        )
    return algo, name


def check_distribution(dist: Any, path: str) -> tuple[str, Any]:
    """(kind, args) of a distribution {uniform|log_uniform|int_uniform: [low, high]} or {choice: [..]}; ConfigError."""
    if not isinstance(dist, dict) or len(dist) != 1:
        raise ConfigError(f"{path}: expected one of {{{': [..], '.join(DISTRIBUTIONS)}: [..]}}, got {dist!r}")
    ((kind, args),) = dist.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"{path}: unknown distribution {kind!r}.{suggest(str(kind), DISTRIBUTIONS)} Allowed: {', '.join(DISTRIBUTIONS)}"
        )
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{path}.choice: expected a non-empty list")
        return kind, args
    if not (
        isinstance(args, list)
        and len(args) == 2
        and all(isinstance(a, (int, float)) for a in args)
        and args[0] < args[1]
    ):
        raise ConfigError(f"{path}.{kind}: expected [low, high] with low < high, got {args!r}")
    if kind == "log_uniform" and args[0] <= 0:
        raise ConfigError(f"{path}.log_uniform: bounds must be positive, got {args!r}")
    return kind, args


def sample_value(dist: Any, rng: random.Random, path: str) -> Any:
    """One draw from a distribution (see `check_distribution`)."""
    kind, args = check_distribution(dist, path)
    if kind == "choice":
        return rng.choice(args)
    low, high = args
    if kind == "uniform":
        return rng.uniform(low, high)
    if kind == "int_uniform":
        return rng.randint(int(low), int(high))
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
            raise ConfigError(
                f"{path}.random.space: expected a non-empty mapping '<algo>.<hyperparameter>': distribution"
            )
        rng = random.Random(rand.get("seed", 0))
        sampled = []
        for base in points:
            for _ in range(n):
                point = {a: dict(v) for a, v in base.items()}
                for key, dist in space.items():
                    algo, name = _split_search_key(key, algos, f"{path}.random.space")
                    point.setdefault(algo, {})[name] = sample_value(dist, rng, f"{path}.random.space.{key}")
                sampled.append(point)
        points = sampled
    return points


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
    chosen: dict  # the budget's section ({} without budgets)
    trial_defaults: dict
    rows: dict  # (env, algo) -> the paper's row, with `paper_rows: true`

    @property
    def path(self) -> str:
        """Where the budget's settings live in the file, for error messages."""
        return f"budgets.{self.budget}" if self.budget else "sweep"

    @property
    def checkpoint_every(self) -> int | None:
        """Chunks between mid-trial checkpoints: the budget's `checkpoint_every`, else the file's (None: unset)."""
        path = f"{self.path}.checkpoint_every" if "checkpoint_every" in self.chosen else "checkpoint_every"
        value = self.chosen.get("checkpoint_every", self.data.get("checkpoint_every"))
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(
                f"{path} = {value!r} is invalid; allowed: an integer >= 1 (chunks between checkpoints)"
            )
        return value

    @property
    def protocol_path(self) -> str:
        """Where the protocol settings live in the file (the budget's section, else the top level's)."""
        return f"{self.path}.protocol" if "protocol" in self.chosen else "protocol"

    def fixed(self, algo: str) -> set[str]:
        """Hyperparameters the budget sets for `algo` (applied after the search point, so never searched)."""
        names = set((self.chosen.get("algorithms") or {}).get(algo) or {})
        for per_algo in (self.chosen.get("env_overrides") or {}).values():
            names |= set((per_algo or {}).get(algo) or {})
        return names

    def hparams(
        self, env: str, algo: str, point: dict | None = None, point_path: str = "search"
    ) -> dict[str, Any]:
        """`algo`'s hyperparameters on `env` with a search point, in the order the module doc states."""
        budget_overrides = (self.chosen.get("env_overrides") or {}).get(env) or {}
        return {
            **check_hparam_names(algo, self.algos[algo], f"algorithms.{algo}"),
            **self.rows.get((env, algo), {}),
            **check_hparam_names(
                algo, (self.env_overrides.get(env) or {}).get(algo), f"env_overrides.{env}.{algo}"
            ),
            **check_hparam_names(algo, point, f"{point_path}.{algo}"),
            **check_hparam_names(
                algo, (self.chosen.get("algorithms") or {}).get(algo), f"{self.path}.algorithms.{algo}"
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


def parse_sweep(data: dict, budget: str | None = None) -> Sweep:
    """The sweep under `budget` (default: its default_budget), validated; ConfigError on the first problem."""
    _check_keys(data, TOP_KEYS, "sweep")
    load_imports(data)
    envs = _env_list(data.get("envs"))
    _check_envs(envs, "envs")
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
        raise ConfigError(
            f"budget {budget!r} is not defined.{suggest(budget, budgets)} Allowed: {', '.join(budgets) or '(none)'}"
        )
    chosen = _check_keys(budgets.get(budget) if budget else {}, BUDGET_KEYS, f"budgets.{budget}")
    trial_defaults = {
        **_check_keys(data.get("trial"), TRIAL_KEYS, "trial"),
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
        envs = subset
    rows = paper_rows(data.get("paper_rows", False), envs, list(algos))
    sweep = Sweep(data, budget, tuple(envs), algos, env_overrides, chosen, trial_defaults, rows)
    sweep.checkpoint_every  # validated here, before anything runs
    return sweep


def expand_sweep(data: dict, budget: str | None = None) -> list[TrialSpec]:
    """Every trial of the sweep under `budget`, validated; ConfigError on the first problem."""
    sweep = parse_sweep(data, budget)
    points = search_points(data.get("search"), list(sweep.algos))
    return [
        sweep.spec(
            env,
            algo,
            point.get(algo),
            owner=f"trial[{env} x {algo}" + (f" x point {p}" if len(points) > 1 else "") + "]",
        )
        for env in sweep.envs
        for algo in sweep.algos
        for p, point in enumerate(points)
    ]


# ------------------------------------------------------------------ the protocol section ---

Sampler = Literal["random", "tpe"]  # runner/samplers.py
SAMPLERS = typing.get_args(Sampler)


@dataclass(frozen=True)
class ProtocolSettings:
    """The `protocol:` section (the file's, then the budget's, then the command line's), validated."""

    search_trials: int = field(
        default=paper.protocol()["search_trials"], metadata=rule(lambda v: v >= 1, "an integer >= 1")
    )
    tuning_seeds: tuple[int, ...] = (TUNING_SEED_BASE,)
    final_seeds: tuple[int, ...] = tuple(range(paper.protocol()["seeds"]))
    sampler: Sampler = "random"
    sampler_seed: int = 0
    tpe_batch: int = field(default=5, metadata=rule(lambda v: v >= 1, "an integer >= 1"))
    skip_search: bool = False
    # Re-selection (off by default, the paper's protocol): the `reselect_top` best search points per (env,
    # algorithm) re-run on `reselect_seeds`; the best of them there is the winner.
    reselect_top: int = field(
        default=0, metadata=rule(lambda v: v >= 0, "an integer >= 0 (0: no re-selection)")
    )
    reselect_seeds: tuple[int, ...] = ()
    matched: bool = False  # EGGROLL on OpenES's winning point and OpenES on EGGROLL's, on the final seeds
    space: dict = field(
        default_factory=dict
    )  # algorithm -> {hyperparameter: distribution}; {} with skip_search


PROTOCOL_KEYS = tuple(field_names(ProtocolSettings))


def _algo_space(sweep: Sweep, algo: str, given: Any, path: str) -> dict[str, dict]:
    """One algorithm's space as {hyperparameter: distribution}, validated (see the module doc)."""
    fixed = sweep.fixed(algo)

    def table() -> dict[str, list]:
        own = getattr(get_algorithm(algo), "SEARCH_SPACE", None)  # a plugin's own, beside Tables 15/16
        if own is not None:
            return {name: list(choices) for name, choices in own.items()}
        try:
            return paper.search_space(algo)
        except paper.TableError as err:
            raise ConfigError(
                f"{path}: {err}; give this algorithm's space explicitly (or a SEARCH_SPACE in its module)"
            ) from None

    if given is None or given == PAPER_SPACE:
        space = {name: {"choice": choices} for name, choices in table().items() if name not in fixed}
        if not space:
            raise ConfigError(
                f"{path}: the budget fixes every hyperparameter of the paper's space; nothing is left to search"
            )
        return space
    if not isinstance(given, dict) or not given:
        raise ConfigError(
            f"{path}: expected '{PAPER_SPACE}' or a non-empty mapping hyperparameter -> "
            f"'{PAPER_SPACE}' | [choices] | {{{'|'.join(DISTRIBUTIONS)}: [..]}}, got {given!r}"
        )
    check_hparam_names(algo, given, path)
    space = {}
    for name, dist in given.items():
        if name in fixed:
            raise ConfigError(
                f"{path}.{name}: the budget {sweep.budget!r} sets {name} (its `algorithms` or "
                f"`env_overrides`), so it cannot be searched; drop one of the two"
            )
        if dist == PAPER_SPACE:
            choices = table()
            if name not in choices:
                raise ConfigError(
                    f"{path}.{name}: the paper's space has no {name!r}.{suggest(name, choices)} "
                    f"Its fields: {', '.join(choices)}"
                )
            dist = {"choice": choices[name]}
        elif isinstance(dist, list):
            dist = {"choice": dist}
        check_distribution(dist, f"{path}.{name}")
        space[name] = dist
    return space


def _check_stages(settings: ProtocolSettings, sweep: Sweep, path: str) -> None:
    """Seeds fresh for every stage that needs them, re-selection within the search, matched with both ES."""
    seeds = {
        "tuning_seeds": settings.tuning_seeds,
        "reselect_seeds": settings.reselect_seeds,
        "final_seeds": settings.final_seeds,
    }
    if settings.skip_search:
        seeds = {"final_seeds": settings.final_seeds}
        if settings.reselect_top or settings.reselect_seeds:
            raise ConfigError(
                f"{path}.reselect_top: re-selection re-runs the best search points, and skip_search "
                "runs no search; drop reselect_top / reselect_seeds or skip_search"
            )
    names = list(seeds)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            overlap = sorted(set(seeds[a]) & set(seeds[b]))
            if overlap:
                raise ConfigError(
                    f"{path}: {a} and {b} overlap in {', '.join(map(str, overlap))}; every stage must "
                    f"run on fresh seeds (counts never overlap: tuning from {TUNING_SEED_BASE}, "
                    f"re-selection from {RESELECT_SEED_BASE}, final from 0)"
                )
    if settings.reselect_top and not settings.reselect_seeds:
        raise ConfigError(
            f"{path}.reselect_seeds: reselect_top = {settings.reselect_top} needs the seeds to re-run "
            "the best points on: a count >= 1 or a list of integer seeds"
        )
    if settings.reselect_seeds and not settings.reselect_top:
        raise ConfigError(
            f"{path}.reselect_top: reselect_seeds is set but reselect_top is 0; allowed: an integer "
            f"from 1 to search_trials ({settings.search_trials}), or drop reselect_seeds"
        )
    if settings.reselect_top > settings.search_trials:
        raise ConfigError(
            f"{path}.reselect_top = {settings.reselect_top} is invalid; allowed: an integer from 1 to "
            f"search_trials ({settings.search_trials}), or 0 for no re-selection"
        )
    if settings.matched:
        missing = [a for a in MATCHED_ALGOS if a not in sweep.algos]
        if missing:
            raise ConfigError(
                f"{path}.matched: the matched stage runs EGGROLL and OpenES on each other's winning "
                f"point, and the sweep has no {' or '.join(missing)}; its algorithms: "
                f"{', '.join(sweep.algos)}. Add them or drop matched"
            )


def protocol_settings(sweep: Sweep, **overrides: Any) -> ProtocolSettings:
    """The protocol settings of `sweep`'s file and budget; `overrides` (None: not given) from the command line."""
    top = _check_keys(sweep.data.get("protocol"), PROTOCOL_KEYS, "protocol")
    own = _check_keys(sweep.chosen.get("protocol"), PROTOCOL_KEYS, f"{sweep.path}.protocol")
    path = sweep.protocol_path
    values = {**top, **own, **{k: v for k, v in overrides.items() if v is not None}}
    spaces = {
        **_check_keys(top.get("space"), None, "protocol.space"),
        **_check_keys(own.get("space"), None, f"{sweep.path}.protocol.space"),
    }
    for algo in spaces:
        if algo not in sweep.algos:
            raise ConfigError(
                f"{path}.space.{algo}: not one of the sweep's algorithms.{suggest(algo, sweep.algos)} "
                f"Allowed: {', '.join(sweep.algos)}"
            )
    for name, first in (
        ("tuning_seeds", TUNING_SEED_BASE),
        ("final_seeds", 0),
        ("reselect_seeds", RESELECT_SEED_BASE),
    ):
        if name in values:
            values[name] = seed_list(values[name], f"{path}.{name}", first)
    values["space"] = {}
    settings = build(ProtocolSettings, values, path)
    _check_stages(settings, sweep, path)
    if settings.skip_search:
        return settings
    space = {algo: _algo_space(sweep, algo, spaces.get(algo), f"{path}.space.{algo}") for algo in sweep.algos}
    return dataclasses.replace(settings, space=space)
