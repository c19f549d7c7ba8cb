"""The protocol's search samplers: which hyperparameter points stage 1 runs, the same ones on every rerun.

A sampler is a pure function of the space, the finished search so far of one
(env, algorithm) (its points and scores, in search order) and a key (the
sampler seed, the env and the algorithm). The protocol asks it for the next
round of points until it returns none:

    random  (the paper's) one round: `n` distinct points drawn from random.Random(key).
    tpe     rounds of `batch` points. Round r builds a fresh Optuna study with
            TPESampler(seed=hash(key, r), n_startup_trials=batch, constant_liar=True), adds the
            earlier rounds' points with their scores in search order (a trial without a score as
            FAIL), and asks it `batch` times. Nothing of the study is kept between rounds: it is
            rebuilt from the stored results in a fixed order with a fixed seed, so a rerun after
            a kill asks the same questions and gets the same points, hence the same trial ids.
            Round 0 has no history: TPE's startup, i.e. random.

Both return distinct points: a repeat of an earlier point (TPE's may repeat on
a small discrete space) is asked again, told as FAIL, up to MAX_REPEATS times,
then replaced by a seeded random draw.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import warnings
from typing import Any, Sequence

from esbench.runner.search_space import sample_value
from esbench.validation import ConfigError

MAX_REPEATS = 20
_DRAWS_PER_POINT = 100  # random draws allowed per point before giving up on finding a new one
TPE_INSTALL = "pip install 'esbench[tpe]'"

Point = dict[str, Any]


def point_key(point: Point) -> str:
    return json.dumps(point, sort_keys=True)


def stream_seed(*parts: Any) -> int:
    """A 32-bit seed from `parts`, the same in every process (no Python hash randomisation)."""
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:4], "little")


def space_size(space: dict[str, dict]) -> float:
    """The number of distinct points of a space (inf when a field is continuous)."""
    size = 1.0
    for dist in space.values():
        ((kind, args),) = dist.items()
        size *= {
            "choice": lambda: len({json.dumps(a) for a in args}),
            "int_uniform": lambda: int(args[1]) - int(args[0]) + 1,
        }.get(kind, lambda: math.inf)()
    return size


def candidate_values(dist: dict) -> list:
    """The values that bound what a distribution draws: every choice, or a range's low and high."""
    ((_, args),) = dist.items()
    return list(args)


def _draw_new(space: dict[str, dict], rng: random.Random, taken: set[str]) -> Point:
    for _ in range(_DRAWS_PER_POINT):
        point = {name: sample_value(dist, rng, name) for name, dist in space.items()}
        if point_key(point) not in taken:
            return point
    raise ConfigError(f"the search space has too few distinct points ({space_size(space):g}) for the search")


def random_points(space: dict[str, dict], n: int, key: str) -> list[Point]:
    """`n` distinct points drawn from random.Random(key)."""
    rng = random.Random(key)
    seen: set[str] = set()
    points = []
    for _ in range(n):
        point = _draw_new(space, rng, seen)
        seen.add(point_key(point))
        points.append(point)
    return points


def optuna_module():
    """Optuna, imported on first use; ConfigError with the install command when it is missing."""
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"sampler 'tpe' needs Optuna, which is not installed: {TPE_INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _distributions(space: dict[str, dict], path: str = "space") -> dict:
    dists = optuna_module().distributions
    out = {}
    for name, dist in space.items():
        ((kind, args),) = dist.items()
        if kind == "choice":
            if not all(a is None or isinstance(a, (bool, int, float, str)) for a in args):
                raise ConfigError(
                    f"{path}.{name}: TPE takes choices that are numbers, strings, booleans or null, got {args!r}"
                )
            out[name] = dists.CategoricalDistribution(args)
        elif kind == "int_uniform":
            out[name] = dists.IntDistribution(int(args[0]), int(args[1]))
        else:
            out[name] = dists.FloatDistribution(float(args[0]), float(args[1]), log=kind == "log_uniform")
    return out


def check_space(space: dict[str, dict], sampler: str, path: str) -> None:
    """ConfigError when `sampler` cannot sample `space` (Optuna missing, choices it cannot take)."""
    if sampler == "tpe":
        _distributions(space, path)


def tpe_points(
    space: dict[str, dict],
    history: Sequence[tuple[Point, float | None]],
    n: int,
    key: str,
    round_index: int,
    batch: int,
) -> list[Point]:
    """Round `round_index`'s `n` points: TPE given `history` (points and scores, in search order)."""
    optuna = optuna_module()
    distributions = _distributions(space)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # constant_liar
        sampler = optuna.samplers.TPESampler(
            seed=stream_seed(key, round_index), n_startup_trials=batch, constant_liar=True
        )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    state = optuna.trial.TrialState
    for point, score in history:
        study.add_trial(
            optuna.trial.create_trial(
                params=point,
                distributions=distributions,
                value=score,
                state=state.COMPLETE if score is not None else state.FAIL,
            )
        )
    taken = {point_key(p) for p, _ in history}
    rng = random.Random(f"{key}|round {round_index}|fallback")
    points = []
    for _ in range(n):
        for _ in range(MAX_REPEATS):
            trial = study.ask(distributions)
            point = {name: trial.params[name] for name in space}
            if point_key(point) not in taken:
                break
            study.tell(trial, state=state.FAIL)
        else:
            point = _draw_new(space, rng, taken)
        taken.add(point_key(point))
        points.append(point)
    return points


def next_points(
    sampler: str,
    space: dict[str, dict],
    history: Sequence[tuple[Point, float | None]],
    n_total: int,
    key: str,
    batch: int,
) -> list[Point]:
    """The next round of points of a search of `n_total` ([] once `history` holds them all)."""
    n = n_total - len(history)
    if n <= 0:
        return []
    if sampler == "random":  # one round: all of it, regenerated whole
        return random_points(space, n_total, key)[len(history) :]
    round_index = len(history) // batch
    return tpe_points(space, history, min(n, batch), key, round_index, batch)
