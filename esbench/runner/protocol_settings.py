"""The `protocol:` section of a sweep file (the file's, then the budget's, then the command line's), validated.

    settings = protocol_settings(parse_sweep(data, "cpu"), skip_search=None, sampler=None)

Seeds are given as counts or lists; counts never overlap (tuning from TUNING_SEED_BASE,
re-selection from RESELECT_SEED_BASE, final from 0), and overlapping lists are refused, so no
final seed is seen by any selection. `final_seeds_per_env` replaces `final_seeds` for the envs it names
(the final and matched stages of an env that needs more seeds than the others). `space` is parsed by
search_space.py; `margin` and `competence` need `references` for every env of the budget
(report/verdicts.py reads them).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from esbench import paper
from esbench.runner.search_space import algorithm_space
from esbench.runner.sweep import Sweep, seed_list
from esbench.runner.sweep_file import check_keys
from esbench.validation import ConfigError, build, field_names, rule, suggest

TUNING_SEED_BASE = (
    1_000_000  # tuning seeds given as a count start here, final seeds at 0: disjoint by construction
)
RESELECT_SEED_BASE = 2_000_000  # re-selection seeds given as a count start here: fresh for search and final
# A pilot (`esbench reproduce --pilot`) runs every stage's seed count from these bases instead: seeds no
# final run uses, whose variances `esbench power` plans the final seeds from.
PILOT_SEED_BASES = {"tuning_seeds": 9_000_000, "reselect_seeds": 9_100_000, "final_seeds": 9_200_000}
MATCHED_ALGOS = ("eggroll", "openes")  # the matched stage: each runs on the other's winning point
REFERENCE_KEYS = ("random", "reference")


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
    final_seeds_per_env: dict = field(
        default_factory=dict
    )  # env -> its final seeds (a tuple), instead of final_seeds; only the budget's envs
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
    # The verdicts (report/verdicts.py), declared before the run: an equivalence margin and a competence
    # threshold, each a fraction of an env's reference gain (`references`: reference - random return).
    margin: float | None = field(
        default=None, metadata=rule(lambda v: v is None or 0 < v < 1, "a number in (0, 1), or null")
    )
    competence: float | None = field(
        default=None, metadata=rule(lambda v: v is None or 0 < v <= 1, "a number in (0, 1], or null")
    )
    references: dict = field(
        default_factory=dict
    )  # env -> {"random": R, "reference": R} of the budget's envs
    pilot: bool = False  # the command line's --pilot: every stage on PILOT_SEED_BASES seeds

    def final_seeds_for(self, env: str) -> tuple[int, ...]:
        """The final (and matched) stage's seeds of `env`: its `final_seeds_per_env`, else `final_seeds`."""
        return self.final_seeds_per_env.get(env, self.final_seeds)


PROTOCOL_KEYS = tuple(field_names(ProtocolSettings))


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
    finals = {"final_seeds"}  # one stage: an env's final seeds may share seeds with another env's
    for env, env_seeds in settings.final_seeds_per_env.items():
        seeds[f"final_seeds_per_env.{env}"] = env_seeds
        finals.add(f"final_seeds_per_env.{env}")
    names = list(seeds)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            overlap = sorted(set(seeds[a]) & set(seeds[b]))
            if overlap and not {a, b} <= finals:
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
        for env in sweep.envs:
            on = [a for a in MATCHED_ALGOS if a in sweep.algos_on(env)]
            if len(on) == 1:
                raise ConfigError(
                    f"{path}.matched: {env} runs {on[0]} alone (algorithms_per_env); the matched stage "
                    f"needs both {' and '.join(MATCHED_ALGOS)} on an env, or neither"
                )


def protocol_settings(sweep: Sweep, **overrides: Any) -> ProtocolSettings:
    """The protocol settings of `sweep`'s file and budget; `overrides` (None: not given) from the command line."""
    top = check_keys(sweep.data.get("protocol"), PROTOCOL_KEYS, "protocol")
    own = check_keys(sweep.budget_section.get("protocol"), PROTOCOL_KEYS, f"{sweep.path}.protocol")
    path = sweep.protocol_path
    values = {**top, **own, **{k: v for k, v in overrides.items() if v is not None}}
    spaces = {
        **check_keys(top.get("space"), None, "protocol.space"),
        **check_keys(own.get("space"), None, f"{sweep.path}.protocol.space"),
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
    values["final_seeds_per_env"] = per_env_final_seeds(sweep, top, own)
    values["space"] = {}
    values["references"] = reference_scores(sweep)
    settings = build(ProtocolSettings, values, path)
    if settings.pilot:
        settings = pilot_seeds(settings)
    _check_stages(settings, sweep, path)
    _check_verdicts(settings, sweep, path)
    if settings.skip_search:
        return settings
    space = {
        algo: algorithm_space(algo, spaces.get(algo), f"{path}.space.{algo}", sweep.fixed(algo), sweep.budget)
        for algo in sweep.algos
    }
    return dataclasses.replace(settings, space=space)


def pilot_seeds(settings: ProtocolSettings) -> ProtocolSettings:
    """`settings` with each stage's seeds replaced by as many from its PILOT_SEED_BASES base."""
    moved = {
        name: tuple(range(base, base + len(getattr(settings, name))))
        for name, base in PILOT_SEED_BASES.items()
    }
    base = PILOT_SEED_BASES["final_seeds"]
    per_env = {env: tuple(range(base, base + len(s))) for env, s in settings.final_seeds_per_env.items()}
    return dataclasses.replace(settings, **moved, final_seeds_per_env=per_env)


def per_env_final_seeds(sweep: Sweep, top: dict, own: dict) -> dict[str, tuple[int, ...]]:
    """`final_seeds_per_env` of the file's protocol, then the budget's, for the budget's envs: env -> seeds.

    ConfigError on an env the sweep lacks or a value seed_list refuses."""
    out = {}
    for given, path in (
        (top.get("final_seeds_per_env"), "protocol.final_seeds_per_env"),
        (own.get("final_seeds_per_env"), f"{sweep.path}.protocol.final_seeds_per_env"),
    ):
        for env, value in check_keys(given, None, path).items():
            if env not in sweep.all_envs:
                raise ConfigError(
                    f"{path}.{env}: not one of the sweep's envs.{suggest(str(env), sweep.all_envs)} "
                    f"Allowed: {', '.join(sweep.all_envs)}"
                )
            seeds = seed_list(value, f"{path}.{env}", first=0)  # a count from 0, as final_seeds
            if env in sweep.envs:  # the budget's other envs do not run
                out[env] = seeds
    return out


def reference_scores(sweep: Sweep) -> dict[str, dict[str, float]]:
    """The file's `references` of the budget's envs: env -> {random, reference[, cap]}; ConfigError on a bad
    entry. `cap`, optional: the most an episode can return (CartPole's 500), where returns pile up."""
    given = check_keys(sweep.data.get("references"), None, "references")
    out = {}
    for env, scores in given.items():
        path = f"references.{env}"
        if env not in sweep.all_envs:
            raise ConfigError(f"{path}: not one of the sweep's envs.{suggest(str(env), sweep.all_envs)}")
        scores = check_keys(scores, (*REFERENCE_KEYS, "cap"), path)
        for key in (*REFERENCE_KEYS, "cap"):
            value = scores.get(key)
            if key == "cap" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{path}.{key} = {value!r} is invalid; allowed: a finite number (a return)")
        if not scores["reference"] > scores["random"]:
            raise ConfigError(
                f"{path}: reference = {scores['reference']!r} must be above random = {scores['random']!r} "
                "(the gain the margin and the competence threshold are fractions of)"
            )
        if scores.get("cap") is not None and scores["cap"] < scores["reference"]:
            raise ConfigError(
                f"{path}: cap = {scores['cap']!r} is below reference = {scores['reference']!r}; the cap is the "
                "most an episode can return"
            )
        if env in sweep.envs:
            out[env] = {
                key: float(scores[key]) for key in (*REFERENCE_KEYS, "cap") if scores.get(key) is not None
            }
    return out


def _check_verdicts(settings: ProtocolSettings, sweep: Sweep, path: str) -> None:
    """A margin or a competence threshold needs every env's reference scores."""
    for name in ("margin", "competence"):
        if getattr(settings, name) is None:
            continue
        missing = [env for env in sweep.envs if env not in settings.references]
        if missing:
            raise ConfigError(
                f"{path}.{name}: {', '.join(missing)} has no reference scores, and the {name} is a fraction of "
                "each env's reference gain; add `references: {ENV: {random: R, reference: R}}` to the sweep file"
            )
