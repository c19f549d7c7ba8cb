"""Counter-based noise keys, antithetic pairing and fitness shaping shared by every ES.

Population layout (HyperscaleES noisers): N members, N even; member i belongs to the
antithetic pair j = i // 2 and carries the sign s = +1 for even i, -1 for odd i.
Both members of a pair use the same noise, so it is drawn once per pair.

Every perturbation is regenerated from `noise_key(root, param_index, t, j)`,
so no perturbation has to be stored for the whole population: the forward
pass and the gradient estimate draw the same numbers from the same key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def noise_key(root: jax.Array, param_index: int, generation: jax.Array, pair: jax.Array) -> jax.Array:
    """The key of pair `pair`'s noise for parameter leaf `param_index` in generation `generation`."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(root, param_index), generation), pair)


def pair_keys(root: jax.Array, param_index: int, generation: jax.Array, n_pairs: int) -> jax.Array:
    """`noise_key` for pairs 0 .. n_pairs-1, stacked along axis 0."""
    return jax.vmap(lambda j: noise_key(root, param_index, generation, j))(
        jnp.arange(n_pairs, dtype=jnp.uint32)
    )


def pair_index(member: jax.Array) -> jax.Array:
    return member // 2


def member_sign(member: jax.Array) -> jax.Array:
    """+1 for even members, -1 for odd members."""
    return jnp.where(member % 2 == 0, 1.0, -1.0)


# The two signs of a pair, in member order (member 2j has +1, member 2j+1 has -1).
PAIR_SIGNS = (1.0, -1.0)


def pair_weights(shaped_fitness: jax.Array) -> jax.Array:
    """sum_i f_i s_i grouped by pair: w_j = f_{2j} - f_{2j+1}.

    With E_i = s_i E_j, sum_i f_i E_i = sum_j w_j E_j, so gradients need only
    one noise sample per pair.
    """
    return shaped_fitness[0::2] - shaped_fitness[1::2]


def centered_ranks(fitness: jax.Array) -> jax.Array:
    """Ranks scaled to [-0.5, 0.5]; ties share their average rank (equal returns get equal weight)."""
    n = fitness.shape[-1]
    ranks = jax.scipy.stats.rankdata(fitness, method="average", axis=-1) - 1.0
    return (ranks / max(n - 1, 1) - 0.5).astype(fitness.dtype)


ZSCORE_EPS = 1e-5  # the official `convert_fitnesses`


def zscore(fitness: jax.Array) -> jax.Array:
    """(f - mean) / sqrt(var + 1e-5) across the population, as HyperscaleES's `convert_fitnesses`."""
    mean = jnp.mean(fitness, axis=-1, keepdims=True)
    var = jnp.var(fitness, axis=-1, keepdims=True)
    return (fitness - mean) / jnp.sqrt(var + ZSCORE_EPS)


def shape_fitness(fitness: jax.Array, rank_transform) -> jax.Array:
    """Centered ranks or z-scores; `rank_transform` may be a traced boolean (both computed, one selected)."""
    if isinstance(rank_transform, bool):
        return centered_ranks(fitness) if rank_transform else zscore(fitness)
    return jnp.where(rank_transform, centered_ranks(fitness), zscore(fitness))
