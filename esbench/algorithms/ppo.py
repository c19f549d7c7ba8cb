"""PPO (clipped surrogate, GAE, minibatch epochs), in two flavours.

One `update` is one PPO iteration, and reads like the algorithm:

    1. roll out the current actor for `num_steps` steps in `num_envs` parallel envs
       (observations normalised by running statistics updated after every step);
    2. compute GAE advantages and value targets, bootstrapping from the critic
       at the last observation;
    3. for `num_epochs` epochs, shuffle the batch into `num_minibatches`
       minibatches and take one gradient step per minibatch on the clipped
       surrogate + value loss - entropy bonus.

The actor and the critic are separate MLPs with their own adam optimiser
(so, adam being scale-invariant, `vf_coef` acts only through the critic's
gradient clip), and advantages are normalised per minibatch.

`flavour` "rejax" is rejax 0.1.3's PPO, which the paper ran (`algos/ppo.py`,
`algos/mixins.py`): the value loss clipped to `clip_eps` around the old value;
each gradient element clipped to +-max_grad_norm (`optax.clip`); adam with
optax's eps 1e-8; observation statistics starting at count 1e-4, mean 0,
var 1, not clipped; reward scaling from rejax's discounted-return
statistics. `flavour` "esbench" is esbench's own PPO (0.1), which learns
CartPole faster: an unclipped value loss (with unnormalised rewards the clip
caps how far the critic moves per iteration: 0.2 against CartPole value
targets of ~100), global-norm clipping, adam eps 1e-5, statistics from the
first observations, clipped to +-10. The network (`network`, default
rejax's: flax's default initialisation, log_std 0) is chosen apart.

Time-limit ends are treated as terminal by default, as in rejax and
PureJaxRL. `bootstrap_truncation=True` instead adds gamma * V(final obs) to
the reward of a truncated step (the env reports the pre-reset obs in
`info.final_obs`), so the critic does not learn that a time limit is the end
of the world: it matters on envs that only ever truncate (Pendulum, brax).

Everything lives in `State` (PRNG key, env states, last observations,
normalisation statistics), so `update` is pure and the runner can vmap it
over seeds and loop it inside one jit.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from esbench import paper
from esbench.algorithms import as_metrics, networks
from esbench.algorithms.networks import NetworkName, PolicySettings
from esbench.envs.core import Env
from esbench.validation import default_from, invalid, rule, validate

LABEL = "PPO"


_CARTPOLE = paper.row("ppo", "CartPole-v1")  # the defaults: the paper's PPO CartPole-v1 row (Table 33)
_AT_LEAST_ONE = rule(lambda v: v >= 1, "an integer >= 1")
_POSITIVE = rule(lambda v: v > 0, "a number > 0")
_NON_NEGATIVE = rule(lambda v: v >= 0, "a number >= 0")
_DISCOUNT = rule(lambda v: 0 < v <= 1, "a number in (0, 1]")
RULES = {
    "num_envs": _AT_LEAST_ONE,
    "num_steps": _AT_LEAST_ONE,
    "num_epochs": _AT_LEAST_ONE,
    "num_minibatches": _AT_LEAST_ONE,
    "learning_rate": _POSITIVE,
    "gamma": _DISCOUNT,
    "gae_lambda": rule(lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "clip_eps": _POSITIVE,
    "ent_coef": _NON_NEGATIVE,
    "vf_coef": _NON_NEGATIVE,
    "max_grad_norm": _POSITIVE,
    "rew_norm_discount": _DISCOUNT,
}


def _row(name: str, kind: type = int) -> dataclasses.Field:
    return default_from(_CARTPOLE, name, kind, RULES)


@dataclasses.dataclass(frozen=True)
class Config(PolicySettings):
    """PPO hyperparameters; the paper's names (Tables 16, 33, 34); defaults: its CartPole-v1 row."""

    network: NetworkName = "rejax"
    num_envs: int = _row("num_envs")
    num_steps: int = _row("num_steps")
    num_epochs: int = _row("num_epochs")
    num_minibatches: int = _row("num_minibatches")
    learning_rate: float = _row("learning_rate", float)
    gamma: float = _row("gamma", float)
    gae_lambda: float = _row("gae_lambda", float)
    clip_eps: float = _row("clip_eps", float)
    ent_coef: float = _row("ent_coef", float)
    vf_coef: float = _row("vf_coef", float)
    max_grad_norm: float = _row("max_grad_norm", float)
    normalize_obs: bool = _row("normalize_obs", bool)
    normalize_rew: bool = _row("normalize_rew", bool)
    rew_norm_discount: float = _row("rew_norm_discount", float)
    flavour: Literal["rejax", "esbench"] = "rejax"  # see the module doc
    bootstrap_truncation: bool = False  # True: bootstrap from V(final obs) at time limits (module doc)
    anneal_lr: bool = False  # linear to 0 at anneal_env_steps (the runner fills in the trial's budget)
    anneal_env_steps: int = dataclasses.field(default=0, metadata=rule(lambda v: v >= 0, "an integer >= 0"))

    @property
    def minibatch_size(self) -> int:
        return self.num_envs * self.num_steps // self.num_minibatches

    def validate(self, owner: str = "ppo") -> "Config":
        validate(self, owner)
        batch = self.num_envs * self.num_steps
        if batch % self.num_minibatches:
            raise invalid(
                owner, "num_minibatches", self.num_minibatches, f"a divisor of num_envs * num_steps = {batch}"
            )
        if self.anneal_lr and self.anneal_env_steps < batch:
            raise invalid(
                owner,
                "anneal_env_steps",
                self.anneal_env_steps,
                f"the training budget in env steps, >= num_envs * num_steps = {batch} (needed when anneal_lr is true)",
            )
        return self


@dataclasses.dataclass(frozen=True)
class Flavour:
    clip_value_loss: bool
    elementwise_grad_clip: bool  # optax.clip (rejax) rather than optax.clip_by_global_norm
    adam_eps: float
    stats_prior_count: float  # running statistics start at (mean 0, var 1, this count)
    stats_include_reset_obs: bool
    obs_clip: float


FLAVOURS = {
    "rejax": Flavour(
        clip_value_loss=True,
        elementwise_grad_clip=True,
        adam_eps=1e-8,
        stats_prior_count=1e-4,
        stats_include_reset_obs=False,
        obs_clip=math.inf,
    ),
    "esbench": Flavour(
        clip_value_loss=False,
        elementwise_grad_clip=False,
        adam_eps=1e-5,
        stats_prior_count=0.0,
        stats_include_reset_obs=True,
        obs_clip=10.0,
    ),
}


# ---------------------------------------------------------------------------
# Running statistics (observation and reward normalisation)


@struct.dataclass
class RunningStats:
    """Mean and (population) variance of every sample merged so far (plus a prior of `count` at mean 0, var 1)."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array  # f32 scalar


def init_stats(shape: tuple[int, ...], prior_count: float = 0.0) -> RunningStats:
    return RunningStats(
        jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.asarray(prior_count, jnp.float32)
    )


def update_stats(stats: RunningStats, batch: jax.Array) -> RunningStats:
    """Merge a batch (leading axis = samples) into the statistics (Chan et al.'s parallel update).

    From count 0 the result is exactly the batch's mean and variance, so the
    initial mean 0 / var 1 never leak into the estimate.
    """
    n = jnp.asarray(batch.shape[0], jnp.float32)
    batch_mean = jnp.mean(batch, axis=0)
    batch_var = jnp.var(batch, axis=0)
    total = stats.count + n
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * (n / total)
    m2 = stats.var * stats.count + batch_var * n + delta**2 * (stats.count * n / total)
    return RunningStats(mean, m2 / total, total)


def normalize(state: "State", obs: jax.Array) -> jax.Array:
    """Exactly what `networks.forward` does with `policy(state)`'s "obs_norm" (identity without statistics)."""
    return networks.normalize_obs(policy(state), obs)


# ---------------------------------------------------------------------------
# State


@struct.dataclass
class State:
    actor: dict  # networks layout without obs_norm: {"layers": [...], "log_std"?: ...}
    critic: list  # mlp layers, scalar output
    actor_opt: Any
    critic_opt: Any
    obs_stats: RunningStats | None  # None unless normalize_obs
    obs_clip: float = struct.field(
        pytree_node=False
    )  # normalised observations are clipped to +-obs_clip (the flavour's)
    rew_stats: RunningStats | None  # of the discounted return; None unless normalize_rew
    discounted_return: jax.Array | None  # f32[num_envs]; None unless normalize_rew
    env_state: Any  # batched EnvState
    obs: jax.Array  # f32[num_envs, obs_dim], raw last observations
    key: jax.Array
    train_return: jax.Array  # last finite mean training-episode return
    iteration: jax.Array


class Transition(NamedTuple):
    obs: jax.Array  # normalised, as the actor saw it
    action: jax.Array  # unclipped sample (log-probs refer to it)
    log_prob: jax.Array
    value: jax.Array
    reward: jax.Array  # normalised if normalize_rew
    done: jax.Array


class Batch(NamedTuple):
    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    advantage: jax.Array
    target: jax.Array


def _optimizer(cfg: Config) -> optax.GradientTransformation:
    lr = cfg.learning_rate
    if cfg.anneal_lr:
        # One optimiser step per minibatch; decays to 0 at the end of the budget.
        n_updates = cfg.anneal_env_steps // (cfg.num_envs * cfg.num_steps)
        lr = optax.linear_schedule(cfg.learning_rate, 0.0, n_updates * cfg.num_epochs * cfg.num_minibatches)
    flavour = FLAVOURS[cfg.flavour]
    clip = (
        optax.clip(cfg.max_grad_norm)
        if flavour.elementwise_grad_clip
        else optax.clip_by_global_norm(cfg.max_grad_norm)
    )
    return optax.chain(clip, optax.adam(lr, eps=flavour.adam_eps))


def env_steps_per_update(env: Env, cfg: Config) -> int:
    return cfg.num_envs * cfg.num_steps


min_env_steps_per_update = env_steps_per_update  # every update spends exactly its batch
# Config fields that only change values, not shapes (see es.VALUE_FIELDS).
VALUE_FIELDS = (
    "learning_rate",
    "gamma",
    "gae_lambda",
    "clip_eps",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "rew_norm_discount",
    "deterministic_policy",
)


def init(key: jax.Array, env: Env, cfg: Config) -> State:
    spec = env.spec
    flavour = FLAVOURS[cfg.flavour]
    key, actor_key, critic_key, reset_key = jax.random.split(key, 4)
    actor = networks.init_policy(actor_key, spec.obs_dim, spec.action, cfg)
    critic = networks.init_value(critic_key, spec.obs_dim, cfg)
    tx = _optimizer(cfg)
    obs, env_state = jax.vmap(env.reset)(jax.random.split(reset_key, cfg.num_envs))
    obs_stats = None
    if cfg.normalize_obs:
        obs_stats = init_stats((spec.obs_dim,), flavour.stats_prior_count)
        if flavour.stats_include_reset_obs:
            obs_stats = update_stats(obs_stats, obs)
    return State(
        actor=actor,
        critic=critic,
        actor_opt=tx.init(actor),
        critic_opt=tx.init(critic),
        obs_stats=obs_stats,
        obs_clip=flavour.obs_clip,
        rew_stats=init_stats((), flavour.stats_prior_count) if cfg.normalize_rew else None,
        discounted_return=jnp.zeros((cfg.num_envs,), jnp.float32) if cfg.normalize_rew else None,
        env_state=env_state,
        obs=obs,
        key=key,
        train_return=jnp.zeros((), jnp.float32),
        iteration=jnp.zeros((), jnp.int32),
    )


def policy(state: State) -> dict:
    """Actor params in `networks` layout, with the observation statistics training used.

    With normalize_obs off there are no statistics (`obs_stats` is None) and no
    "obs_norm", so `networks.forward` sees raw observations as training did.
    """
    if state.obs_stats is None:
        return dict(state.actor)
    return {
        **state.actor,
        **networks.obs_norm_params(state.obs_stats.mean, state.obs_stats.var, state.obs_clip),
    }


def value_fn(critic: list, obs: jax.Array, activation: str) -> jax.Array:
    return networks.mlp(critic, obs, activation)[..., 0]


# ---------------------------------------------------------------------------
# 1. Rollout


def rollout(state: State, env: Env, cfg: Config, keep_raw_obs: bool = False):
    """`num_steps` steps of `num_envs` envs with the current actor.

    Returns (state, transitions [T, N, ...], infos [T, N]); with `keep_raw_obs`
    also the raw observations received [T, N, obs_dim] (for tests), and the
    infos keep `final_obs` (otherwise dropped, it would double the stored obs).
    """
    space = env.spec.action

    def step(carry, _):
        state = carry
        key, act_key, env_key = jax.random.split(state.key, 3)
        obs = normalize(state, state.obs)
        out = networks.mlp(state.actor["layers"], obs, cfg.activation)
        action = networks.sample_action(space, state.actor, out, act_key, deterministic=False)
        log_prob = networks.log_prob(space, state.actor, out, action)
        value = value_fn(state.critic, obs, cfg.activation)
        env_action = networks.clip_action(space, action)
        next_obs, env_state, reward, done, info = jax.vmap(env.step)(
            jax.random.split(env_key, cfg.num_envs), state.env_state, env_action
        )
        obs_stats = update_stats(state.obs_stats, next_obs) if cfg.normalize_obs else state.obs_stats
        rew_stats, discounted = state.rew_stats, state.discounted_return
        if cfg.normalize_rew:
            # Scale rewards by the running std of the discounted return (as gym's NormalizeReward).
            if cfg.flavour == "rejax":  # rejax's update_rew_rms: this step's done cuts the past off
                discounted = reward + (1.0 - done) * cfg.rew_norm_discount * discounted
            else:
                discounted = discounted * cfg.rew_norm_discount + reward
            rew_stats = update_stats(rew_stats, discounted)
            reward = reward / jnp.sqrt(rew_stats.var + 1e-8)
            if cfg.flavour != "rejax":
                discounted = jnp.where(done, 0.0, discounted)
        if cfg.bootstrap_truncation:
            # Normalised with the same statistics as `obs`, so V sees what it saw for `value`.
            final_value = value_fn(state.critic, normalize(state, info.final_obs), cfg.activation)
            reward = reward + cfg.gamma * jnp.where(info.truncated, final_value, 0.0)
        state = state.replace(
            key=key,
            env_state=env_state,
            obs=next_obs,
            obs_stats=obs_stats,
            rew_stats=rew_stats,
            discounted_return=discounted,
        )
        transition = Transition(obs, action, log_prob, value, reward, done)
        if not keep_raw_obs:
            info = info._replace(final_obs=None)
        return state, (transition, info, next_obs if keep_raw_obs else None)

    state, (traj, info, raw_obs) = jax.lax.scan(step, state, None, length=cfg.num_steps)
    if keep_raw_obs:
        return state, traj, info, raw_obs
    return state, traj, info


# ---------------------------------------------------------------------------
# 2. Generalised advantage estimation


def gae(
    reward: jax.Array, value: jax.Array, done: jax.Array, last_value: jax.Array, gamma: float, lam: float
) -> tuple[jax.Array, jax.Array]:
    """Advantages and value targets for time-major [T, N] arrays.

    `done[t]` ends the episode after step t, so neither the next value nor
    the later advantages flow back across it. Truncation is termination here
    too (the obs after a truncated step is the next episode's reset obs);
    with `bootstrap_truncation` the rollout has already folded
    gamma * V(final obs) into such a step's reward.
    """
    not_done = 1.0 - done.astype(jnp.float32)

    def backward(carry, x):
        next_advantage, next_value = carry
        r, v, nd = x
        delta = r + gamma * next_value * nd - v
        advantage = delta + gamma * lam * nd * next_advantage
        return (advantage, v), advantage

    init = (jnp.zeros_like(last_value), last_value)
    _, advantage = jax.lax.scan(backward, init, (reward, value, not_done), reverse=True)
    return advantage, advantage + value


# ---------------------------------------------------------------------------
# 3. Loss and minibatch epochs


def loss(params: dict, batch: Batch, action_space, cfg: Config) -> tuple[jax.Array, dict]:
    """Total PPO loss of one minibatch and its parts.

    params = {"actor": ..., "critic": ...}; the actor's gradient is that of
    policy loss - ent_coef * entropy, the critic's that of vf_coef * value loss.
    """
    actor, critic = params["actor"], params["critic"]
    out = networks.mlp(actor["layers"], batch.obs, cfg.activation)
    log_prob = networks.log_prob(action_space, actor, out, batch.action)
    entropy = jnp.mean(networks.entropy(action_space, actor, out))

    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    adv = (batch.advantage - jnp.mean(batch.advantage)) / (jnp.std(batch.advantage) + 1e-8)
    surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv)
    policy_loss = -jnp.mean(surrogate)

    value = value_fn(critic, batch.obs, cfg.activation)
    value_clipped = batch.value + jnp.clip(value - batch.value, -cfg.clip_eps, cfg.clip_eps)
    if FLAVOURS[cfg.flavour].clip_value_loss:
        value_loss = 0.5 * jnp.mean(
            jnp.maximum((value - batch.target) ** 2, (value_clipped - batch.target) ** 2)
        )
    else:
        value_loss = 0.5 * jnp.mean((value - batch.target) ** 2)

    total = policy_loss - cfg.ent_coef * entropy + cfg.vf_coef * value_loss
    aux = {
        "policy_loss": policy_loss,
        "value_loss": value_loss,
        "entropy": entropy,
        "approx_kl": jnp.mean((ratio - 1) - log_ratio),  # low-variance KL(old || new) estimator
        "clip_frac": jnp.mean((jnp.abs(ratio - 1) > cfg.clip_eps).astype(jnp.float32)),
    }
    return total, aux


def _train_epochs(state: State, batch: Batch, action_space, cfg: Config):
    tx = _optimizer(cfg)
    grad_fn = jax.grad(loss, has_aux=True)

    def minibatch_step(carry, mb):
        params, actor_opt, critic_opt = carry
        grads, aux = grad_fn(params, mb, action_space, cfg)
        # Separate optimisers (and grad-norm clips) for actor and critic, as rejax.
        actor_updates, actor_opt = tx.update(grads["actor"], actor_opt, params["actor"])
        critic_updates, critic_opt = tx.update(grads["critic"], critic_opt, params["critic"])
        params = {
            "actor": optax.apply_updates(params["actor"], actor_updates),
            "critic": optax.apply_updates(params["critic"], critic_updates),
        }
        return (params, actor_opt, critic_opt), aux

    def epoch(carry, key):
        n = cfg.num_envs * cfg.num_steps
        perm = jax.random.permutation(key, n)
        minibatches = jax.tree_util.tree_map(
            lambda x: jnp.take(x, perm, axis=0).reshape(
                cfg.num_minibatches, cfg.minibatch_size, *x.shape[1:]
            ),
            batch,
        )
        return jax.lax.scan(minibatch_step, carry, minibatches)

    key, epoch_key = jax.random.split(state.key)
    carry = ({"actor": state.actor, "critic": state.critic}, state.actor_opt, state.critic_opt)
    (params, actor_opt, critic_opt), aux = jax.lax.scan(
        epoch, carry, jax.random.split(epoch_key, cfg.num_epochs)
    )
    state = state.replace(
        actor=params["actor"], critic=params["critic"], actor_opt=actor_opt, critic_opt=critic_opt, key=key
    )
    return state, jax.tree_util.tree_map(jnp.mean, aux)


def update(state: State, env: Env, cfg: Config) -> tuple[State, dict]:
    """One PPO iteration: rollout, GAE, `num_epochs` x `num_minibatches` gradient steps."""
    space = env.spec.action
    state, traj, info = rollout(state, env, cfg)

    last_value = value_fn(state.critic, normalize(state, state.obs), cfg.activation)
    advantage, target = gae(traj.reward, traj.value, traj.done, last_value, cfg.gamma, cfg.gae_lambda)

    flat = lambda x: x.reshape(cfg.num_envs * cfg.num_steps, *x.shape[2:])  # noqa: E731
    batch = Batch(
        flat(traj.obs),
        flat(traj.action),
        flat(traj.log_prob),
        flat(traj.value),
        flat(advantage),
        flat(target),
    )
    state, aux = _train_epochs(state, batch, space, cfg)

    # Mean return of the episodes that ended in this rollout; carried over when none did.
    finished = info.episode_done.astype(jnp.float32)
    n_finished = jnp.sum(finished)
    mean_return = jnp.sum(info.episode_return * finished) / jnp.maximum(n_finished, 1.0)
    train_return = jnp.where(n_finished > 0, mean_return, state.train_return)
    state = state.replace(train_return=train_return, iteration=state.iteration + 1)

    metrics = {
        "train_return": train_return,
        "episodes_finished": n_finished,
        "valid_env_steps": jnp.asarray(cfg.num_envs * cfg.num_steps, jnp.int32),
        "simulated_env_steps": jnp.asarray(cfg.num_envs * cfg.num_steps, jnp.int32),
        **aux,
    }
    return state, as_metrics(metrics)
