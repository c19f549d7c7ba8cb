"""Algorithms behind one interface, so the runner treats them all alike.

An algorithm is a module (or any object) with:

    Config                                  frozen dataclass of hyperparameters, with defaults;
                                            fields include `hidden`, `activation`,
                                            `deterministic_policy`; `Config.validate()`
                                            raises ValueError naming the field and allowed values
    init(key, env, cfg)        -> state     a pytree (carries its own PRNG key)
    update(state, env, cfg)    -> (state, metrics)
                                            one ES generation / one PPO iteration; pure, no host
                                            sync; metrics is a dict of f32 scalars with at least
                                            "train_return", plus "valid_env_steps" (int32)
    policy(state)              -> params    the network params evaluation runs
                                            (`esbench.algorithms.networks` layout)
    env_steps_per_update(env, cfg) -> int   transitions simulated by one `update`

The runner scans `update` K times inside one `jit` and `vmap`s it over seeds.
"""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType
from typing import Any

ALGORITHMS: dict[str, str] = {
    "eggroll": "esbench.algorithms.eggroll",
    "openes": "esbench.algorithms.openes",
    "ppo": "esbench.algorithms.ppo",
}
EVOSAX_PREFIX = "evosax:"


class UnknownAlgorithmError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_algorithm(name: str) -> ModuleType | Any:
    """The algorithm called `name`: one of ALGORITHMS, or `evosax:<Strategy>` (e.g. `evosax:CMA_ES`)."""
    if not isinstance(name, str):
        raise TypeError(f"algorithm name must be a string, got {type(name).__name__}")
    if name in ALGORITHMS:
        return importlib.import_module(ALGORITHMS[name])
    if name.startswith(EVOSAX_PREFIX):
        from esbench.algorithms.evosax_adapter import make_evosax_algorithm

        return make_evosax_algorithm(name[len(EVOSAX_PREFIX):])
    close = difflib.get_close_matches(name, list(ALGORITHMS), n=3, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownAlgorithmError(
        f"unknown algorithm {name!r}.{hint} Allowed: {', '.join(ALGORITHMS)}, or '{EVOSAX_PREFIX}<Strategy>' "
        f"for any evosax strategy (e.g. '{EVOSAX_PREFIX}CMA_ES')."
    )
