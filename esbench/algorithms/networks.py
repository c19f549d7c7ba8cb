"""The policy network every algorithm trains: an MLP with `pqn` activations.

Parameters are a plain pytree so that ES can perturb them leaf by leaf:

    {"layers": [{"w": f32[out, in], "b": f32[out]}, ...],   # y = x w^T + b
     "log_std": f32[action_dim],                              # continuous actions only
     "obs_norm": {"mean": f32[obs_dim], "var": f32[obs_dim]}} # optional (PPO)

`forward` takes an optional `matmul(layer_index, w, x)` so that EGGROLL and
OpenES can inject their matrix perturbations without a second network
definition.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import jax
import jax.numpy as jnp

from esbench.envs.core import ActionSpace, Box, Discrete

DEFAULT_HIDDEN = (256, 256, 256)
LAYER_NORM_EPS = 1e-5
LOG_STD_INIT = -0.5
MatMul = Callable[[int, jax.Array, jax.Array], jax.Array]


def dense_matmul(layer_index: int, w: jax.Array, x: jax.Array) -> jax.Array:
    return x @ w.T


def pqn(x: jax.Array) -> jax.Array:
    """relu after a parameter-free layer norm (the paper's `pqn` activation)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return jax.nn.relu((x - mean) * jax.lax.rsqrt(var + LAYER_NORM_EPS))


ACTIVATIONS = {"pqn": pqn, "relu": jax.nn.relu, "tanh": jnp.tanh}


def output_dim(action: ActionSpace) -> int:
    return action.n if isinstance(action, Discrete) else action.dim


def init_mlp(key: jax.Array, sizes: Sequence[int], output_scale: float = 0.01) -> list[dict]:
    """Lecun-normal hidden layers and a small output layer (a near-uniform initial policy)."""
    layers = []
    keys = jax.random.split(key, len(sizes) - 1)
    for i, (k, n_in, n_out) in enumerate(zip(keys, sizes[:-1], sizes[1:])):
        scale = output_scale if i == len(sizes) - 2 else 1.0
        w = jax.random.normal(k, (n_out, n_in), jnp.float32) * (scale / jnp.sqrt(n_in))
        layers.append({"w": w, "b": jnp.zeros((n_out,), jnp.float32)})
    return layers


def init_policy(
    key: jax.Array,
    obs_dim: int,
    action: ActionSpace,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    obs_norm: bool = False,
) -> dict:
    params = {"layers": init_mlp(key, [obs_dim, *hidden, output_dim(action)])}
    if isinstance(action, Box):
        params["log_std"] = jnp.full((action.dim,), LOG_STD_INIT, jnp.float32)
    if obs_norm:
        params["obs_norm"] = {"mean": jnp.zeros((obs_dim,), jnp.float32), "var": jnp.ones((obs_dim,), jnp.float32)}
    return params


def normalize_obs(params: dict, obs: jax.Array) -> jax.Array:
    if "obs_norm" not in params:
        return obs
    stats = params["obs_norm"]
    return jnp.clip((obs - stats["mean"]) * jax.lax.rsqrt(stats["var"] + 1e-8), -10.0, 10.0)


def mlp(layers: list[dict], x: jax.Array, activation: str = "pqn", matmul: Optional[MatMul] = None) -> jax.Array:
    matmul = matmul or dense_matmul
    act = ACTIVATIONS[activation]
    for i, layer in enumerate(layers):
        x = matmul(i, layer["w"], x) + layer["b"]
        if i < len(layers) - 1:
            x = act(x)
    return x


def forward(params: dict, obs: jax.Array, activation: str = "pqn", matmul: Optional[MatMul] = None) -> jax.Array:
    """Logits (discrete) or action means (continuous) for one observation or a batch."""
    return mlp(params["layers"], normalize_obs(params, obs), activation, matmul)


def log_prob(action_space: ActionSpace, params: dict, out: jax.Array, action: jax.Array) -> jax.Array:
    if isinstance(action_space, Discrete):
        return jnp.take_along_axis(jax.nn.log_softmax(out), action[..., None].astype(jnp.int32), axis=-1)[..., 0]
    log_std = params["log_std"]
    z = (action - out) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def entropy(action_space: ActionSpace, params: dict, out: jax.Array) -> jax.Array:
    if isinstance(action_space, Discrete):
        logp = jax.nn.log_softmax(out)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    return jnp.sum(params["log_std"] + 0.5 * jnp.log(2 * jnp.pi * jnp.e)) * jnp.ones(out.shape[:-1])


def sample_action(action_space: ActionSpace, params: dict, out: jax.Array, key: jax.Array, deterministic: bool):
    """Unclipped action: argmax / mean when deterministic, else a sample."""
    if isinstance(action_space, Discrete):
        if deterministic:
            return jnp.argmax(out, axis=-1).astype(jnp.int32)
        return jax.random.categorical(key, out).astype(jnp.int32)
    if deterministic:
        return out
    return out + jnp.exp(params["log_std"]) * jax.random.normal(key, out.shape)


def clip_action(action_space: ActionSpace, action: jax.Array) -> jax.Array:
    if isinstance(action_space, Box):
        return jnp.clip(action, jnp.asarray(action_space.low), jnp.asarray(action_space.high))
    return action


def act(
    params: dict,
    obs: jax.Array,
    key: jax.Array,
    action_space: ActionSpace,
    deterministic: bool,
    activation: str = "pqn",
    matmul: Optional[MatMul] = None,
) -> jax.Array:
    """The action the env receives: sampled or deterministic, clipped to a Box's bounds."""
    out = forward(params, obs, activation, matmul)
    return clip_action(action_space, sample_action(action_space, params, out, key, deterministic))
