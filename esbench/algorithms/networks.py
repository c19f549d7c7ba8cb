"""The policy networks every algorithm trains, and the policy settings every Config embeds.

Parameters are a plain pytree so that ES can perturb them leaf by leaf:

    {"layers": [{"w": f32[out, in], "b"?: f32[out]}, ...],   # y = x w^T (+ b)
     "log_std": f32[action_dim],                               # continuous actions only
     "obs_norm": {"mean", "var": f32[obs_dim], "clip": f32}}   # PPO's observation statistics

The forward pass is one MLP (activation after every layer but the last); the
three networks differ in their layers and initialisation (`network`):

    hyperscalees  the official EGGROLL policy (HyperscaleES `models/rl.py`, ActorCriticMLP):
                  a bias-free obs embedding (obs -> layer_size), then `n_layers`
                  Linear(layer_size -> layer_size) with bias, the activation after each,
                  then the action head with bias; every matrix N(0, 1) / sqrt(fan_in),
                  biases 0, log_std 0. What EGGROLL and OpenES train by default.
    rejax         rejax 0.1.3's actor (the paper's PPO): `n_layers` Dense(layer_size) with
                  bias and the activation after each, then the head; flax's default
                  Dense initialisation (lecun normal, truncated; zero bias) everywhere,
                  log_std 0. What PPO trains by default; the critic has the same body.
    esbench       esbench's network before it followed the paper (0.1): `n_layers` biased
                  layers N(0, 1) / sqrt(fan_in), the head scaled by 0.01, log_std -0.5.

`forward` takes an optional `matmul(layer_index, w, x)` so that EGGROLL and
OpenES can inject their matrix perturbations without a second network.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Literal, Optional

import jax
import jax.numpy as jnp

from esbench import paper
from esbench.envs.core import ActionSpace, Box, Discrete
from esbench.validation import rule, validate

NetworkName = Literal["hyperscalees", "rejax", "esbench"]
ActivationName = Literal["pqn", "relu", "tanh"]
LAYER_NORM_EPS = 1e-5
OBS_NORM_EPS = 1e-8
MatMul = Callable[[int, jax.Array, jax.Array], jax.Array]
_PAPER_NETWORK = paper.network()  # Tables 17-34: 3 layers of 256, pqn, for every method


@dataclasses.dataclass(frozen=True)
class PolicySettings:
    """The policy an algorithm trains and evaluates; every algorithm's Config inherits these fields."""

    network: NetworkName = "hyperscalees"
    layer_size: int = dataclasses.field(
        default=_PAPER_NETWORK["layer_size"], metadata=rule(lambda v: v >= 1, "an integer >= 1")
    )
    n_layers: int = dataclasses.field(
        default=_PAPER_NETWORK["n_layers"], metadata=rule(lambda v: v >= 1, "an integer >= 1")
    )
    activation: ActivationName = _PAPER_NETWORK["activation"]
    deterministic_policy: bool = (
        False  # argmax / mean actions (ES members and evaluation; PPO: evaluation only)
    )

    def validate(self, owner: str = "policy") -> None:
        validate(self, owner)


def dense_matmul(layer_index: int, w: jax.Array, x: jax.Array) -> jax.Array:
    return x @ w.T


def pqn(x: jax.Array) -> jax.Array:
    """relu after a parameter-free layer norm (the paper's `pqn`; HyperscaleES `models/common.py`)."""
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.var(x, axis=-1, keepdims=True)
    return jax.nn.relu((x - mean) / jnp.sqrt(var + LAYER_NORM_EPS))


ACTIVATIONS = {"pqn": pqn, "relu": jax.nn.relu, "tanh": jnp.tanh}


def output_dim(action: ActionSpace) -> int:
    return action.n if isinstance(action, Discrete) else action.dim


# ---------------------------------------------------------------- initialisation


def _normal_over_sqrt_fan_in(key, n_out: int, n_in: int, scale: float = 1.0) -> jax.Array:
    # the official MM.rand_init: normal(key, (out, in)) * 1 / sqrt(in)
    return jax.random.normal(key, (n_out, n_in)) * (scale / jnp.sqrt(n_in))


def _lecun_normal(key, n_out: int, n_in: int) -> jax.Array:
    # flax's nn.Dense default kernel_init, drawn in flax's (in, out) layout
    return jax.nn.initializers.lecun_normal()(key, (n_in, n_out), jnp.float32).T


def _layer(w: jax.Array, bias: bool = True) -> dict:
    return {"w": w, "b": jnp.zeros((w.shape[0],), jnp.float32)} if bias else {"w": w}


def _hyperscalees_layers(key, obs_dim: int, n_out: int, settings: PolicySettings) -> list[dict]:
    # ActorCriticMLP.rand_init: key -> (obs, act head, mlp, critic head) keys; the mlp key splits per Linear
    obs_key, head_key, mlp_key, _ = jax.random.split(key, 4)
    size = settings.layer_size
    layers = [_layer(_normal_over_sqrt_fan_in(obs_key, size, obs_dim), bias=False)]
    layers += [
        _layer(_normal_over_sqrt_fan_in(k, size, size)) for k in jax.random.split(mlp_key, settings.n_layers)
    ]
    return layers + [_layer(_normal_over_sqrt_fan_in(head_key, n_out, size))]


def _rejax_layers(key, obs_dim: int, n_out: int, settings: PolicySettings) -> list[dict]:
    sizes = [obs_dim] + [settings.layer_size] * settings.n_layers + [n_out]
    keys = jax.random.split(key, len(sizes) - 1)
    return [_layer(_lecun_normal(k, n_out_, n_in)) for k, n_in, n_out_ in zip(keys, sizes[:-1], sizes[1:])]


def _esbench_layers(
    key, obs_dim: int, n_out: int, settings: PolicySettings, output_scale: float
) -> list[dict]:
    sizes = [obs_dim] + [settings.layer_size] * settings.n_layers + [n_out]
    keys = jax.random.split(key, len(sizes) - 1)
    last = len(sizes) - 2
    return [
        _layer(_normal_over_sqrt_fan_in(k, o, i, output_scale if n == last else 1.0))
        for n, (k, i, o) in enumerate(zip(keys, sizes[:-1], sizes[1:]))
    ]


def init_layers(key, obs_dim: int, n_out: int, settings: PolicySettings, head: str = "policy") -> list[dict]:
    """The MLP layers of `settings.network` from obs_dim to n_out; `head` "value" for a critic."""
    if settings.network == "hyperscalees":
        return _hyperscalees_layers(key, obs_dim, n_out, settings)
    if settings.network == "rejax":
        return _rejax_layers(key, obs_dim, n_out, settings)
    return _esbench_layers(key, obs_dim, n_out, settings, output_scale=0.01 if head == "policy" else 1.0)


LOG_STD_INIT = {"hyperscalees": 0.0, "rejax": 0.0, "esbench": -0.5}


def init_policy(key: jax.Array, obs_dim: int, action: ActionSpace, settings: PolicySettings) -> dict:
    params = {"layers": init_layers(key, obs_dim, output_dim(action), settings)}
    if isinstance(action, Box):
        params["log_std"] = jnp.full((action.dim,), LOG_STD_INIT[settings.network], jnp.float32)
    return params


def init_value(key: jax.Array, obs_dim: int, settings: PolicySettings) -> list[dict]:
    """A critic with the policy's body and a scalar head."""
    return init_layers(key, obs_dim, 1, settings, head="value")


# ---------------------------------------------------------------- forward pass


def obs_norm_params(mean: jax.Array, var: jax.Array, clip: float | None) -> dict:
    """The "obs_norm" entry of a policy's params: (obs - mean) / sqrt(var + 1e-8), clipped to +-clip (inf: not)."""
    stats = {"mean": mean, "var": var}
    if clip is not None and math.isfinite(clip):
        stats["clip"] = jnp.asarray(clip, jnp.float32)
    return {"obs_norm": stats}


def normalize_obs(params: dict, obs: jax.Array) -> jax.Array:
    if "obs_norm" not in params:
        return obs
    stats = params["obs_norm"]
    z = (obs - stats["mean"]) / jnp.sqrt(stats["var"] + OBS_NORM_EPS)
    return jnp.clip(z, -stats["clip"], stats["clip"]) if "clip" in stats else z


def mlp(
    layers: list[dict], x: jax.Array, activation: str = "pqn", matmul: Optional[MatMul] = None
) -> jax.Array:
    matmul = matmul or dense_matmul
    act = ACTIVATIONS[activation]
    for i, layer in enumerate(layers):
        x = matmul(i, layer["w"], x)
        if "b" in layer:
            x = x + layer["b"]
        if i < len(layers) - 1:
            x = act(x)
    return x


def forward(
    params: dict, obs: jax.Array, activation: str = "pqn", matmul: Optional[MatMul] = None
) -> jax.Array:
    """Logits (discrete) or action means (continuous) for one observation or a batch."""
    return mlp(params["layers"], normalize_obs(params, obs), activation, matmul)


def log_prob(action_space: ActionSpace, params: dict, out: jax.Array, action: jax.Array) -> jax.Array:
    if isinstance(action_space, Discrete):
        return jnp.take_along_axis(jax.nn.log_softmax(out), action[..., None].astype(jnp.int32), axis=-1)[
            ..., 0
        ]
    log_std = params["log_std"]
    z = (action - out) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * jnp.log(2 * jnp.pi), axis=-1)


def entropy(action_space: ActionSpace, params: dict, out: jax.Array) -> jax.Array:
    if isinstance(action_space, Discrete):
        logp = jax.nn.log_softmax(out)
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    return jnp.sum(params["log_std"] + 0.5 * jnp.log(2 * jnp.pi * jnp.e)) * jnp.ones(out.shape[:-1])


def sample_action(action_space: ActionSpace, params: dict, out: jax.Array, key: jax.Array, deterministic):
    """Unclipped action: argmax / mean when deterministic, else a sample.

    `deterministic` may be a traced boolean (a vectorised hyperparameter): both
    are then computed and one is selected.
    """
    if isinstance(action_space, Discrete):
        greedy = jnp.argmax(out, axis=-1).astype(jnp.int32)
        if deterministic is True:
            return greedy
        sampled = jax.random.categorical(key, out).astype(jnp.int32)
    else:
        greedy = out
        if deterministic is True:
            return greedy
        sampled = out + jnp.exp(params["log_std"]) * jax.random.normal(key, out.shape)
    return sampled if deterministic is False else jnp.where(deterministic, greedy, sampled)


def clip_action(action_space: ActionSpace, action: jax.Array) -> jax.Array:
    if isinstance(action_space, Box):
        return jnp.clip(action, jnp.asarray(action_space.low), jnp.asarray(action_space.high))
    return action


def act(
    params: dict,
    obs: jax.Array,
    key: jax.Array,
    action_space: ActionSpace,
    deterministic,
    activation: str = "pqn",
    matmul: Optional[MatMul] = None,
) -> jax.Array:
    """The action the env receives: sampled or deterministic, clipped to a Box's bounds."""
    out = forward(params, obs, activation, matmul)
    return clip_action(action_space, sample_action(action_space, params, out, key, deterministic))
