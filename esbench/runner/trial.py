"""Run one trial: seeds vmapped inside one compiled chunk of K updates, logged after each chunk.

    chunk = jit(vmap(scan(update, K)))      # one program between two log points
    compile once (timed apart), then loop chunks until the env-step budget is spent;
    after each chunk: block_until_ready, wall-clock, env steps, train return, throughput;
    every `eval_every` chunks: evaluation return of policy(state) over fresh episodes.

A seed whose parameters or returns become non-finite is marked `diverged`;
the others carry on (all diverged: the trial stops early).
"""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax import serialization

from esbench.algorithms import get_algorithm
from esbench.provenance import PROTOCOL_VERSION, device_description, package_versions
from esbench.algorithms.evaluate import evaluate_policy
from esbench.envs import Env, make
from esbench.runner.config import ConfigError, TrialSpec
from esbench.runner.progress import TrialProgress

@dataclass
class TrialResult:
    """What running one trial produces; the results store writes it."""

    config: dict[str, Any]
    metrics: pd.DataFrame
    summary: dict[str, Any]
    policy_bytes: bytes


@dataclass(frozen=True)
class TrialPlan:
    """How a budget of env steps is cut into compiled chunks."""

    env_steps_per_update: int
    updates_per_chunk: int
    n_chunks: int

    @property
    def env_steps(self) -> int:
        return self.env_steps_per_update * self.updates_per_chunk * self.n_chunks


def make_trial_env(config: dict[str, Any]) -> Env:
    env = make(config["env"])
    if config.get("max_episode_steps"):
        env = env.with_time_limit(config["max_episode_steps"])
    return env


def plan_trial(spec: TrialSpec, env: Env, cfg) -> TrialPlan:
    """Updates per chunk and chunk count: `num_logs` to 2 * num_logs - 1 log points, never over the budget."""
    per_update = int(get_algorithm(spec.algo).env_steps_per_update(env, cfg))
    n_updates = spec.env_steps // per_update
    if n_updates < 1:
        raise ConfigError(
            f"env_steps: a budget of {spec.env_steps} env steps is smaller than one {spec.algo} update on "
            f"{spec.env} ({per_update} env steps); raise env_steps to at least {per_update} or shrink the update"
        )
    # Whole chunks only (one compiled program): up to per_chunk - 1 updates of the budget stay
    # unused; the summary records the env steps actually run.
    per_chunk = max(1, n_updates // spec.num_logs)
    return TrialPlan(per_update, per_chunk, n_updates // per_chunk)


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


def compile_programs(algo, env: Env, cfg, plan: TrialPlan, eval_episodes: int, init_keys: jax.Array) -> Programs:
    """Compile init, one chunk, evaluation and the divergence check, side by side (XLA compiles outside the GIL)."""
    init = jax.jit(jax.vmap(lambda key: algo.init(key, env, cfg)))

    def scan_updates(state):
        return jax.lax.scan(lambda s, _: algo.update(s, env, cfg), state, None, length=plan.updates_per_chunk)

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
            pool.submit(_evaluation_program, env, policy_shapes, init_keys, eval_episodes,
                        cfg.deterministic_policy, cfg.activation),
            pool.submit(lambda: finite.lower(state_shapes).compile()),
        ]
        return Programs(*(job.result() for job in jobs))


def run_trial(spec: TrialSpec, progress: bool = True, on_chunk: Callable[[int], None] | None = None) -> TrialResult:
    """Run `spec` and return its config, metrics, summary and final policies (nothing is written)."""
    spec.validate()
    config = spec.resolved()
    algo = get_algorithm(spec.algo)
    cfg = spec.algo_config()
    env = make_trial_env(config)
    plan = plan_trial(spec, env, cfg)
    seeds = np.asarray(spec.seeds, dtype=np.uint32)
    init_keys = jax.vmap(lambda s: seed_keys(s)[0])(seeds)

    t0 = time.perf_counter()
    programs = compile_programs(algo, env, cfg, plan, spec.eval_episodes, init_keys)
    state = jax.block_until_ready(programs.init(init_keys))
    compile_s = time.perf_counter() - t0

    n_seeds = len(seeds)
    t = time.perf_counter()
    stats = programs.evaluate(programs.policy(state), jax.vmap(evaluation_key, (0, None))(seeds, 0))
    initial = np.asarray(jax.device_get(stats.returns), np.float64)
    eval_s = time.perf_counter() - t
    # Log point 0, before any training (the paper's curves start there; rejax's skip_initial_evaluation=false).
    rows: list[dict[str, Any]] = [{
        "seed": int(seed), "update": 0, "env_steps": 0, "valid_env_steps": 0, "wall_clock_s": 0.0,
        "train_return": np.nan, "eval_return_mean": initial[i].mean(), "eval_return_std": initial[i].std(),
        "throughput_sps": np.nan, "diverged": False,
    } for i, seed in enumerate(spec.seeds)]
    diverged = np.zeros(n_seeds, bool)
    valid_steps = np.zeros(n_seeds, np.int64)
    final_eval = np.full(n_seeds, np.nan)
    final_eval_std = np.full(n_seeds, np.nan)
    run_s = 0.0
    chunks_done = 0
    with TrialProgress(config["trial_id"], plan.env_steps, enabled=progress) as bar:
        for c in range(plan.n_chunks):
            t = time.perf_counter()
            state, metrics = programs.chunk(state)
            jax.block_until_ready((state, metrics))
            dt = time.perf_counter() - t
            run_s += dt
            chunks_done = c + 1
            metrics = jax.device_get(metrics)  # dict of [seeds, K]
            train_return = np.asarray(metrics["train_return"][:, -1], np.float64)
            valid_steps += np.asarray(metrics["valid_env_steps"], np.int64).sum(axis=1)
            diverged |= ~np.asarray(programs.finite(state)) | ~np.isfinite(train_return)
            env_steps = chunks_done * plan.updates_per_chunk * plan.env_steps_per_update
            eval_mean = eval_std = np.full(n_seeds, np.nan)
            if chunks_done % spec.eval_every == 0 or chunks_done == plan.n_chunks:
                t = time.perf_counter()
                stats = programs.evaluate(programs.policy(state), jax.vmap(evaluation_key, (0, None))(seeds, c + 1))
                returns = np.asarray(jax.device_get(stats.returns), np.float64)
                eval_s += time.perf_counter() - t
                eval_mean, eval_std = returns.mean(axis=1), returns.std(axis=1)
                diverged |= ~np.isfinite(eval_mean)
                final_eval = np.where(diverged, final_eval, eval_mean)
                final_eval_std = np.where(diverged, final_eval_std, eval_std)
            sps = plan.updates_per_chunk * plan.env_steps_per_update / dt
            extra = {f"m_{k}": np.asarray(v[:, -1], np.float64) for k, v in metrics.items()
                     if k not in ("train_return", "valid_env_steps")}
            for i, seed in enumerate(spec.seeds):
                rows.append({
                    "seed": int(seed), "update": chunks_done * plan.updates_per_chunk, "env_steps": env_steps,
                    "valid_env_steps": int(valid_steps[i]), "wall_clock_s": run_s, "train_return": train_return[i],
                    "eval_return_mean": eval_mean[i], "eval_return_std": eval_std[i], "throughput_sps": sps,
                    "diverged": bool(diverged[i]), **{k: v[i] for k, v in extra.items()},
                })
            bar.advance(env_steps, float(np.nanmean(np.where(diverged, np.nan, train_return))) if not diverged.all() else float("nan"), sps)
            if on_chunk is not None:
                on_chunk(chunks_done)
            if diverged.all():
                break

    params = jax.device_get(algo.policy(state))
    suite = make(spec.env).spec.suite
    summary = {
        "status": "diverged" if diverged.all() else "finished",
        "seed_status": {str(s): ("diverged" if d else "finished") for s, d in zip(spec.seeds, diverged)},
        "final_eval_return": {str(s): (None if np.isnan(v) else float(v)) for s, v in zip(spec.seeds, final_eval)},
        "final_eval_return_std": {str(s): (None if np.isnan(v) else float(v)) for s, v in zip(spec.seeds, final_eval_std)},
        "final_eval_return_mean": float(np.nanmean(final_eval)) if np.isfinite(final_eval).any() else None,
        "compile_s": compile_s,
        "run_s": run_s,
        "eval_s": eval_s,
        "env_steps": chunks_done * plan.updates_per_chunk * plan.env_steps_per_update,
        "env_steps_per_update": plan.env_steps_per_update,
        "updates_per_chunk": plan.updates_per_chunk,
        "chunks": chunks_done,
        "throughput_sps": (chunks_done * plan.updates_per_chunk * plan.env_steps_per_update / run_s) if run_s > 0 else None,
        "device": device_description(),
        "versions": package_versions([suite]),
        "protocol_version": PROTOCOL_VERSION,
    }
    policy_bytes = serialization.msgpack_serialize(serialization.to_state_dict(params))
    return TrialResult(config, pd.DataFrame(rows), summary, policy_bytes)
