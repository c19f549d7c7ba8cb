"""A trial's compiled programs: init, one chunk of updates, policy, evaluation, divergence check.

    chunk = jit(vmap(scan(update, K)))      # one program between two log points, seeds vmapped

All are compiled side by side (XLA compiles outside the GIL), and the compile
time is measured apart from training. Evaluation programs are shared by trials
that evaluate the same env, network and settings.
"""

from __future__ import annotations

import collections
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from esbench.algorithms.evaluate import evaluate_policy
from esbench.envs import Env


def seed_keys(seed: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(init key, evaluation key) of a seed."""
    init_key, eval_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, eval_key


def evaluation_key(seed: jax.Array, log_point: int) -> jax.Array:
    """The key of the evaluation at log point `log_point` (0: before training, c: after chunk c): fresh episodes each time."""
    return jax.random.fold_in(seed_keys(seed)[1], log_point)


def all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


@dataclass(frozen=True)
class Programs:
    """A trial's compiled programs, all vmapped over seeds."""

    init: Any  # init keys -> state
    chunk: Any  # state -> (state, metrics [seeds, K])
    policy: Any  # state -> policy params
    evaluate: Any  # (policy params, eval keys) -> EpisodeStats
    finite: Any  # state -> bool per seed

    def evaluate_at(self, state, seeds, log_point: int):
        """Evaluation returns [seeds, episodes] of policy(state) at `log_point`."""
        return self.evaluate(self.policy(state), jax.vmap(evaluation_key, (0, None))(seeds, log_point)).returns


# Evaluation programs by (env, policy shapes, evaluation settings). On slow-compiling envs
# (brax, craftax, kinetix) evaluation costs about as much to compile as training, and every
# trial of a sweep on the same env and network (EGGROLL and OpenES; a grid over learning
# rates) evaluates the same program.
_EVAL_CACHE: collections.OrderedDict = collections.OrderedDict()
_EVAL_CACHE_SIZE = 4  # sweeps run an env's trials one after another; compiled programs hold memory
_EVAL_CACHE_LOCK = threading.Lock()


def _evaluation_program(env: Env, policy_shapes, keys, eval_episodes: int, deterministic: bool, activation: str):
    leaves, treedef = jax.tree_util.tree_flatten(policy_shapes)
    cache_key = (env.spec, env.raw_reset, env.raw_step, treedef, tuple((x.shape, x.dtype, x.weak_type) for x in leaves),
                 keys.shape, eval_episodes, deterministic, activation)
    with _EVAL_CACHE_LOCK:
        if cache_key in _EVAL_CACHE:
            _EVAL_CACHE.move_to_end(cache_key)
            return _EVAL_CACHE[cache_key]
    program = jax.jit(jax.vmap(lambda params, key: evaluate_policy(
        key, env, params, eval_episodes, deterministic, activation))).lower(policy_shapes, keys).compile()
    with _EVAL_CACHE_LOCK:
        _EVAL_CACHE[cache_key] = program
        while len(_EVAL_CACHE) > _EVAL_CACHE_SIZE:
            _EVAL_CACHE.popitem(last=False)
    return program


def compile_programs(trial, init_keys: jax.Array) -> Programs:
    """Compile `trial`'s (a ResolvedTrial) programs for the seeds whose init keys are given."""
    algo, env, cfg = trial.algorithm, trial.env, trial.cfg
    init = jax.jit(jax.vmap(lambda key: algo.init(key, env, cfg)))

    def scan_updates(state):
        return jax.lax.scan(lambda s, _: algo.update(s, env, cfg), state, None, length=trial.plan.updates_per_chunk)

    chunk = jax.jit(jax.vmap(scan_updates))
    policy = jax.jit(jax.vmap(algo.policy))
    finite = jax.jit(jax.vmap(lambda state: all_finite(algo.policy(state))))
    state_shapes = jax.eval_shape(init, init_keys)
    policy_shapes = jax.eval_shape(policy, state_shapes)
    with ThreadPoolExecutor(max_workers=5) as pool:
        jobs = [
            pool.submit(lambda: init.lower(init_keys).compile()),
            pool.submit(lambda: chunk.lower(state_shapes).compile()),
            pool.submit(lambda: policy.lower(state_shapes).compile()),
            pool.submit(_evaluation_program, env, policy_shapes, init_keys, trial.spec.eval_episodes,
                        cfg.deterministic_policy, cfg.activation),
            pool.submit(lambda: finite.lower(state_shapes).compile()),
        ]
        return Programs(*(job.result() for job in jobs))
