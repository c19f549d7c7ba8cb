"""Environment registry: ids -> factories, the 16 paper ids, and suite pass-through.

`make("CartPole-v1")` builds a registered id; `make("gymnax/Acrobot-v1")` or
`make("brax/hopper")` passes any other id of a supported suite through to that
suite's adapter. Adding an environment is one call to `register`.
"""

from __future__ import annotations

import difflib
import functools
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from esbench import plugins
from esbench.envs.core import Env, UnknownEnvError
from esbench.validation import NameTakenError

# suite name -> (adapter module, factory function); imported lazily because
# brax and craftax take seconds to import.
SUITES: dict[str, tuple[str, str]] = {
    "gymnax": ("esbench.envs.gymnax", "make_gymnax_env"),
    "brax": ("esbench.envs.brax", "make_brax_env"),
    "craftax": ("esbench.envs.craftax", "make_craftax_env"),
    "jumanji": ("esbench.envs.jumanji", "make_jumanji_env"),
    "kinetix": ("esbench.envs.kinetix", "make_kinetix_env"),
    "navix": ("esbench.envs.navix", "make_navix_env"),
}


@dataclass(frozen=True)
class Registration:
    id: str
    factory: Callable[..., Env]
    kwargs: dict[str, Any] = field(default_factory=dict)
    suite: str = "custom"


_REGISTRY: dict[str, Registration] = {}
_BUILT: dict[tuple[str, int | None], Env] = {}


def register(
    env_id: str, factory: Callable[..., Env], *, suite: str = "custom", overwrite: bool = False, **kwargs
) -> None:
    """Register `env_id` so that `make(env_id)` returns `factory(**kwargs)`.

    `factory` must return an `esbench.envs.Env` (build one from raw reset/step
    functions with `esbench.envs.build_env`).
    """
    if env_id in _REGISTRY and not overwrite:
        raise NameTakenError("environment", env_id)
    _REGISTRY[env_id] = Registration(env_id, factory, dict(kwargs), suite)
    plugins.note_registration("environment", env_id)
    for key in [k for k in _BUILT if k[0] == env_id]:
        del _BUILT[key]


def _suite_factory(suite: str) -> Callable[..., Env]:
    module_name, fn_name = SUITES[suite]
    return getattr(importlib.import_module(module_name), fn_name)


def _register_suite_env(env_id: str, suite: str, name: str) -> None:
    def factory(name=name, suite=suite, env_id=env_id):
        return _suite_factory(suite)(name, env_id=env_id)

    register(env_id, factory, suite=suite)


# The paper's 16 environments, in the paper's order: esbench id -> (suite, suite's own id).
_PAPER = (
    ("CartPole-v1", "gymnax", "CartPole-v1"),
    ("Pendulum-v1", "gymnax", "Pendulum-v1"),
    ("brax/ant", "brax", "ant"),
    ("brax/humanoid", "brax", "humanoid"),
    ("brax/inverted_double_pendulum", "brax", "inverted_double_pendulum"),
    ("craftax/Craftax-Classic-Symbolic", "craftax", "Craftax-Classic-Symbolic-AutoReset-v1"),
    ("craftax/Craftax-Symbolic", "craftax", "Craftax-Symbolic-AutoReset-v1"),
    ("jumanji/Game2048-v1", "jumanji", "Game2048-v1"),
    ("jumanji/Knapsack-v1", "jumanji", "Knapsack-v1"),
    ("jumanji/Snake-v1", "jumanji", "Snake-v1"),
    ("kinetix/l/hard_pinball", "kinetix", "l/hard_pinball"),
    ("kinetix/m/h17_thrustcontrol_left", "kinetix", "m/h17_thrustcontrol_left"),
    ("kinetix/s/h1_thrust_over_ball", "kinetix", "s/h1_thrust_over_ball"),
    ("navix/DoorKey-8x8", "navix", "Navix-DoorKey-8x8-v0"),
    ("navix/Dynamic-Obstacles-6x6-Random", "navix", "Navix-Dynamic-Obstacles-6x6-Random-v0"),
    ("navix/FourRooms", "navix", "Navix-FourRooms-v0"),
)
PAPER_ENVS: tuple[str, ...] = tuple(env_id for env_id, _, _ in _PAPER)
for _env_id, _suite, _name in _PAPER:
    _register_suite_env(_env_id, _suite, _name)


def paper_suite_ids() -> tuple[tuple[str, str, str], ...]:
    """(esbench id, suite, the suite's own id) of the paper's 16 environments."""
    return _PAPER


def registered_ids() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def resolve(env_id: str) -> Registration:
    """The registration for `env_id`, passing unregistered ids of known suites through."""
    if not isinstance(env_id, str):
        raise TypeError(f"environment id must be a string, got {type(env_id).__name__}")
    if env_id in _REGISTRY:
        return _REGISTRY[env_id]
    suite, _, name = env_id.partition("/")
    if suite in SUITES and name:
        return Registration(env_id, functools.partial(_suite_factory(suite), name, env_id=env_id), {}, suite)
    close = difflib.get_close_matches(env_id, list(_REGISTRY), n=5, cutoff=0.4)
    hint = f" Closest registered ids: {', '.join(close)}." if close else ""
    raise UnknownEnvError(
        f"unknown environment id {env_id!r}.{hint} Any id of a supported suite also works as "
        f"'<suite>/<name>' with suite one of: {', '.join(SUITES)} (e.g. 'gymnax/Acrobot-v1', 'brax/hopper')."
    )


def make(env_id: str, max_episode_steps: int | None = None) -> Env:
    """Build the environment `env_id`, truncated after `max_episode_steps` if given.

    Cached: the same arguments return the same `Env` (compiled programs keyed on it are reused).
    """
    key = (env_id, max_episode_steps)
    if key in _BUILT:
        return _BUILT[key]
    if max_episode_steps:
        env = make(env_id).with_time_limit(max_episode_steps)
    else:
        registration = resolve(env_id)
        env = registration.factory(**registration.kwargs)
        if not isinstance(env, Env):
            raise TypeError(
                f"factory for {env_id!r} returned {type(env).__name__}, expected esbench.envs.Env"
            )
    _BUILT[key] = env
    return env
