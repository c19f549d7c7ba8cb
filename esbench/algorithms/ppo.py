"""PPO (clipped surrogate, GAE, minibatch epochs), in the style of rejax / PureJaxRL.

One `update` is one PPO iteration, and reads like the algorithm:

    1. roll out the current actor for `num_steps` steps in `num_envs` parallel envs
       (observations normalised by running statistics updated after every step);
    2. compute GAE advantages and value targets, bootstrapping from the critic
       at the last observation;
    3. for `num_epochs` epochs, shuffle the batch into `num_minibatches`
       minibatches and take one gradient step per minibatch on the clipped
       surrogate + value loss - entropy bonus.

As in rejax (the implementation the paper credits) the actor and the critic
are separate MLPs with their own adam optimiser and their own global-norm
gradient clipping (so, adam being scale-invariant, `vf_coef` acts only
through the critic's gradient clip), and advantages are normalised per
minibatch.

The value loss is UNCLIPPED by default (`clip_value_loss=False`), unlike
rejax and PureJaxRL, which clip the value change to `clip_eps` per
iteration. With unnormalised rewards that clip caps how far the critic can
move in one iteration (0.2 per iteration against CartPole value targets of
~100), and with the paper's large batches (15 iterations in 5e5 env steps on
CartPole) the critic never catches up: measured here, seed 0 reached an
evaluation return of 311 with the clipped loss against 500 unclipped.
`clip_value_loss=True` gives rejax's loss.

Time-limit ends are treated as terminal by default, as in rejax and
PureJaxRL. `bootstrap_truncation=True` instead adds gamma * V(final obs) to
the reward of a truncated step (the env reports the pre-reset obs in
`info.final_obs`), so the critic does not learn that a time limit is the end
of the world: it matters on envs that only ever truncate (Pendulum, brax).

Everything lives in `State` (PRNG key, env states, last observations,
normalisation statistics), so `update` is pure and the runner can
`jit(vmap(scan(update)))` it over seeds.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

from esbench.algorithms import networks
from esbench.envs.core import Env


@dataclasses.dataclass(frozen=True)
class Config:
    """PPO hyperparameters; field names as in hparams.yaml's ppo rows (defaults: CartPole-v1)."""

    num_envs: int = 256
    num_steps: int = 128
    num_epochs: int = 4
    num_minibatches: int = 32
    learning_rate: float = 3e-4
    gamma: float = 0.995
    gae_lambda: float = 0.9
    clip_eps: float = 0.2
    ent_coef: float = 1e-4
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_obs: bool = True
    normalize_rew: bool = False
    hidden: tuple[int, ...] = networks.DEFAULT_HIDDEN
    activation: str = "pqn"
    deterministic_policy: bool = True  # how evaluation acts; training always samples
    anneal_lr: bool = False
    clip_value_loss: bool = False  # True: rejax/PureJaxRL's clipped value loss (see module doc)
    bootstrap_truncation: bool = False  # True: bootstrap from V(final obs) at time limits (see module doc)
    # Linear lr annealing reaches 0 after this many env steps (the training
    # budget); required when anneal_lr is true. The runner fills it in from
    # the trial's env_steps when it is left at 0.
    anneal_env_steps: int = 0

    def __post_init__(self):
        # YAML gives lists; keep the config hashable (it is a static jit argument).
        if isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(self.hidden))

    @property
    def minibatch_size(self) -> int:
        return self.num_envs * self.num_steps // self.num_minibatches

    def validate(self) -> "Config":
        def fail(field, value, allowed):
            raise ValueError(f"ppo: {field}={value!r} is invalid; allowed: {allowed}")

        for name in ("num_envs", "num_steps", "num_epochs", "num_minibatches"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                fail(name, value, "an integer >= 1")
        if (self.num_envs * self.num_steps) % self.num_minibatches:
            fail(
                "num_minibatches",
                self.num_minibatches,
                f"a divisor of num_envs * num_steps = {self.num_envs * self.num_steps}",
            )

        def number(name):
            value = getattr(self, name)
            # PyYAML reads "3e-4" (no dot) as a string: say so rather than fail on a comparison.
            return value if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")

        for name in ("learning_rate", "clip_eps", "max_grad_norm"):
            if not number(name) > 0:
                fail(name, getattr(self, name), "a number > 0")
        for name in ("ent_coef", "vf_coef"):
            if not number(name) >= 0:
                fail(name, getattr(self, name), "a number >= 0")
        if not 0 < number("gamma") <= 1:
            fail("gamma", self.gamma, "a number in (0, 1]")
        if not 0 <= number("gae_lambda") <= 1:
            fail("gae_lambda", self.gae_lambda, "a number in [0, 1]")
        if self.activation not in networks.ACTIVATIONS:
            fail("activation", self.activation, ", ".join(networks.ACTIVATIONS))
        if not (
            isinstance(self.hidden, tuple)
            and len(self.hidden) > 0
            and all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in self.hidden)
        ):
            fail("hidden", self.hidden, "a non-empty tuple of integers >= 1, e.g. (256, 256, 256)")
        for name in ("normalize_obs", "normalize_rew", "deterministic_policy", "anneal_lr", "clip_value_loss",
                     "bootstrap_truncation"):
            if not isinstance(getattr(self, name), bool):
                fail(name, getattr(self, name), "true or false")
        if self.anneal_lr and self.anneal_env_steps < self.num_envs * self.num_steps:
            fail(
                "anneal_env_steps",
                self.anneal_env_steps,
                f"the training budget in env steps, >= num_envs * num_steps = {self.num_envs * self.num_steps} "
                "(needed when anneal_lr is true)",
            )
        return self


# ---------------------------------------------------------------------------
# Running statistics (observation and reward normalisation)


@struct.dataclass
class RunningStats:
    """Mean and (population) variance of every sample merged so far."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array  # f32 scalar


def init_stats(shape: tuple[int, ...]) -> RunningStats:
    return RunningStats(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32), jnp.zeros((), jnp.float32))


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


def _obs_norm(stats: RunningStats) -> dict:
    return {"obs_norm": {"mean": stats.mean, "var": stats.var}}


def normalize(stats: RunningStats | None, obs: jax.Array) -> jax.Array:
    """Exactly what `networks.forward` does with `policy(state)`'s "obs_norm" (identity without stats)."""
    if stats is None:
        return obs
    return networks.normalize_obs(_obs_norm(stats), obs)


# ---------------------------------------------------------------------------
# State


@struct.dataclass
class State:
    actor: dict  # networks layout without obs_norm: {"layers": [...], "log_std"?: ...}
    critic: list  # mlp layers, scalar output
    actor_opt: Any
    critic_opt: Any
    obs_stats: RunningStats | None  # None unless normalize_obs
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
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(lr, eps=1e-5))


def env_steps_per_update(env: Env, cfg: Config) -> int:
    return cfg.num_envs * cfg.num_steps


def init(key: jax.Array, env: Env, cfg: Config) -> State:
    cfg.validate()
    spec = env.spec
    key, actor_key, critic_key, reset_key = jax.random.split(key, 4)
    actor = networks.init_policy(actor_key, spec.obs_dim, spec.action, cfg.hidden, obs_norm=False)
    critic = networks.init_mlp(critic_key, [spec.obs_dim, *cfg.hidden, 1], output_scale=1.0)
    tx = _optimizer(cfg)
    obs, env_state = jax.vmap(env.reset)(jax.random.split(reset_key, cfg.num_envs))
    obs_stats = update_stats(init_stats((spec.obs_dim,)), obs) if cfg.normalize_obs else None
    return State(
        actor=actor,
        critic=critic,
        actor_opt=tx.init(actor),
        critic_opt=tx.init(critic),
        obs_stats=obs_stats,
        rew_stats=init_stats(()) if cfg.normalize_rew else None,
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
    return {**state.actor, **_obs_norm(state.obs_stats)}


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
        obs = normalize(state.obs_stats, state.obs)
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
            discounted = discounted * cfg.gamma + reward
            rew_stats = update_stats(rew_stats, discounted)
            reward = reward * jax.lax.rsqrt(rew_stats.var + 1e-8)
            discounted = jnp.where(done, 0.0, discounted)
        if cfg.bootstrap_truncation:
            # Normalised with the same statistics as `obs`, so V sees what it saw for `value`.
            final_value = value_fn(state.critic, normalize(state.obs_stats, info.final_obs), cfg.activation)
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
    if cfg.clip_value_loss:
        value_loss = 0.5 * jnp.mean(jnp.maximum((value - batch.target) ** 2, (value_clipped - batch.target) ** 2))
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
            lambda x: jnp.take(x, perm, axis=0).reshape(cfg.num_minibatches, cfg.minibatch_size, *x.shape[1:]),
            batch,
        )
        return jax.lax.scan(minibatch_step, carry, minibatches)

    key, epoch_key = jax.random.split(state.key)
    carry = ({"actor": state.actor, "critic": state.critic}, state.actor_opt, state.critic_opt)
    (params, actor_opt, critic_opt), aux = jax.lax.scan(epoch, carry, jax.random.split(epoch_key, cfg.num_epochs))
    state = state.replace(
        actor=params["actor"], critic=params["critic"], actor_opt=actor_opt, critic_opt=critic_opt, key=key
    )
    return state, jax.tree_util.tree_map(jnp.mean, aux)


def update(state: State, env: Env, cfg: Config) -> tuple[State, dict]:
    """One PPO iteration: rollout, GAE, `num_epochs` x `num_minibatches` gradient steps."""
    space = env.spec.action
    state, traj, info = rollout(state, env, cfg)

    last_value = value_fn(state.critic, normalize(state.obs_stats, state.obs), cfg.activation)
    advantage, target = gae(traj.reward, traj.value, traj.done, last_value, cfg.gamma, cfg.gae_lambda)

    flat = lambda x: x.reshape(cfg.num_envs * cfg.num_steps, *x.shape[2:])  # noqa: E731
    batch = Batch(
        flat(traj.obs), flat(traj.action), flat(traj.log_prob), flat(traj.value), flat(advantage), flat(target)
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
        **aux,
    }
    return state, {k: jnp.asarray(v, jnp.float32) for k, v in metrics.items()}
