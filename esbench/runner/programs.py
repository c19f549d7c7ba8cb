"""The compiled programs of a group of trials: init, one chunk of updates, policy, evaluation, divergence check.

A group is one trial, or several trials whose hyperparameter points differ
only in values (`algorithm.VALUE_FIELDS`: sigma, learning rates, decays, ...)
and which share everything else (env, budget, seeds, shapes). Every array
carries a leading [points, seeds] batch; the value fields that differ within
the group reach `init`/`update` as traced arrays, one per point, so the group
compiles once and runs as one program:

    chunk = jit(vmap_points(vmap_seeds(while_loop(update))))     # one program between two log points

A chunk runs each seed's updates until its env steps reach the chunk's goal
(or the budget has no room for another update; see schedule.py), so different
seeds may run different numbers of updates, each exactly as it would alone.
With n > 1 local devices every one of them works (device_layout):

    an algorithm that splits its population (SPLITS_POPULATION: EGGROLL, OpenES):
        a two-axis mesh (batch x population); the batch axis is the seeds axis, or the points axis
        where that shares more devices, over b = gcd(n, its size) devices, and each ES generation's
        population (its pairs) over the other n / b (es.population_split): 8 devices, 10 seeds:
        2 x 4; 3 seeds: 1 x 8; 8 seeds: 8 x 1
    any other (PPO, evosax, plugins):
        the seeds axis over all n where it divides, else the points axis where that does, else
        the seeds padded to a multiple of n: the padding seeds repeat real ones, are computed
        and dropped (Programs returns the real seeds only; no record ever sees them)

A layout regroups sums (a split population gathers fitnesses and reduces the update across
devices), so results agree with one device's to rounding (docs/determinism.md). All
programs are compiled side by side (XLA compiles outside the GIL), and the
compile time is measured apart from training. Evaluation programs are shared
by groups that evaluate the same env, network and settings.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from esbench.algorithms import COUNTS
from esbench.algorithms.es import population_split
from esbench.algorithms.evaluate import evaluate_policy

INT32_MAX = np.iinfo(np.int32).max


def seed_keys(seed: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(init key, evaluation key) of a seed."""
    init_key, eval_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, eval_key


def evaluation_key(seed: jax.Array, log_point: int) -> jax.Array:
    """The key of the evaluation at log point `log_point` (0: before training, c: after chunk c): fresh
    episodes each time."""
    return jax.random.fold_in(seed_keys(seed)[1], log_point)


def all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def traced_fields(trials) -> tuple[str, ...]:
    """The value fields passed as arrays: numbers always (so a trial computes alike alone and in a group),
    booleans only where the group's points differ (a traced boolean computes both branches)."""
    algorithm = trials[0].algorithm
    names = []
    for name in getattr(algorithm, "VALUE_FIELDS", ()):
        values = {getattr(t.cfg, name) for t in trials}
        if not isinstance(getattr(trials[0].cfg, name), bool) or len(values) > 1:
            names.append(name)
    return tuple(names)


@dataclass(frozen=True)
class DeviceLayout:
    """How a group's arrays lie on the local devices; `description` is what its summaries record."""

    state: NamedSharding | None  # of every [points, seeds, ...] array (None: one device)
    population: NamedSharding | None  # of each ES generation's population (None: not split)
    description: dict
    seeds: int  # the seeds computed: the trial's, padded to a multiple of the devices where needed

    @property
    def batch_axes(self) -> tuple[str | None, str | None]:
        """The mesh axes the (points, seeds) vmaps map to (spmd_axis_name), None where not sharded."""
        if self.state is None:
            return None, None
        spec = tuple(self.state.spec) + (None, None)
        return spec[0], spec[1]


def _description(devices, mesh: Mesh | None, sharded: dict[str, str]) -> dict:
    return {
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "mesh_axes": list(mesh.axis_names) if mesh is not None else [],
        "mesh_shape": [int(mesh.shape[a]) for a in mesh.axis_names] if mesh is not None else [],
        "sharded": sharded,  # what is split -> the mesh axis it is split over
    }


def device_layout(points: int, seeds: int, splits_population: bool) -> DeviceLayout:
    """The group's layout over the local devices (the module docstring's rule)."""
    devices = jax.local_devices()
    n = len(devices)
    if n < 2:
        return DeviceLayout(None, None, _description(devices, None, {}), seeds)
    if splits_population:
        axis, size = ("seeds", seeds) if math.gcd(n, seeds) >= math.gcd(n, points) else ("points", points)
        b = math.gcd(n, size)
        mesh = Mesh(np.asarray(devices).reshape(b, n // b), (axis, "population"))
        sharded = {axis: axis} if b > 1 else {}
        population = None
        if n // b > 1:
            population, sharded["population"] = NamedSharding(mesh, PartitionSpec("population")), "population"
        spec = PartitionSpec(None, axis) if axis == "seeds" else PartitionSpec(axis)
        return DeviceLayout(
            NamedSharding(mesh, spec), population, _description(devices, mesh, sharded), seeds
        )
    if seeds % n and not points % n:
        mesh = Mesh(np.asarray(devices), ("points",))
        state = NamedSharding(mesh, PartitionSpec("points"))
        return DeviceLayout(state, None, _description(devices, mesh, {"points": "points"}), seeds)
    mesh = Mesh(np.asarray(devices), ("seeds",))
    padded = -(-seeds // n) * n
    sharded = {"seeds": "seeds"} if padded == seeds else {f"seeds (padded {seeds} -> {padded})": "seeds"}
    state = NamedSharding(mesh, PartitionSpec(None, "seeds"))
    return DeviceLayout(state, None, _description(devices, mesh, sharded), padded)


@dataclass(frozen=True)
class Programs:
    """A group's compiled programs and their inputs; every array has a leading [points, seeds] batch."""

    compiled_init: Any  # (init keys [seeds, 2], values) -> state
    compiled_chunk: Any  # (state, values, goal, room, max_updates) -> (state, counts, metrics)
    compiled_policy: Any  # state -> policy params
    evaluate: Any  # (policy params, eval keys [seeds, 2]) -> EpisodeStats [points, seeds, episodes]
    compiled_finite: Any  # state -> bool [points, seeds]
    init_keys: jax.Array
    values: dict  # the traced value fields: name -> [points] array
    sharding: NamedSharding | None
    layout: dict  # DeviceLayout.description: the devices, the mesh and what is sharded over it
    update: Any = (
        None  # (state, values) -> (state, metrics): one update of every point and seed, uncompiled (cost.py)
    )
    state_shapes: Any = None
    # the computed seed of each column of the state: the trial's seeds, then padding that repeats them
    # (None: no padding); the methods below take and give the trial's seeds only
    padding: np.ndarray | None = None
    seed_count: int = 0  # the trial's seeds

    def _pad(self, per_seed):
        return per_seed if self.padding is None else np.asarray(per_seed)[:, self.padding]

    def _real(self, tree):
        if self.padding is None:
            return tree
        return jax.tree_util.tree_map(lambda x: x[:, : self.seed_count], tree)

    def init(self):
        return self.compiled_init(self.init_keys, self.values)

    def chunk(self, state, goal, room, max_updates):
        """Each seed's updates until its env steps reach `goal` (see _chunk_fn); -> (state, counts, metrics)."""
        state, counts, metrics = self.compiled_chunk(
            state, self.values, self._pad(goal), self._pad(room), self._pad(max_updates)
        )
        return state, self._real(counts), self._real(metrics)

    def policy(self, state):
        """The policy params [points, seeds, ...] of the trial's seeds."""
        return self._real(self.compiled_policy(state))

    def finite(self, state):
        """bool [points, seeds]: whether each seed's policy is finite."""
        return self._real(self.compiled_finite(state))

    def evaluate_at(self, state, seeds: np.ndarray, log_point: int):
        """Evaluation returns [points, seeds, episodes] of policy(state) at `log_point`."""
        seeds = np.asarray(seeds, np.uint32)
        computed = seeds if self.padding is None else seeds[self.padding]
        keys = jax.vmap(evaluation_key, (0, None))(jnp.asarray(computed), log_point)
        return self._real(self.evaluate(self.compiled_policy(state), keys).returns)


# Evaluation programs by (env, policy shapes, evaluation settings). On slow-compiling envs
# (brax, craftax, kinetix) evaluation costs about as much to compile as training, and every
# trial of a sweep on the same env and network (EGGROLL and OpenES; a grid over learning
# rates) evaluates the same program.
_EVAL_CACHE: collections.OrderedDict = collections.OrderedDict()
_EVAL_CACHE_SIZE = 4  # sweeps run an env's trials one after another; compiled programs hold memory
_EVAL_CACHE_LOCK = threading.Lock()


def _evaluation_program(env, policy_shapes, keys, eval_episodes: int, deterministic, activation: str):
    """vmap_points(vmap_seeds(evaluate_policy)); `deterministic` a bool, or a [points] array (compiled as input)."""
    leaves, treedef = jax.tree_util.tree_flatten(policy_shapes)
    traced = not isinstance(deterministic, bool)
    cache_key = (
        env.spec,
        env.raw_reset,
        env.raw_step,
        treedef,
        tuple((x.shape, x.dtype, x.weak_type) for x in leaves),
        keys.shape,
        eval_episodes,
        "traced" if traced else deterministic,
        activation,
    )
    with _EVAL_CACHE_LOCK:
        if cache_key in _EVAL_CACHE:
            _EVAL_CACHE.move_to_end(cache_key)
            compiled = _EVAL_CACHE[cache_key]
            return (lambda p, k: compiled(p, k, deterministic)) if traced else compiled

    def one(params, key, det):
        return evaluate_policy(key, env, params, eval_episodes, det, activation)

    if traced:
        program = jax.jit(jax.vmap(jax.vmap(one, (0, 0, None)), (0, None, 0)))
        compiled = program.lower(
            policy_shapes, keys, jax.ShapeDtypeStruct(deterministic.shape, jnp.bool_)
        ).compile()
    else:
        program = jax.jit(jax.vmap(jax.vmap(lambda p, k: one(p, k, deterministic)), (0, None)))
        compiled = program.lower(policy_shapes, keys).compile()
    with _EVAL_CACHE_LOCK:
        _EVAL_CACHE[cache_key] = compiled
        while len(_EVAL_CACHE) > _EVAL_CACHE_SIZE:
            _EVAL_CACHE.popitem(last=False)
    return (lambda p, k: compiled(p, k, deterministic)) if traced else compiled


def _chunk_fn(algo, env, config_for, min_steps: int):
    """One seed's chunk: updates while its env steps are below `goal`, the budget has `room` for the fewest
    env steps an update spends, and fewer than `max_updates` updates have run (the budget's cap)."""

    def run(state, values, goal, room, max_updates):
        cfg = config_for(values)
        _, metric_shapes = jax.eval_shape(lambda s: algo.update(s, env, cfg), state)
        zeros = jax.tree_util.tree_map(lambda x: jnp.zeros(x.shape, x.dtype), metric_shapes)
        counts = {"updates": jnp.int32(0), "env_steps": jnp.int32(0), "simulated_env_steps": jnp.int32(0)}

        def cond(carry):
            _, c, _ = carry
            return (
                (c["env_steps"] < goal) & (c["env_steps"] + min_steps <= room) & (c["updates"] < max_updates)
            )

        def body(carry):
            state, c, _ = carry
            state, metrics = algo.update(state, env, cfg)
            simulated = metrics.get("simulated_env_steps", metrics["valid_env_steps"])
            c = {
                "updates": c["updates"] + 1,
                "env_steps": c["env_steps"] + metrics["valid_env_steps"],
                "simulated_env_steps": c["simulated_env_steps"] + simulated,
            }
            return state, c, metrics

        state, c, metrics = jax.lax.while_loop(cond, body, (state, counts, zeros))
        return state, c, {k: v for k, v in metrics.items() if k not in COUNTS}

    return run


def compile_programs(trials, seeds: np.ndarray) -> Programs:
    """Compile the programs of a group of resolved trials (one trial is a group of one)."""
    first = trials[0]
    algo, env, cfg0 = first.algorithm, first.env, first.cfg
    values = {name: jnp.asarray([getattr(t.cfg, name) for t in trials]) for name in traced_fields(trials)}

    def config_for(point_values):
        return dataclasses.replace(cfg0, **point_values)

    layout = device_layout(len(trials), len(seeds), getattr(algo, "SPLITS_POPULATION", False))
    padding = np.resize(np.arange(len(seeds)), layout.seeds) if layout.seeds != len(seeds) else None
    computed = np.asarray(seeds, np.uint32) if padding is None else np.asarray(seeds, np.uint32)[padding]
    init_keys = jax.vmap(lambda s: seed_keys(s)[0])(jnp.asarray(computed))
    sharding, population = layout.state, layout.population
    point_axis, seed_axis = layout.batch_axes  # a constraint inside the vmaps keeps the batch's split
    jit = (lambda f: jax.jit(f, out_shardings=sharding)) if sharding is not None else jax.jit
    per_seed = jax.vmap(lambda key, v: algo.init(key, env, config_for(v)), (0, None))
    init = jit(jax.vmap(per_seed, (None, 0), axis_size=len(trials)))  # values may be empty: no mapped input
    run = _chunk_fn(algo, env, config_for, first.schedule.min_env_steps_per_update)
    update = jax.vmap(jax.vmap(lambda s, v: algo.update(s, env, config_for(v)), (0, None)), (0, 0))
    chunk = jit(
        jax.vmap(
            jax.vmap(run, (0, None, 0, 0, 0), spmd_axis_name=seed_axis),
            (0, 0, 0, 0, 0),
            spmd_axis_name=point_axis,
        )
    )
    policy = jax.jit(jax.vmap(jax.vmap(algo.policy)))
    finite = jax.jit(jax.vmap(jax.vmap(lambda state: all_finite(algo.policy(state)))))

    state_shapes = jax.eval_shape(init, init_keys, values)
    policy_shapes = jax.eval_shape(policy, state_shapes)
    counters = jax.ShapeDtypeStruct((len(trials), layout.seeds), jnp.int32)
    if (
        sharding is not None
    ):  # compile for the layout the arrays will have: the batch split, the rest replicated
        replicated = NamedSharding(sharding.mesh, PartitionSpec())
        laid_out = lambda tree, s: jax.tree_util.tree_map(  # noqa: E731
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree
        )
        state_shapes, policy_shapes, counters = (
            laid_out(t, sharding) for t in (state_shapes, policy_shapes, counters)
        )
        init_keys, values = jax.device_put((init_keys, values), replicated)
    deterministic = values.get("deterministic_policy", cfg0.deterministic_policy)
    with population_split(population):  # traced here; XLA compiles them side by side below
        lowered = [
            init.lower(init_keys, values),
            chunk.lower(state_shapes, values, counters, counters, counters),
            policy.lower(state_shapes),
            finite.lower(state_shapes),
        ]
    with ThreadPoolExecutor(max_workers=5) as pool:
        evaluation = pool.submit(
            _evaluation_program,
            env,
            policy_shapes,
            init_keys,
            first.spec.eval_episodes,
            deterministic,
            cfg0.activation,
        )
        init_c, chunk_c, policy_c, finite_c = pool.map(lambda program: program.compile(), lowered)
        compiled = [init_c, chunk_c, policy_c, evaluation.result(), finite_c]
    return Programs(
        *compiled,
        init_keys=init_keys,
        values=values,
        sharding=sharding,
        layout=layout.description,
        update=update,
        state_shapes=state_shapes,
        padding=padding,
        seed_count=len(seeds),
    )
