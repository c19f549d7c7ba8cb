"""Algorithms behind one protocol, in one registry, so the runner, report and benchmarks treat them alike.

An algorithm is any object (a module will do) with:

    Config                                  frozen dataclass of hyperparameters with defaults, a
                                            subclass of `networks.PolicySettings` (the policy's
                                            network, layer_size, n_layers, activation,
                                            deterministic_policy); `Config.validate(owner)` raises
                                            ConfigError naming the field and the allowed values
    init(key, env, cfg)        -> state     a pytree (carries its own PRNG key)
    update(state, env, cfg)    -> (state, metrics)
                                            one ES generation / one PPO iteration; pure, no host
                                            sync; metrics is a dict of f32 scalars with at least
                                            "train_return", plus "valid_env_steps" (int32: the env
                                            steps inside episodes)
    policy(state)              -> params    the network params evaluation runs
                                            (`esbench.algorithms.networks` layout)
    env_steps_per_update(env, cfg) -> int   the most env steps one `update` can simulate
    LABEL (optional)                        the name figures and tables show (default: its name)
    VALUE_FIELDS (optional)                 Config fields that change values, not shapes: trials differing
                                            only in them run as one program (runner/programs.py)
    SPLITS_POPULATION (optional)            True: `update` splits its population over devices with
                                            es.split_over_devices (runner/programs.py's device layout)
    SEARCH_SPACE (optional)                 {Config field: [choices]}: what `protocol.space: paper` searches
                                            for an algorithm the paper's Tables 15/16 lack
    min_env_steps_per_update(env, cfg) (optional)  the fewest env steps inside episodes an update
                                            counts (runner/schedule.py; default: env_steps_per_update)

An update's metrics may include `simulated_env_steps` (steps simulated, masked ones included;
default: the env steps it counts).

The runner `vmap`s `update` over seeds and points and calls it in a `while_loop` inside one `jit` until a
chunk's env steps are reached (runner/programs.py). The step counts (COUNTS) stay exact int32: `as_metrics`.

`register_algorithm("name", obj)` adds one (from any module: a file in ./algorithms, `esbench <command>
--import my_module` or `--plugins DIR`, a sweep file's `imports:` or `plugins:`, or an `esbench.plugins`
entry point loads it); `algorithm_names()`
lists them in registration order, which is also the order (and colour) the
report gives them. `evosax:<Strategy>` names any evosax strategy.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any, Callable, Protocol, runtime_checkable

from esbench import plugins
from esbench.algorithms.networks import PolicySettings
from esbench.validation import NameTakenError

COUNTS = ("valid_env_steps", "simulated_env_steps")


def as_metrics(metrics: dict) -> dict:
    """float32 metrics, except the step counts: exact int32 (float32 loses counts above 2^24 per update)."""
    import jax.numpy as jnp

    return {k: v if k in COUNTS else jnp.asarray(v, jnp.float32) for k, v in metrics.items()}


@runtime_checkable
class Algorithm(Protocol):
    Config: type

    def init(self, key, env, cfg) -> Any: ...
    def update(self, state, env, cfg) -> tuple[Any, dict]: ...
    def policy(self, state) -> dict: ...
    def env_steps_per_update(self, env, cfg) -> int: ...


class UnknownAlgorithmError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


# The built-ins, imported on first use.
_BUILT_IN = {
    "eggroll": "esbench.algorithms.eggroll",
    "openes": "esbench.algorithms.openes",
    "ppo": "esbench.algorithms.ppo",
}
_REGISTRY: dict[str, Any] = {}
# name prefix -> (factory(rest of the name) -> algorithm, an example name)
_FAMILIES: dict[str, tuple[Callable[[str], Any], str]] = {}


def check_algorithm(name: str, algorithm: Any) -> None:
    """TypeError naming what `algorithm` lacks of the protocol above."""
    missing = [
        attr
        for attr in ("Config", "init", "update", "policy", "env_steps_per_update")
        if not hasattr(algorithm, attr)
    ]
    if missing:
        raise TypeError(f"algorithm {name!r} lacks {', '.join(missing)} (see esbench.algorithms.Algorithm)")
    config = algorithm.Config
    if not (dataclasses.is_dataclass(config) and issubclass(config, PolicySettings)):
        raise TypeError(
            f"algorithm {name!r}: Config must be a dataclass subclassing esbench.algorithms.networks.PolicySettings"
        )


def register_algorithm(name: str, algorithm: Any, *, overwrite: bool = False) -> None:
    """Make `algorithm` (satisfying the protocol above) available as `name` everywhere."""
    if not isinstance(name, str) or not name:
        raise TypeError("algorithm name must be a non-empty string")
    if (name in _REGISTRY or name in _BUILT_IN) and not overwrite:
        raise NameTakenError("algorithm", name)
    check_algorithm(name, algorithm)
    _BUILT_IN.pop(name, None)
    _REGISTRY[name] = algorithm
    plugins.note_registration("algorithm", name)


def register_algorithm_family(prefix: str, factory: Callable[[str], Any], example: str) -> None:
    """Names `prefix<rest>` resolve to `factory(rest)` (e.g. 'evosax:' -> any evosax strategy)."""
    _FAMILIES[prefix] = (factory, example)


def algorithm_names() -> tuple[str, ...]:
    """Registered algorithm names, built-ins first, then in registration order."""
    return (*_BUILT_IN, *_REGISTRY)


def get_algorithm(name: str) -> Any:
    """The algorithm called `name`: a registered name or `<family prefix><name>` (e.g. `evosax:CMA_ES`)."""
    if not isinstance(name, str):
        raise TypeError(f"algorithm name must be a string, got {type(name).__name__}")
    if name in _BUILT_IN:
        return importlib.import_module(_BUILT_IN[name])
    if name in _REGISTRY:
        return _REGISTRY[name]
    for prefix, (factory, _) in _FAMILIES.items():
        if name.startswith(prefix):
            return factory(name[len(prefix) :])
    names = algorithm_names()
    close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.4)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    families = "".join(
        f", or '{prefix}<name>' (e.g. '{example}')" for prefix, (_, example) in _FAMILIES.items()
    )
    raise UnknownAlgorithmError(f"unknown algorithm {name!r}.{hint} Allowed: {', '.join(names)}{families}.")


def algorithm_label(name: str) -> str:
    """The display name of an algorithm (its LABEL), or the name itself."""
    try:
        return getattr(get_algorithm(name), "LABEL", name)
    except (KeyError, ImportError):
        return name


def _evosax(strategy: str):
    from esbench.algorithms.evosax_adapter import make_evosax_algorithm

    return make_evosax_algorithm(strategy)


register_algorithm_family("evosax:", _evosax, "evosax:CMA_ES")
