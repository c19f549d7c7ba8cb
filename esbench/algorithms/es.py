"""One ES generation, shared by EGGROLL and OpenES.

The two differ only in how a weight matrix W (m x n) is perturbed: a
`MatrixNoise` says how one antithetic pair's noise for W is drawn, how a
member's perturbed product x (W + sigma s E)^T is computed, and how
sum_j w_j E_j is assembled for the update. Everything else lives here:

    t       = state.generation
    sigma_t = sigma * sigma_decay^t
    for every parameter leaf k and pair j: noise from fold_in(fold_in(fold_in(root, k), t), j)
    f_i     = mean return of member i over n_parallel_evaluations episodes
              (members 2j and 2j+1 run the same episode keys: common random numbers)
    f~      = z-score (f - mean) / sqrt(var + 1e-5), or centered ranks
    u       = (sigma_t / sqrt(N)) sum_i f~_i E_i      (update_scale "official", per leaf;
                                                      vectors use full Gaussian E)
            = 1 / (N sigma_t) sum_i f~_i E_i          (update_scale "textbook": OpenAI-ES, evosax)
    params  = optax step on -u (optax minimises), lr_t = lr * lr_decay^t

"official" is what the HyperscaleES noisers hand their optax solver
(`noiser/eggroll.py`, `noiser/open_es.py`: sigma-scaled noise, averaged over
the population, times sqrt(N)); the paper's eq. 6 absorbs 1/sigma into the
learning rate, so its learning rates mean what they say only under it.

Noise is drawn once per generation (every pair, every leaf) and reused in
every env step of every episode. Regenerating it inside each step (as
HyperscaleES does) measured ~40x slower on CPU here; XLA also hoists such a
loop-invariant draw out of the step loop by itself (measured: a "regenerate
per step" variant compiled to the same speed), so there is no per-step mode.
EGGROLL's buffer is N/2 r (m + n) numbers per matrix; OpenES's is N/2 m n,
which is the naive baseline's cost (its forward forms N m n anyway).

Hyperparameters that only change values (sigma, decays, learning rate,
weight decay, fitness shaping, deterministic_policy) may be traced arrays, so
that hyperparameter points sharing every shape run as one vmapped program.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from typing import Any, Callable, Literal

import jax
import jax.numpy as jnp
import optax
from flax import struct

from esbench import paper
from esbench.algorithms import as_metrics, evaluate, networks
from esbench.algorithms import noise as noise_lib
from esbench.algorithms.networks import PolicySettings
from esbench.envs.core import Env
from esbench.validation import default_from, rule, validate

# Noise is drawn this many numbers at a time: threefry needs ~3x its output in
# scratch memory, so drawing a whole generation at once would triple its peak.
NOISE_CHUNK = 2**22
_CARTPOLE = paper.row("eggroll", "CartPole-v1")  # the defaults: the paper's EGGROLL CartPole-v1 row
_POSITIVE = rule(lambda v: v > 0, "a number > 0")
_DECAY = rule(lambda v: 0 < v <= 1, "a number in (0, 1]")
# The range of every numeric field a paper row sets (types come from the annotations).
RULES = {
    "pop_size": rule(lambda v: v >= 2 and v % 2 == 0, "an even integer >= 2 (antithetic pairs)"),
    "rank": rule(lambda v: v >= 1, "an integer >= 1"),
    "sigma": _POSITIVE,
    "sigma_decay": _DECAY,
    "learning_rate": _POSITIVE,
    "lr_decay": _DECAY,
    "n_parallel_evaluations": rule(lambda v: v >= 1, "an integer >= 1"),
}


# Config fields that only change values, not shapes: hyperparameter points that differ only in
# these run as one vmapped program (they reach `update` as traced arrays).
VALUE_FIELDS = (
    "sigma",
    "sigma_decay",
    "learning_rate",
    "lr_decay",
    "weight_decay",
    "rank_transform",
    "deterministic_policy",
)


def row_default(row: dict, name: str, kind: type = int) -> dataclasses.Field:
    """A field defaulting to a paper row's value, with its range rule."""
    return default_from(row, name, kind, RULES)


@dataclasses.dataclass(frozen=True)
class ESConfig(PolicySettings):
    """Hyperparameters shared by EGGROLL and OpenES (the paper's names, Tables 15-32)."""

    pop_size: int = row_default(_CARTPOLE, "pop_size")
    sigma: float = row_default(_CARTPOLE, "sigma", float)
    sigma_decay: float = row_default(_CARTPOLE, "sigma_decay", float)
    optimizer: Literal["sgd", "adam", "adamw"] = row_default(_CARTPOLE, "optimizer", str)
    learning_rate: float = row_default(_CARTPOLE, "learning_rate", float)
    lr_decay: float = row_default(_CARTPOLE, "lr_decay", float)
    weight_decay: float = dataclasses.field(
        default=1e-4, metadata=rule(lambda v: v >= 0, "a number >= 0")
    )  # adamw (optax's default)
    n_parallel_evaluations: int = row_default(_CARTPOLE, "n_parallel_evaluations")
    rank_transform: bool = row_default(_CARTPOLE, "rank_transform", bool)
    deterministic_policy: bool = row_default(_CARTPOLE, "deterministic_policy", bool)
    update_scale: Literal["official", "textbook"] = "official"
    # Stop a generation's rollouts once every episode has ended (a `while_loop`); false simulates every
    # episode to the limit and masks the rest. Same returns either way: only the cost differs.
    early_exit: bool = True

    def validate(self, owner: str | None = None) -> None:
        validate(self, owner or type(self).__module__.rsplit(".", 1)[-1])


@dataclasses.dataclass(frozen=True)
class MatrixNoise:
    """How an ES perturbs a weight matrix W of shape (m, n); E has unit-variance entries.

    sample(key, shape, dtype, cfg)              -> one pair's noise for W
    matmul(w, x, noise, sign, sigma, cfg)       -> x (W + sigma sign E)^T for one member
    gradient(noise, weights, cfg)               -> sum_j weights_j E_j (noise stacked over pairs)
    stored_size(shape, cfg)                     -> numbers one pair's noise holds
    """

    sample: Callable
    matmul: Callable
    gradient: Callable
    stored_size: Callable


@struct.dataclass
class ESState:
    params: dict  # the search distribution's mean, in `networks` layout
    opt_state: Any
    key: jax.Array  # episode keys, split once per generation
    noise_root: jax.Array  # root of the counter-based noise keys
    generation: jax.Array  # int32 t


def is_matrix(leaf: jax.Array) -> bool:
    return jnp.ndim(leaf) == 2


def draw_noise(root, generation, params, n_pairs: int, cfg, matrix_noise: MatrixNoise) -> list:
    """Per parameter leaf (in `tree_leaves` order) the noise of every pair, stacked along axis 0.

    Vectors get full Gaussian noise, matrices `matrix_noise.sample`, each from
    its counter-based key, so anyone can regenerate pair j's noise alone.
    """
    out = []
    for k, leaf in enumerate(jax.tree_util.tree_leaves(params)):
        keys = noise_lib.pair_keys(root, k, generation, n_pairs)
        if is_matrix(leaf):
            size = matrix_noise.stored_size(leaf.shape, cfg)
            out.append(
                _map_pairs(
                    lambda key, leaf=leaf: matrix_noise.sample(key, leaf.shape, leaf.dtype, cfg), keys, size
                )
            )
        else:
            out.append(
                _map_pairs(
                    lambda key, leaf=leaf: jax.random.normal(key, leaf.shape, leaf.dtype), keys, leaf.size
                )
            )
    return out


def _map_pairs(draw, keys, numbers_per_pair: int):
    """vmap `draw` over pair keys, in chunks of about NOISE_CHUNK numbers when the whole draw is larger."""
    batch = max(1, NOISE_CHUNK // max(int(numbers_per_pair), 1))
    if batch >= keys.shape[0]:
        return jax.vmap(draw)(keys)
    return jax.lax.map(draw, keys, batch_size=batch)


def perturb_member(params, pair_noise: list, sign, sigma, cfg, matrix_noise: MatrixNoise):
    """Member (pair noise, sign): vectors shifted by sigma*sign*eps, and the matmul hook for matrices.

    Matrices stay unperturbed in the returned params: the hook applies their
    perturbation, so an ES that never forms W + sigma E (EGGROLL) doesn't.
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    leaf_index = jax.tree_util.tree_unflatten(treedef, list(range(len(leaves))))
    shifted = [
        leaf if is_matrix(leaf) else leaf + sigma * sign * eps for leaf, eps in zip(leaves, pair_noise)
    ]

    def matmul(layer: int, w: jax.Array, x: jax.Array) -> jax.Array:
        noise = pair_noise[leaf_index["layers"][layer]["w"]]
        return matrix_noise.matmul(w, x, noise, sign, sigma, cfg)

    return jax.tree_util.tree_unflatten(treedef, shifted), matmul


def population_map(fn, params, noise: list, sigma, cfg, matrix_noise: MatrixNoise, *member_args):
    """[fn(params_i, matmul_i, *args_i) for every member i], stacked along axis 0 (N members).

    vmaps over pairs and, inside, over the two signs, so a pair's noise is
    shared by its members without being gathered N times, and anything not
    perturbed (e.g. x W^T) runs as one batched product for the population.
    `member_args` have a leading axis of N (member order).
    """
    n_pairs = jax.tree_util.tree_leaves(noise)[0].shape[0]
    dtype = jax.tree_util.tree_leaves(params)[0].dtype
    signs = jnp.asarray(noise_lib.PAIR_SIGNS, dtype)
    by_pair = jax.tree_util.tree_map(lambda a: a.reshape(n_pairs, 2, *a.shape[1:]), member_args)

    def one_pair(pair_noise, pair_args):
        def one_member(sign, args):
            member_params, matmul = perturb_member(params, pair_noise, sign, sigma, cfg, matrix_noise)
            return fn(member_params, matmul, *args)

        return jax.vmap(one_member)(signs, pair_args)

    out = jax.vmap(one_pair)(noise, by_pair)
    return jax.tree_util.tree_map(lambda a: a.reshape(2 * n_pairs, *a.shape[2:]), out)


def estimate_update(params, noise: list, shaped_fitness, sigma, cfg, matrix_noise: MatrixNoise):
    """The ascent direction handed to the optimiser, per leaf (`cfg.update_scale`, module doc).

    official: u = (sigma / sqrt(N)) sum_i f_i E_i;  textbook: g = 1 / (N sigma) sum_i f_i E_i.
    """
    leaves, treedef = jax.tree_util.tree_flatten(params)
    n = shaped_fitness.shape[0]
    dtype = leaves[0].dtype  # the scale and pair weights in the parameters' precision
    weights = noise_lib.pair_weights(shaped_fitness.astype(dtype))
    sigma = jnp.asarray(sigma, dtype)
    scale = sigma / math.sqrt(n) if cfg.update_scale == "official" else 1.0 / (n * sigma)
    out = []
    for leaf, eps in zip(leaves, noise):
        total = (
            matrix_noise.gradient(eps, weights, cfg)
            if is_matrix(leaf)
            else jnp.tensordot(weights, eps, axes=1)
        )
        out.append(total * scale)
    return jax.tree_util.tree_unflatten(treedef, out)


def decayed(value, decay, generation: jax.Array) -> jax.Array:
    """value * decay^t in float32 (sigma_t, lr_t)."""
    return jnp.float32(value) * jnp.power(jnp.float32(decay), generation.astype(jnp.float32))


def make_optimizer(cfg: ESConfig) -> optax.GradientTransformation:
    lr = lambda count: decayed(cfg.learning_rate, cfg.lr_decay, count)  # noqa: E731
    if cfg.optimizer == "sgd":
        return optax.sgd(lr)
    if cfg.optimizer == "adam":
        return optax.adam(lr)
    return optax.adamw(lr, weight_decay=cfg.weight_decay)


def init(key: jax.Array, env: Env, cfg: ESConfig) -> ESState:
    params_key, noise_key, run_key = jax.random.split(key, 3)
    params = networks.init_policy(params_key, env.spec.obs_dim, env.spec.action, cfg)
    opt_state = make_optimizer(cfg).init(params)
    return ESState(params, opt_state, run_key, noise_key, jnp.zeros((), jnp.int32))


# Set by the runner while it traces a program whose seeds cannot be split over the local devices:
# the population is split instead (pairs and members along axis 0; XLA gathers the fitnesses for the
# shaping and reduces the update's sum over pairs across devices).
_population_sharding: contextvars.ContextVar = contextvars.ContextVar("population_sharding", default=None)


@contextlib.contextmanager
def population_split(sharding):
    """While tracing inside this block, every generation's population is split by `sharding` (None: not)."""
    token = _population_sharding.set(sharding)
    try:
        yield
    finally:
        _population_sharding.reset(token)


def split_over_devices(tree):
    """`tree`'s arrays constrained to the population sharding along axis 0 (where it divides), else as they are."""
    sharding = _population_sharding.get()
    if sharding is None:
        return tree
    n = sharding.mesh.shape[sharding.spec[0]]  # the devices of the population axis
    return jax.tree_util.tree_map(
        lambda x: jax.lax.with_sharding_constraint(x, sharding) if x.shape[0] % n == 0 else x, tree
    )


def fitness(key: jax.Array, env: Env, cfg, member_params: dict, matmul=None) -> tuple[jax.Array, jax.Array]:
    """(mean return over cfg.n_parallel_evaluations episodes, their total length) of one member."""

    def act_fn(obs, act_key):
        return networks.act(
            member_params, obs, act_key, env.spec.action, cfg.deterministic_policy, cfg.activation, matmul
        )

    stats = evaluate.run_episodes(
        key, env, act_fn, cfg.n_parallel_evaluations, early_exit=getattr(cfg, "early_exit", True)
    )
    return jnp.mean(stats.returns), stats.lengths


def update(state: ESState, env: Env, cfg: ESConfig, matrix_noise: MatrixNoise) -> tuple[ESState, dict]:
    """One generation: perturb, evaluate, shape fitness, estimate the gradient, step the optimizer."""
    t = state.generation
    sigma = decayed(cfg.sigma, cfg.sigma_decay, t)
    key, episode_key = jax.random.split(state.key)
    n_pairs = cfg.pop_size // 2
    noise = split_over_devices(draw_noise(state.noise_root, t, state.params, n_pairs, cfg, matrix_noise))

    def member_fitness(member_params, matmul, member_key):
        return fitness(member_key, env, cfg, member_params, matmul)

    # Common random numbers: both members of a pair run the same episode keys.
    member_keys = split_over_devices(jnp.repeat(jax.random.split(episode_key, n_pairs), 2, axis=0))
    returns, lengths = population_map(
        member_fitness, state.params, noise, sigma, cfg, matrix_noise, member_keys
    )

    shaped = noise_lib.shape_fitness(returns, cfg.rank_transform)
    direction = estimate_update(state.params, noise, shaped, sigma, cfg, matrix_noise)
    updates, opt_state = make_optimizer(cfg).update(
        jax.tree_util.tree_map(jnp.negative, direction), state.opt_state, state.params
    )
    params = optax.apply_updates(state.params, updates)

    metrics = {
        "train_return": jnp.mean(returns),
        "valid_env_steps": jnp.sum(lengths),
        "simulated_env_steps": simulated_env_steps(lengths, env, cfg),
        "fitness_std": jnp.std(returns),
        "fitness_max": jnp.max(returns),
        "sigma": sigma,
        "lr": decayed(cfg.learning_rate, cfg.lr_decay, t),
        "update_norm": optax.tree.norm(direction).astype(jnp.float32),
        "param_norm": optax.tree.norm(params).astype(jnp.float32),
    }
    metrics = as_metrics(metrics)
    return ESState(params, opt_state, key, state.noise_root, t + 1), metrics


def simulated_env_steps(lengths: jax.Array, env: Env, cfg) -> jax.Array:
    """Env steps a generation simulates: every episode as long as the longest (early exit) or the limit."""
    steps = jnp.max(lengths) if getattr(cfg, "early_exit", True) else env.spec.max_episode_steps
    return jnp.asarray(lengths.size * steps, jnp.int32)


def policy(state: ESState) -> dict:
    return state.params


def env_steps_per_update(env: Env, cfg) -> int:
    """The most env steps a generation simulates: every episode of every member to the limit."""
    return int(cfg.pop_size) * int(cfg.n_parallel_evaluations) * int(env.spec.max_episode_steps)


def min_env_steps_per_update(env: Env, cfg) -> int:
    """The fewest env steps inside episodes a generation spends: every episode at least one step."""
    return int(cfg.pop_size) * int(cfg.n_parallel_evaluations)
