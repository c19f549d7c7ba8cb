"""One ES generation, shared by EGGROLL and OpenES.

The two differ only in how a weight matrix W (m x n) is perturbed: a
`MatrixNoise` says how one antithetic pair's noise for W is drawn, how a
member's perturbed product x (W + sigma s E)^T is computed, and how
sum_j w_j E_j is assembled for the gradient. Everything else lives here:

    t       = state.generation
    sigma_t = sigma * sigma_decay^t
    for every parameter leaf k and pair j: noise from fold_in(fold_in(fold_in(root, k), t), j)
    f_i     = mean return of member i over n_parallel_evaluations episodes
              (members 2j and 2j+1 run the same episode keys: common random numbers)
    f~      = z-score or centered ranks of f
    g       = 1/(N sigma_t) sum_i f~_i E_i          (per leaf; vectors use full Gaussian E)
    params  = optax step on -g (optax minimises), lr_t = lr * lr_decay^t

Noise is drawn once per generation (every pair, every leaf) and reused in
every env step of every episode. Regenerating it inside each step is what
PROTOCOL.md measured ~40x slower on CPU; XLA also hoists such a
loop-invariant draw out of the step loop by itself (measured: a "regenerate
per step" variant compiled to the same speed), so there is no per-step mode.
EGGROLL's buffer is N/2 r (m + n) numbers per matrix; OpenES's is N/2 m n,
which is the naive baseline's cost (its forward forms N m n anyway).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct

from esbench.algorithms import evaluate, networks
from esbench.algorithms import noise as noise_lib
from esbench.envs.core import Env

OPTIMIZERS = ("sgd", "adam", "adamw")
# Noise is drawn this many numbers at a time: threefry needs ~3x its output in
# scratch memory, so drawing a whole generation at once would triple its peak.
NOISE_CHUNK = 2**22


def _invalid(cls_name: str, field: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{cls_name}.{field} = {value!r} is invalid; allowed: {allowed}")


@dataclasses.dataclass(frozen=True)
class ESConfig:
    """Hyperparameters shared by EGGROLL and OpenES (names as in paper/hparams.yaml)."""

    pop_size: int = 2048
    sigma: float = 0.2
    sigma_decay: float = 0.999
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    lr_decay: float = 0.9995
    weight_decay: float = 1e-4  # adamw only (optax's default)
    n_parallel_evaluations: int = 1
    deterministic_policy: bool = False
    rank_transform: bool = False
    hidden: tuple[int, ...] = networks.DEFAULT_HIDDEN
    activation: str = "pqn"

    def __post_init__(self):
        # YAML gives lists; a tuple keeps the config hashable.
        if isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(self.hidden))

    def validate(self) -> None:
        name = type(self).__module__.rsplit(".", 1)[-1] + ".Config"
        if not _is_int(self.pop_size) or self.pop_size < 2 or self.pop_size % 2:
            raise _invalid(name, "pop_size", self.pop_size, "an even integer >= 2 (antithetic pairs)")
        validate_search_fields(self, name)
        if not self.weight_decay >= 0:
            raise _invalid(name, "weight_decay", self.weight_decay, "a float >= 0")
        if not isinstance(self.rank_transform, bool):
            raise _invalid(name, "rank_transform", self.rank_transform, "true, false")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def validate_search_fields(cfg, name: str) -> None:
    """Checks of the fields every ES config here has (ESConfig and the evosax adapter's)."""
    if not cfg.sigma > 0:
        raise _invalid(name, "sigma", cfg.sigma, "a float > 0")
    if not 0 < cfg.sigma_decay <= 1:
        raise _invalid(name, "sigma_decay", cfg.sigma_decay, "a float in (0, 1]")
    if cfg.optimizer not in OPTIMIZERS:
        raise _invalid(name, "optimizer", cfg.optimizer, ", ".join(OPTIMIZERS))
    if not cfg.learning_rate > 0:
        raise _invalid(name, "learning_rate", cfg.learning_rate, "a float > 0")
    if not 0 < cfg.lr_decay <= 1:
        raise _invalid(name, "lr_decay", cfg.lr_decay, "a float in (0, 1]")
    if not _is_int(cfg.n_parallel_evaluations) or cfg.n_parallel_evaluations < 1:
        raise _invalid(name, "n_parallel_evaluations", cfg.n_parallel_evaluations, "an integer >= 1")
    if not isinstance(cfg.deterministic_policy, bool):
        raise _invalid(name, "deterministic_policy", cfg.deterministic_policy, "true, false")
    if not isinstance(cfg.hidden, tuple) or not all(_is_int(h) and h > 0 for h in cfg.hidden):
        raise _invalid(name, "hidden", cfg.hidden, "a tuple of positive integers, e.g. (256, 256, 256)")
    if cfg.activation not in networks.ACTIVATIONS:
        raise _invalid(name, "activation", cfg.activation, ", ".join(networks.ACTIVATIONS))


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
            out.append(_map_pairs(lambda key, leaf=leaf: matrix_noise.sample(key, leaf.shape, leaf.dtype, cfg), keys, size))
        else:
            out.append(_map_pairs(lambda key, leaf=leaf: jax.random.normal(key, leaf.shape, leaf.dtype), keys, leaf.size))
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
    shifted = [leaf if is_matrix(leaf) else leaf + sigma * sign * eps for leaf, eps in zip(leaves, pair_noise)]

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


def estimate_gradient(params, noise: list, shaped_fitness, sigma, cfg, matrix_noise: MatrixNoise):
    """g = 1/(N sigma) sum_i f_i E_i for every leaf, as a params-shaped pytree (ascent direction)."""
    leaves, treedef = jax.tree_util.tree_flatten(params)
    n = shaped_fitness.shape[0]
    weights = noise_lib.pair_weights(shaped_fitness).astype(leaves[0].dtype)
    grads = []
    for leaf, eps in zip(leaves, noise):
        if is_matrix(leaf):
            g = matrix_noise.gradient(eps, weights, cfg)
        else:
            g = jnp.tensordot(weights, eps, axes=1)
        grads.append(g / (n * sigma))
    return jax.tree_util.tree_unflatten(treedef, grads)


def lr_schedule(cfg: ESConfig) -> optax.Schedule:
    return optax.exponential_decay(cfg.learning_rate, transition_steps=1, decay_rate=cfg.lr_decay)


def make_optimizer(cfg: ESConfig) -> optax.GradientTransformation:
    lr = lr_schedule(cfg)
    if cfg.optimizer == "sgd":
        return optax.sgd(lr)
    if cfg.optimizer == "adam":
        return optax.adam(lr)
    return optax.adamw(lr, weight_decay=cfg.weight_decay)


def sigma_at(cfg: ESConfig, generation: jax.Array) -> jax.Array:
    return jnp.float32(cfg.sigma) * jnp.power(jnp.float32(cfg.sigma_decay), generation.astype(jnp.float32))


def init(key: jax.Array, env: Env, cfg: ESConfig) -> ESState:
    cfg.validate()
    params_key, noise_key, run_key = jax.random.split(key, 3)
    params = networks.init_policy(params_key, env.spec.obs_dim, env.spec.action, cfg.hidden)
    opt_state = make_optimizer(cfg).init(params)
    return ESState(params, opt_state, run_key, noise_key, jnp.zeros((), jnp.int32))


def update(state: ESState, env: Env, cfg: ESConfig, matrix_noise: MatrixNoise) -> tuple[ESState, dict]:
    """One generation: perturb, evaluate, shape fitness, estimate the gradient, step the optimizer."""
    t = state.generation
    sigma = sigma_at(cfg, t)
    key, episode_key = jax.random.split(state.key)
    n_pairs = cfg.pop_size // 2
    noise = draw_noise(state.noise_root, t, state.params, n_pairs, cfg, matrix_noise)

    def fitness(member_params, matmul, member_key):
        def act_fn(obs, act_key):
            return networks.act(
                member_params, obs, act_key, env.spec.action, cfg.deterministic_policy, cfg.activation, matmul
            )

        stats = evaluate.run_episodes(member_key, env, act_fn, cfg.n_parallel_evaluations)
        return jnp.mean(stats.returns), jnp.sum(stats.lengths)

    # Common random numbers: both members of a pair run the same episode keys.
    member_keys = jnp.repeat(jax.random.split(episode_key, n_pairs), 2, axis=0)
    returns, lengths = population_map(fitness, state.params, noise, sigma, cfg, matrix_noise, member_keys)

    shaped = noise_lib.shape_fitness(returns, cfg.rank_transform)
    grad = estimate_gradient(state.params, noise, shaped, sigma, cfg, matrix_noise)
    updates, opt_state = make_optimizer(cfg).update(jax.tree_util.tree_map(jnp.negative, grad), state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)

    metrics = {
        "train_return": jnp.mean(returns),
        "valid_env_steps": jnp.sum(lengths),
        "fitness_std": jnp.std(returns),
        "fitness_max": jnp.max(returns),
        "sigma": sigma,
        "lr": lr_schedule(cfg)(t).astype(jnp.float32),
        "grad_norm": optax.tree.norm(grad).astype(jnp.float32),
        "param_norm": optax.tree.norm(params).astype(jnp.float32),
    }
    metrics = as_metrics(metrics)
    return ESState(params, opt_state, key, state.noise_root, t + 1), metrics


def as_metrics(metrics: dict) -> dict:
    """float32 metrics, except valid_env_steps: an exact int32 (float32 loses counts above 2^24 per generation)."""
    return {k: v if k == "valid_env_steps" else jnp.asarray(v, jnp.float32) for k, v in metrics.items()}


def policy(state: ESState) -> dict:
    return state.params


def env_steps_per_update(env: Env, cfg: ESConfig) -> int:
    """Simulated transitions per generation, masked steps after an episode's end included."""
    return int(cfg.pop_size) * int(cfg.n_parallel_evaluations) * int(env.spec.max_episode_steps)
