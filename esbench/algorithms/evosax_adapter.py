"""Any evosax 0.3.2 strategy as an esbench algorithm (`evosax:<Strategy>`, e.g. `evosax:CMA_ES`).

The strategy searches the flattened policy parameters (`ravel_pytree` of the
`networks` layout); a member's fitness is its mean return over
`n_parallel_evaluations` episodes, negated because evosax minimises. Where a
strategy takes them, `sigma` sets its initial std (`std_init` /
`std_schedule`, decayed by `sigma_decay`) and `optimizer` / `learning_rate` /
`lr_decay` its optax optimizer; everything else keeps evosax's defaults.

Population-based strategies (GAs, PSO, DE) start from theta_0 + sigma * N(0, 1)
members marked unevaluated (fitness +inf, as evosax's own init does), so no
environment step happens outside `update`.

Full-covariance strategies (CMA_ES, xNES, ...) hold a D x D matrix; with
the paper's 3x256 network D is ~1.4e5, so use them with small networks.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from types import SimpleNamespace
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from esbench.algorithms import as_metrics, es, networks
from esbench.algorithms.networks import PolicySettings
from esbench.envs.core import Env
from esbench.validation import rule, validate


def evosax_strategies() -> dict[str, type]:
    from evosax.algorithms import algorithms

    return dict(algorithms)


def _is_population_based(strategy_name: str) -> bool:
    from evosax.algorithms.population_based import population_based_algorithms

    return strategy_name in population_based_algorithms


@dataclasses.dataclass(frozen=True)
class Config(PolicySettings):
    pop_size: int = dataclasses.field(
        default=64, metadata=rule(lambda v: v >= 2, "an integer >= 2 (even for antithetic strategies)")
    )
    sigma: float = dataclasses.field(default=0.1, metadata=es.RULES["sigma"])
    sigma_decay: float = dataclasses.field(default=1.0, metadata=es.RULES["sigma_decay"])
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    learning_rate: float = dataclasses.field(default=0.05, metadata=es.RULES["learning_rate"])
    lr_decay: float = dataclasses.field(default=1.0, metadata=es.RULES["lr_decay"])
    weight_decay: float = dataclasses.field(
        default=1e-4, metadata=rule(lambda v: v >= 0, "a number >= 0")
    )  # adamw
    n_parallel_evaluations: int = dataclasses.field(default=1, metadata=es.RULES["n_parallel_evaluations"])

    def validate(self, owner: str = "evosax") -> None:
        validate(self, owner)


@struct.dataclass
class EvosaxState:
    es_state: Any
    es_params: Any
    key: jax.Array
    params: dict  # the strategy's mean (or best member) in `networks` layout: what `policy` returns


def _template(env: Env, cfg: Config) -> dict:
    """A params pytree of the right shapes (values unused) for ravel/unravel."""
    return networks.init_policy(jax.random.PRNGKey(0), env.spec.obs_dim, env.spec.action, cfg)


@functools.lru_cache(maxsize=64)
def _build(strategy_name: str, env: Env, cfg: Config):
    """The evosax strategy object for (env, cfg); cached so repeated traces reuse one instance."""
    cls = evosax_strategies()[strategy_name]
    accepted = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    if "optimizer" in accepted:
        kwargs["optimizer"] = es.make_optimizer(cfg)
    if "std_schedule" in accepted:
        kwargs["std_schedule"] = optax.exponential_decay(
            cfg.sigma, transition_steps=1, decay_rate=cfg.sigma_decay
        )
    required = [
        p
        for n, p in accepted.items()
        if n not in ("self", "population_size", "solution") and p.default is inspect.Parameter.empty
    ]
    if required:
        raise ValueError(
            f"evosax strategy {strategy_name!r} needs constructor arguments esbench does not supply "
            f"({', '.join(p.name for p in required)}); pick another strategy"
        )
    return cls(population_size=cfg.pop_size, solution=_template(env, cfg), **kwargs)


def _strategy_params(strategy, cfg: Config):
    params = strategy.default_params
    if hasattr(params, "std_init"):
        params = params.replace(std_init=jnp.float32(cfg.sigma))
    return params


def _policy_params(strategy, es_state) -> dict:
    flat = es_state.mean if hasattr(es_state, "mean") else es_state.best_solution
    return strategy._unravel_solution(flat)


def make_evosax_algorithm(strategy_name: str) -> SimpleNamespace:
    """An algorithm (Config, init, update, policy, env_steps_per_update) running evosax's `strategy_name`."""
    strategies = evosax_strategies()
    if strategy_name not in strategies:
        from esbench.algorithms import UnknownAlgorithmError

        raise UnknownAlgorithmError(
            f"unknown evosax strategy {strategy_name!r}; evosax {_evosax_version()} has: "
            f"{', '.join(sorted(strategies))}"
        )
    population_based = _is_population_based(strategy_name)

    def init(key: jax.Array, env: Env, cfg: Config) -> EvosaxState:
        strategy = _build(strategy_name, env, cfg)
        es_params = _strategy_params(strategy, cfg)
        params_key, state_key, pop_key, run_key = jax.random.split(key, 4)
        theta0 = networks.init_policy(params_key, env.spec.obs_dim, env.spec.action, cfg)
        if population_based:
            flat0, _ = ravel_pytree(theta0)
            flat = flat0 + cfg.sigma * jax.random.normal(pop_key, (cfg.pop_size, flat0.size), flat0.dtype)
            population = jax.vmap(strategy._unravel_solution)(flat)
            fitness = jnp.full((cfg.pop_size,), jnp.inf, jnp.float32)  # not evaluated yet
            es_state = strategy.init(state_key, population, fitness, es_params)
            es_state = es_state.replace(best_solution=flat0)  # the policy until a member is evaluated
        else:
            es_state = strategy.init(state_key, theta0, es_params)
        return EvosaxState(es_state, es_params, run_key, _policy_params(strategy, es_state))

    def update(state: EvosaxState, env: Env, cfg: Config) -> tuple[EvosaxState, dict]:
        strategy = _build(strategy_name, env, cfg)
        key, ask_key, tell_key, episode_key = jax.random.split(state.key, 4)
        population, es_state = strategy.ask(ask_key, state.es_state, state.es_params)

        returns, lengths = jax.vmap(lambda params, k: es.fitness(k, env, cfg, params))(
            population, jax.random.split(episode_key, cfg.pop_size)
        )
        es_state, _ = strategy.tell(tell_key, population, -returns, es_state, state.es_params)
        metrics = {
            "train_return": jnp.mean(returns),
            "valid_env_steps": jnp.sum(lengths),
            "simulated_env_steps": es.simulated_env_steps(lengths, env, cfg),
            "fitness_std": jnp.std(returns),
            "fitness_max": jnp.max(returns),
        }
        if hasattr(es_state, "std"):
            metrics["sigma"] = jnp.mean(es_state.std)
        metrics = as_metrics(metrics)
        return EvosaxState(es_state, state.es_params, key, _policy_params(strategy, es_state)), metrics

    def policy(state: EvosaxState) -> dict:
        return state.params

    return SimpleNamespace(
        name=f"evosax:{strategy_name}",
        Config=Config,
        init=init,
        update=update,
        policy=policy,
        env_steps_per_update=es.env_steps_per_update,
        min_env_steps_per_update=es.min_env_steps_per_update,
    )


def _evosax_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("evosax")
    except PackageNotFoundError:
        return "(unknown version)"
