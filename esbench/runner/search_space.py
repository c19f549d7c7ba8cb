"""Search spaces in one syntax: `protocol.space` (reproduce) and `search:` (sweep) alike.

A space is, per algorithm, a map hyperparameter -> values, each written as

    paper                                   that field's choices in the paper's Table 15 / 16 (or the
                                            algorithm's own SEARCH_SPACE)
    [v1, v2, ...]                           choices
    {uniform|log_uniform|int_uniform: [low, high]}, {choice: [..]}

and `paper` for a whole algorithm is every field of its table. `algorithm_space` turns it into
{hyperparameter: distribution}. `esbench sweep`'s `search:` crosses a `grid` (lists or `paper`)
with `random.num_samples` draws of a `random.space`, both in this syntax:

    search:
      grid: {eggroll: {learning_rate: [0.01, 0.1]}}
      random: {num_samples: 4, seed: 0, space: {eggroll: {sigma: {log_uniform: [0.01, 0.5]}}}}

A hyperparameter the budget sets is fixed (it applies after the search point): it is left out of
a `paper` space, and naming it explicitly is an error.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any, Collection

from esbench import paper
from esbench.algorithms import get_algorithm
from esbench.runner.config import check_hparam_names
from esbench.runner.sweep_file import check_keys
from esbench.validation import ConfigError, suggest

DISTRIBUTIONS = ("uniform", "log_uniform", "choice", "int_uniform")
PAPER_SPACE = "paper"  # the paper's Table 15 / 16, or an algorithm's own SEARCH_SPACE (all, or one field's)
SEARCH_KEYS = ("grid", "random")


def check_distribution(dist: Any, path: str) -> tuple[str, Any]:
    """(kind, args) of {uniform|log_uniform|int_uniform: [low, high]} or {choice: [..]}; ConfigError."""
    if not isinstance(dist, dict) or len(dist) != 1:
        raise ConfigError(f"{path}: expected one of {{{': [..], '.join(DISTRIBUTIONS)}: [..]}}, got {dist!r}")
    ((kind, args),) = dist.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(
            f"{path}: unknown distribution {kind!r}.{suggest(str(kind), DISTRIBUTIONS)} "
            f"Allowed: {', '.join(DISTRIBUTIONS)}"
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


def paper_table(algo: str, path: str) -> dict[str, list]:
    """`algo`'s choices per field: its module's SEARCH_SPACE, else the paper's Table 15 / 16."""
    own = getattr(get_algorithm(algo), "SEARCH_SPACE", None)  # a plugin's own, beside Tables 15/16
    if own is not None:
        return {name: list(choices) for name, choices in own.items()}
    try:
        return paper.search_space(algo)
    except paper.TableError as err:
        raise ConfigError(
            f"{path}: {err}; give this algorithm's space explicitly (or a SEARCH_SPACE in its module)"
        ) from None


def _distribution(algo: str, name: str, given: Any, path: str) -> dict:
    """One field's values as a distribution: `paper`, a list of choices, or a distribution."""
    if given == PAPER_SPACE:
        choices = paper_table(algo, path)
        if name not in choices:
            raise ConfigError(
                f"{path}: the paper's space has no {name!r}.{suggest(name, choices)} Its fields: {', '.join(choices)}"
            )
        given = {"choice": choices[name]}
    elif isinstance(given, list):
        given = {"choice": given}
    check_distribution(given, path)
    return given


def algorithm_space(algo: str, given: Any, path: str, fixed: Collection[str] = (), budget: str | None = None):
    """One algorithm's space as {hyperparameter: distribution}, validated (module doc).

    fixed: the fields the budget sets (never searched); budget: its name, for the error."""
    if given is None or given == PAPER_SPACE:
        space = {name: {"choice": c} for name, c in paper_table(algo, path).items() if name not in fixed}
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
    for name, values in given.items():
        if name in fixed:
            raise ConfigError(
                f"{path}.{name}: the budget {budget!r} sets {name} (its `algorithms` or "
                f"`env_overrides`), so it cannot be searched; drop one of the two"
            )
        space[name] = _distribution(algo, name, values, f"{path}.{name}")
    return space


def _per_algorithm(section: Any, algos: Collection[str], path: str) -> dict:
    """{algorithm: {hyperparameter: values}}; a dotted key of the old syntax gets the new form in the error."""
    section = check_keys(section, None, path)
    for key in section:
        algo, dot, name = str(key).partition(".")
        if dot and algo in algos:
            raise ConfigError(
                f"{path}.{key}: write it per algorithm, as protocol.space is: {{{algo}: {{{name}: ...}}}}"
            )
        if key not in algos:
            raise ConfigError(
                f"{path}.{key}: not one of the sweep's algorithms.{suggest(str(key), algos)} "
                f"Allowed: {', '.join(algos)}"
            )
    return section


def search_points(search: Any, algos: Collection[str], fixed=lambda algo: (), budget: str | None = None):
    """`search:`'s points: a list of {algo: {name: value}} (one empty point without a search).

    The grid's points in order (its fields' values crossed), each followed by `num_samples` random draws
    of the random space (a seeded random.Random: the same points on every run). fixed(algo): the fields
    the budget sets."""
    search = check_keys(search, SEARCH_KEYS, "search")
    points: list[dict[str, dict[str, Any]]] = [{}]
    grid = _per_algorithm(search.get("grid"), algos, "search.grid")
    if grid:
        keys, values = [], []
        for algo, given in grid.items():
            space = algorithm_space(algo, given, f"search.grid.{algo}", fixed(algo), budget)
            for name, dist in space.items():
                ((kind, args),) = dist.items()
                if kind != "choice":
                    raise ConfigError(f"search.grid.{algo}.{name}: a grid takes a list of values or 'paper'")
                keys.append((algo, name))
                values.append(args)
        points = []
        for combo in itertools.product(*values):
            point: dict[str, dict[str, Any]] = {}
            for (algo, name), value in zip(keys, combo):
                point.setdefault(algo, {})[name] = value
            points.append(point)
    rand = search.get("random")
    if rand is not None:
        rand = check_keys(rand, ("num_samples", "seed", "space"), "search.random")
        n = rand.get("num_samples")
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"search.random.num_samples: must be a positive integer, got {n!r}")
        given = _per_algorithm(rand.get("space"), algos, "search.random.space")
        if not given:
            raise ConfigError(
                "search.random.space: expected a non-empty mapping algorithm -> {hyperparameter: values}"
            )
        space = {
            algo: algorithm_space(algo, values, f"search.random.space.{algo}", fixed(algo), budget)
            for algo, values in given.items()
        }
        rng = random.Random(rand.get("seed", 0))
        sampled = []
        for base in points:
            for _ in range(n):
                point = {a: dict(v) for a, v in base.items()}
                for algo, dists in space.items():
                    for name, dist in dists.items():
                        point.setdefault(algo, {})[name] = sample_value(
                            dist, rng, f"search.random.space.{algo}"
                        )
                sampled.append(point)
        points = sampled
    return points
