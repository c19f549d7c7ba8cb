"""PPO: GAE, loss and gradient against explicit computations, seeds under vmap,
normalisation statistics, config validation, continuous actions.

Networks and batches are tiny so that the file runs in about a minute on 2 CPU cores.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from esbench.algorithms import networks, ppo
from esbench.algorithms.evaluate import evaluate_policy
from esbench.envs import Box, Discrete, make

TINY = ppo.Config(num_envs=4, num_steps=32, num_epochs=2, num_minibatches=2, layer_size=16, n_layers=2)
TINY_ESBENCH = dataclasses.replace(TINY, flavour="esbench")

# Module-level jits with env and cfg static, so tests share compiled programs
# (envs from `make` are cached objects; configs are hashable).
jit_update = jax.jit(ppo.update, static_argnums=(1, 2))
jit_rollout = jax.jit(ppo.rollout, static_argnums=(1, 2, 3))
jit_loss = jax.jit(ppo.loss, static_argnums=(2, 3))
jit_grad = jax.jit(jax.grad(ppo.loss, has_aux=True), static_argnums=(2, 3))


def run_updates(env, cfg, key, k):
    """init + k updates inside one scan (what the runner does per seed)."""
    state = ppo.init(key, env, cfg)
    return jax.lax.scan(lambda s, _: ppo.update(s, env, cfg), state, None, length=k)


# ---------------------------------------------------------------------------
# GAE


def test_gae_matches_python_loop():
    rng = np.random.default_rng(0)
    T, N, gamma, lam = 9, 3, 0.97, 0.8
    reward = rng.normal(size=(T, N)).astype(np.float32)
    value = rng.normal(size=(T, N)).astype(np.float32)
    done = np.zeros((T, N), bool)
    done[2, 0] = done[3, 0] = done[5, 1] = done[T - 1, 2] = True  # ends inside, back to back, and at the end
    last_value = rng.normal(size=(N,)).astype(np.float32)

    adv, target = jax.jit(ppo.gae, static_argnums=(4, 5))(reward, value, done, last_value, gamma, lam)

    expected = np.zeros((T, N))
    for n in range(N):
        running = 0.0
        for t in reversed(range(T)):
            next_value = last_value[n] if t == T - 1 else value[t + 1, n]
            if done[t, n]:
                delta = float(reward[t, n]) - float(value[t, n])
                running = delta
            else:
                delta = float(reward[t, n]) + gamma * float(next_value) - float(value[t, n])
                running = delta + gamma * lam * running
            expected[t, n] = running
    np.testing.assert_allclose(np.asarray(adv), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(target), expected + value, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# Loss and gradient, against an explicit version written here from the formulas


def np_pqn(x):
    mu = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return np.maximum((x - mu) / np.sqrt(var + networks.LAYER_NORM_EPS), 0.0)


def np_mlp(layers, x):
    for i, layer in enumerate(layers):
        x = x @ np.asarray(layer["w"], np.float64).T + np.asarray(layer["b"], np.float64)
        if i < len(layers) - 1:
            x = np_pqn(x)
    return x


def np_loss(params, batch, space, cfg):
    """The PPO loss in float64 numpy, written out term by term."""
    b = {k: np.asarray(v, np.float64) for k, v in batch._asdict().items()}
    out = np_mlp(params["actor"]["layers"], b["obs"])
    if isinstance(space, Discrete):
        z = out - out.max(-1, keepdims=True)
        logp_all = z - np.log(np.exp(z).sum(-1, keepdims=True))
        logp = logp_all[np.arange(len(out)), b["action"].astype(int)]
        ent = -(np.exp(logp_all) * logp_all).sum(-1).mean()
    else:
        log_std = np.asarray(params["actor"]["log_std"], np.float64)
        std = np.exp(log_std)
        logp = (-0.5 * ((b["action"] - out) / std) ** 2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)
        ent = (log_std + 0.5 * np.log(2 * np.pi * np.e)).sum()
    ratio = np.exp(logp - b["log_prob"])
    adv = (b["advantage"] - b["advantage"].mean()) / (b["advantage"].std() + 1e-8)
    pg = -np.minimum(ratio * adv, np.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv).mean()
    v = np_mlp(params["critic"], b["obs"])[:, 0]
    if cfg.flavour == "rejax":  # rejax clips the value loss
        v_clip = b["value"] + np.clip(v - b["value"], -cfg.clip_eps, cfg.clip_eps)
        vl = 0.5 * np.maximum((v - b["target"]) ** 2, (v_clip - b["target"]) ** 2).mean()
    else:
        vl = 0.5 * ((v - b["target"]) ** 2).mean()
    total = pg - cfg.ent_coef * ent + cfg.vf_coef * vl
    return total, {"policy_loss": pg, "value_loss": vl, "entropy": ent, "ratio": ratio, "value": v}


def jnp_loss(params, batch, space, cfg):
    """The same loss in jnp, independent of esbench code, for jax.grad."""

    def mlp(layers, x):
        for i, layer in enumerate(layers):
            x = x @ layer["w"].T + layer["b"]
            if i < len(layers) - 1:
                mu = x.mean(-1, keepdims=True)
                x = jnp.maximum((x - mu) / jnp.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5), 0.0)
        return x

    out = mlp(params["actor"]["layers"], batch.obs)
    if isinstance(space, Discrete):
        logp_all = out - jax.scipy.special.logsumexp(out, axis=-1, keepdims=True)
        logp = jnp.sum(logp_all * jax.nn.one_hot(batch.action, space.n), -1)
        ent = -(jnp.exp(logp_all) * logp_all).sum(-1).mean()
    else:
        log_std = params["actor"]["log_std"]
        logp = (
            -0.5 * ((batch.action - out) / jnp.exp(log_std)) ** 2 - log_std - 0.5 * jnp.log(2 * jnp.pi)
        ).sum(-1)
        ent = (log_std + 0.5 * jnp.log(2 * jnp.pi * jnp.e)).sum()
    ratio = jnp.exp(logp - batch.log_prob)
    a = batch.advantage
    adv = (a - a.mean()) / (jnp.sqrt(((a - a.mean()) ** 2).mean()) + 1e-8)
    pg = -jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - cfg.clip_eps, 1 + cfg.clip_eps) * adv).mean()
    v = mlp(params["critic"], batch.obs)[:, 0]
    if cfg.flavour == "rejax":
        v_clip = batch.value + jnp.clip(v - batch.value, -cfg.clip_eps, cfg.clip_eps)
        vl = 0.5 * jnp.maximum((v - batch.target) ** 2, (v_clip - batch.target) ** 2).mean()
    else:
        vl = 0.5 * ((v - batch.target) ** 2).mean()
    return pg - cfg.ent_coef * ent + cfg.vf_coef * vl


def fixed_batch(space, flavour):
    """Params and a batch whose old log-probs / values put some samples inside and some outside the clips."""
    key = jax.random.PRNGKey(7)
    ka, kc, kb, ko, kx, kv, kt, kl = jax.random.split(key, 8)
    obs_dim, B = 3, 32
    cfg = dataclasses.replace(
        ppo.Config(), layer_size=6, n_layers=2, ent_coef=0.05, vf_coef=0.7, flavour=flavour
    )
    actor = networks.init_policy(ka, obs_dim, space, cfg)
    actor["layers"][-1]["w"] = actor["layers"][-1]["w"] * 5.0  # a non-uniform policy
    if isinstance(space, Box):
        actor["log_std"] = jnp.array([-0.3, 0.2], jnp.float32)
    critic = networks.init_value(kc, obs_dim, cfg)
    params = {"actor": actor, "critic": critic}

    obs = jax.random.normal(ko, (B, obs_dim))
    out = networks.mlp(actor["layers"], obs)
    if isinstance(space, Discrete):
        action = jax.random.randint(kx, (B,), 0, space.n)
    else:
        action = out + jax.random.normal(kx, out.shape)
    new_logp = networks.log_prob(space, actor, out, action)
    value_now = networks.mlp(critic, obs)[:, 0]
    batch = ppo.Batch(
        obs=obs,
        action=action,
        log_prob=new_logp + 0.4 * jax.random.normal(kl, (B,)),
        value=value_now + 0.5 * jax.random.normal(kv, (B,)),
        advantage=jax.random.normal(kb, (B,)) * 2.0 + 0.5,
        target=value_now + jax.random.normal(kt, (B,)),
    )
    return params, batch, cfg


@pytest.mark.parametrize(
    "space, flavour",
    [
        (Discrete(3), "esbench"),
        (Box.make(-1.0, 1.0, 2), "esbench"),
        (Discrete(3), "rejax"),
        (Box.make(-1.0, 1.0, 2), "rejax"),
    ],
    ids=[
        "discrete-esbench",
        "gaussian-esbench",
        "discrete-rejax_clipped_value",
        "gaussian-rejax_clipped_value",
    ],
)
def test_loss_and_gradient_match_explicit_computation(space, flavour):
    params, batch, cfg = fixed_batch(space, flavour)
    total, aux = jit_loss(params, batch, space, cfg)
    expected_total, expected = np_loss(params, batch, space, cfg)

    # Both sides of both clips are exercised by this batch.
    outside = np.abs(expected["ratio"] - 1) > cfg.clip_eps
    assert 0 < outside.mean() < 1
    np.testing.assert_allclose(float(aux["clip_frac"]), outside.mean(), rtol=1e-6)
    if flavour == "rejax":
        v_outside = np.abs(expected["value"] - np.asarray(batch.value)) > cfg.clip_eps
        assert 0 < v_outside.mean() < 1

    np.testing.assert_allclose(float(total), expected_total, rtol=2e-5, atol=1e-6)
    for name in ("policy_loss", "value_loss", "entropy"):
        np.testing.assert_allclose(float(aux[name]), expected[name], rtol=2e-5, atol=1e-6, err_msg=name)
    log_ratio = np.log(expected["ratio"])
    np.testing.assert_allclose(float(aux["approx_kl"]), np.mean(expected["ratio"] - 1 - log_ratio), rtol=1e-4)

    grads, _ = jit_grad(params, batch, space, cfg)
    expected_grads = jax.jit(jax.grad(jnp_loss), static_argnums=(2, 3))(params, batch, space, cfg)
    flat, _ = jax.tree_util.tree_flatten(grads)
    flat_expected, _ = jax.tree_util.tree_flatten(expected_grads)
    assert len(flat) == len(flat_expected)
    for g, e in zip(flat, flat_expected):
        np.testing.assert_allclose(np.asarray(g), np.asarray(e), rtol=1e-4, atol=1e-6)
    assert max(float(jnp.max(jnp.abs(g))) for g in flat) > 1e-3  # a gradient that is not trivially zero


# ---------------------------------------------------------------------------
# Seeds under vmap, determinism


def test_vmapped_seeds_equal_separate_runs(cartpole):
    """jit(vmap(scan(update))) over seeds (as the runner does) reproduces each seed run on its own.

    Not bit for bit: under vmap XLA-CPU runs the layers' matmuls as batched dot
    products whose summation order differs from the unbatched ones (measured
    here: <= 5e-7 absolute in losses, <= 3e-8 in parameters after 2 updates).
    What depends only on the actions taken and the episode ends (episode
    counts and returns) must be identical, floats equal to float32 rounding.
    """
    env = cartpole
    keys = jax.random.split(jax.random.PRNGKey(3), 3)
    k = 2
    v_state, v_metrics = jax.jit(jax.vmap(lambda key: run_updates(env, TINY, key, k)))(keys)
    for i, key in enumerate(keys):
        state = ppo.init(key, env, TINY)
        for j in range(k):
            state, metrics = jit_update(state, env, TINY)
            for name in ("train_return", "episodes_finished", "valid_env_steps"):
                np.testing.assert_array_equal(
                    np.asarray(v_metrics[name][i, j]), np.asarray(metrics[name]), err_msg=name
                )
            for name, value in metrics.items():
                np.testing.assert_allclose(
                    np.asarray(v_metrics[name][i, j]), np.asarray(value), rtol=1e-5, atol=1e-6, err_msg=name
                )
        v_params = jax.tree_util.tree_map(lambda x: x[i], ppo.policy(v_state))
        jax.tree_util.tree_map(
            lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6),
            v_params,
            ppo.policy(state),
        )
    # Different seeds differ; the same seed again is bit-for-bit identical.
    assert not np.array_equal(
        np.asarray(v_metrics["train_return"][0]), np.asarray(v_metrics["train_return"][1])
    )
    state = ppo.init(keys[0], env, TINY)
    first, again = jit_update(state, env, TINY), jit_update(state, env, TINY)
    jax.tree_util.tree_map(np.testing.assert_array_equal, ppo.policy(again[0]), ppo.policy(first[0]))
    jax.tree_util.tree_map(np.testing.assert_array_equal, again[1], first[1])


def test_metrics_and_train_return_bookkeeping(cartpole):
    env = cartpole
    state = ppo.init(jax.random.PRNGKey(0), env, TINY)
    _, _, info = jit_rollout(state, env, TINY, False)  # the same rollout update does first
    new_state, metrics = jit_update(state, env, TINY)
    done = np.asarray(info.episode_done)
    assert done.sum() > 0
    expected = np.asarray(info.episode_return)[done].mean()
    np.testing.assert_allclose(float(metrics["train_return"]), expected, rtol=1e-6)
    assert float(metrics["episodes_finished"]) == done.sum()
    assert (
        float(metrics["valid_env_steps"])
        == TINY.num_envs * TINY.num_steps
        == ppo.env_steps_per_update(env, TINY)
    )
    assert set(metrics) >= {
        "train_return",
        "valid_env_steps",
        "policy_loss",
        "value_loss",
        "entropy",
        "approx_kl",
    }
    counts = ("valid_env_steps", "simulated_env_steps")  # exact counts, as the algorithm contract says
    assert all(metrics[k].dtype == jnp.int32 for k in counts)
    assert int(metrics["simulated_env_steps"]) == int(
        metrics["valid_env_steps"]
    )  # PPO simulates only what it counts
    assert all(
        v.dtype == jnp.float32 and v.shape == () and np.isfinite(float(v))
        for k, v in metrics.items()
        if k not in counts
    )
    assert int(new_state.iteration) == 1


def test_anneal_lr_stops_learning_after_budget(cartpole):
    env = cartpole
    cfg = dataclasses.replace(TINY, anneal_lr=True, anneal_env_steps=TINY.num_envs * TINY.num_steps)
    start = ppo.init(jax.random.PRNGKey(0), env, cfg)
    state, _ = jit_update(start, env, cfg)  # learns, and spends the whole budget
    assert not np.array_equal(
        np.asarray(start.actor["layers"][0]["w"]), np.asarray(state.actor["layers"][0]["w"])
    )
    after, _ = jit_update(state, env, cfg)  # lr is 0 now
    jax.tree_util.tree_map(np.testing.assert_array_equal, after.actor, state.actor)
    jax.tree_util.tree_map(np.testing.assert_array_equal, after.critic, state.critic)


def test_bootstrap_truncation_adds_discounted_value_of_final_obs_at_time_limits():
    env = make("CartPole-v1", 5)
    off = dataclasses.replace(TINY, normalize_obs=False)  # V sees raw obs, so the check is explicit
    on = dataclasses.replace(off, bootstrap_truncation=True)
    state = ppo.init(jax.random.PRNGKey(5), env, off)
    _, traj_off, info, _ = jit_rollout(state, env, off, True)
    _, traj_on, _, _ = jit_rollout(state, env, on, True)
    np.testing.assert_array_equal(np.asarray(traj_on.action), np.asarray(traj_off.action))  # same rollout
    truncated = np.asarray(info.truncated)
    assert truncated.sum() > 0
    final_value = np.asarray(
        ppo.value_fn(state.critic, info.final_obs, off.activation)
    )  # critic is fixed in a rollout
    expected = np.asarray(traj_off.reward) + np.where(truncated, off.gamma * final_value, 0.0)
    np.testing.assert_allclose(np.asarray(traj_on.reward), expected, rtol=1e-6, atol=1e-6)
    assert np.all(np.asarray(traj_on.reward)[~truncated] == np.asarray(traj_off.reward)[~truncated])


# ---------------------------------------------------------------------------
# Normalisation


def test_update_stats_equals_numpy_over_uneven_batches():
    rng = np.random.default_rng(1)
    batches = [rng.normal(3.0, 2.0, size=(n, 5)).astype(np.float32) for n in (1, 7, 64, 3)]
    stats = ppo.init_stats((5,))
    for b in batches:
        stats = ppo.update_stats(stats, jnp.asarray(b))
    seen = np.concatenate(batches).astype(np.float64)
    np.testing.assert_allclose(np.asarray(stats.mean), seen.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(stats.var), seen.var(0), rtol=1e-5, atol=1e-6)
    assert float(stats.count) == len(seen)


def test_observation_stats_equal_numpy_over_observations_seen(cartpole):
    """esbench flavour: statistics of every observation seen, the reset ones included, clipped to +-10."""
    env = cartpole
    state = ppo.init(jax.random.PRNGKey(2), env, TINY_ESBENCH)
    obs0 = np.asarray(state.obs)
    state1, traj, _, raw = jit_rollout(state, env, TINY_ESBENCH, True)
    seen = np.concatenate([obs0, np.asarray(raw).reshape(-1, env.spec.obs_dim)]).astype(np.float64)
    assert float(state1.obs_stats.count) == len(seen) == TINY.num_envs * (TINY.num_steps + 1)
    np.testing.assert_allclose(np.asarray(state1.obs_stats.mean), seen.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(state1.obs_stats.var), seen.var(0), rtol=1e-5, atol=1e-6)

    # The first stored obs was normalised with the reset obs' statistics, clipped to [-10, 10].
    expected0 = np.clip((obs0 - obs0.mean(0)) / np.sqrt(obs0.var(0) + 1e-8), -10, 10)
    np.testing.assert_allclose(np.asarray(traj.obs[0]), expected0, rtol=1e-4, atol=1e-5)

    # policy(state) carries the statistics, so networks.forward sees what the actor saw in training.
    params = ppo.policy(state1)
    np.testing.assert_array_equal(np.asarray(params["obs_norm"]["mean"]), np.asarray(state1.obs_stats.mean))
    np.testing.assert_array_equal(np.asarray(params["obs_norm"]["var"]), np.asarray(state1.obs_stats.var))
    assert float(params["obs_norm"]["clip"]) == 10.0
    last = state1.obs
    np.testing.assert_array_equal(
        np.asarray(networks.forward(params, last)),
        np.asarray(networks.mlp(state1.actor["layers"], ppo.normalize(state1, last))),
    )
    # Without normalisation there are no statistics and no obs_norm.
    raw_cfg = dataclasses.replace(TINY, normalize_obs=False)
    assert "obs_norm" not in ppo.policy(ppo.init(jax.random.PRNGKey(2), env, raw_cfg))


def test_rejax_observation_stats_start_from_a_prior_and_are_not_clipped(cartpole):
    """rejax's RMSState: mean 0, var 1, count 1e-4; updated with each step's next observations only."""
    env = cartpole
    state = ppo.init(jax.random.PRNGKey(2), env, TINY)
    assert float(state.obs_stats.count) == np.float32(1e-4)
    np.testing.assert_array_equal(np.asarray(state.obs_stats.mean), 0.0)
    np.testing.assert_array_equal(np.asarray(state.obs_stats.var), 1.0)
    state1, traj, _, raw = jit_rollout(state, env, TINY, True)
    seen = np.asarray(raw).reshape(-1, env.spec.obs_dim).astype(np.float64)
    prior = 1e-4  # a pseudo-sample of mean 0 and variance 1, merged as rejax's update_rms does
    n = len(seen)
    mean = seen.mean(0) * n / (n + prior)
    var = (prior * 1.0 + n * seen.var(0) + seen.mean(0) ** 2 * prior * n / (n + prior)) / (n + prior)
    np.testing.assert_allclose(float(state1.obs_stats.count), n + prior, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(state1.obs_stats.mean), mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(state1.obs_stats.var), var, rtol=1e-5, atol=1e-6)
    # The first obs is normalised by the prior alone (about the raw obs), and nothing is clipped.
    np.testing.assert_allclose(np.asarray(traj.obs[0]), np.asarray(state.obs) / np.sqrt(1 + 1e-8), rtol=1e-6)
    params = ppo.policy(state1)
    assert "clip" not in params["obs_norm"]
    far = jnp.full((env.spec.obs_dim,), 1e6)
    assert float(jnp.max(networks.normalize_obs(params, far))) > 10.0


def test_reward_normalisation_by_discounted_return_std(cartpole):
    """esbench flavour: g <- g * discount + r, reset after an episode ends; statistics from the first sample."""
    env = cartpole  # reward is 1 on every step, so the discounted returns are known from `done`
    cfg = dataclasses.replace(TINY_ESBENCH, normalize_rew=True, rew_norm_discount=0.9)
    state = ppo.init(jax.random.PRNGKey(4), env, cfg)
    state1, traj, _ = jit_rollout(state, env, cfg, False)
    done = np.asarray(traj.done)
    assert done.any()
    g = np.zeros(cfg.num_envs)
    seen = []
    for t in range(cfg.num_steps):
        g = g * cfg.rew_norm_discount + 1.0
        seen.append(g.copy())
        var_t = np.concatenate(seen).var()
        np.testing.assert_allclose(np.asarray(traj.reward[t]), 1.0 / np.sqrt(var_t + 1e-8), rtol=1e-4)
        g = np.where(done[t], 0.0, g)
    np.testing.assert_allclose(float(state1.rew_stats.var), np.concatenate(seen).var(), rtol=1e-5)


def test_rejax_reward_normalisation(cartpole):
    """rejax's update_rew_rms: g <- r + (1 - done) * discount * g (this step's done cuts the past), prior count 1e-4."""
    env = cartpole
    cfg = dataclasses.replace(TINY, normalize_rew=True, rew_norm_discount=0.9)
    state = ppo.init(jax.random.PRNGKey(4), env, cfg)
    _, traj, _ = jit_rollout(state, env, cfg, False)
    done = np.asarray(traj.done).astype(np.float64)
    assert done.any()
    g = np.zeros(cfg.num_envs)
    mean, var, count = 0.0, 1.0, 1e-4
    for t in range(cfg.num_steps):
        g = 1.0 + (1.0 - done[t]) * cfg.rew_norm_discount * g
        n = cfg.num_envs
        delta = g.mean() - mean
        total = count + n
        mean, var = (
            mean + delta * n / total,
            (var * count + g.var() * n + delta**2 * count * n / total) / total,
        )
        count = total
        np.testing.assert_allclose(np.asarray(traj.reward[t]), 1.0 / np.sqrt(var + 1e-8), rtol=1e-4)


def test_gradient_clipping_of_each_flavour():
    """rejax: each gradient element clipped to +-max_grad_norm, then adam (eps 1e-8); esbench: global norm, eps 1e-5."""
    grads = {"w": jnp.array([[3.0, -0.2], [0.05, -4.0]]), "b": jnp.array([0.4, -0.9])}
    params = jax.tree_util.tree_map(jnp.zeros_like, grads)
    cfg = dataclasses.replace(TINY, max_grad_norm=0.5, learning_rate=0.1)
    rejax_updates, _ = ppo._optimizer(cfg).update(grads, ppo._optimizer(cfg).init(params), params)
    clipped = jax.tree_util.tree_map(lambda g: jnp.clip(g, -0.5, 0.5), grads)
    adam = optax.adam(0.1, eps=1e-8)
    expected, _ = adam.update(clipped, adam.init(params), params)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), rejax_updates, expected)

    esb = dataclasses.replace(cfg, flavour="esbench")
    esb_updates, _ = ppo._optimizer(esb).update(grads, ppo._optimizer(esb).init(params), params)
    norm = np.sqrt(sum(float(jnp.sum(g**2)) for g in jax.tree_util.tree_leaves(grads)))
    scaled = jax.tree_util.tree_map(lambda g: g * 0.5 / norm, grads)
    adam = optax.adam(0.1, eps=1e-5)
    expected, _ = adam.update(scaled, adam.init(params), params)
    jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), esb_updates, expected)


# ---------------------------------------------------------------------------
# Config validation


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"num_minibatches": 3}, "num_minibatches"),  # 4 * 8 is not divisible by 3
        ({"num_envs": 0}, "num_envs"),
        ({"num_steps": 2.5}, "num_steps"),
        ({"gamma": 1.5}, "gamma"),
        ({"gae_lambda": -0.1}, "gae_lambda"),
        ({"clip_eps": 0.0}, "clip_eps"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"learning_rate": "3e-4"}, "learning_rate"),  # what PyYAML makes of 3e-4
        ({"ent_coef": -0.1}, "ent_coef"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"activation": "gelu"}, "activation"),
        ({"layer_size": 0}, "layer_size"),
        ({"n_layers": 0}, "n_layers"),
        ({"network": "resnet"}, "network"),
        ({"flavour": "cleanrl"}, "flavour"),
        ({"normalize_obs": "yes"}, "normalize_obs"),
        ({"anneal_lr": True}, "anneal_env_steps"),
    ],
)
def test_config_validation_names_field(changes, field):
    cfg = dataclasses.replace(TINY, **changes)
    with pytest.raises(ValueError, match=field) as err:
        cfg.validate()
    assert "allowed" in str(err.value)


def test_config_defaults_are_the_cartpole_row_and_valid():
    cfg = ppo.Config().validate()
    assert (cfg.num_envs, cfg.num_steps, cfg.num_epochs, cfg.num_minibatches) == (256, 128, 4, 32)
    assert (cfg.learning_rate, cfg.gamma, cfg.gae_lambda, cfg.clip_eps) == (3e-4, 0.995, 0.9, 0.2)
    assert (cfg.ent_coef, cfg.vf_coef, cfg.max_grad_norm) == (1e-4, 0.5, 0.5)
    assert cfg.normalize_obs and not cfg.normalize_rew and cfg.rew_norm_discount == 0.99
    assert (cfg.layer_size, cfg.n_layers, cfg.activation) == (256, 3, "pqn")
    # the paper's PPO: rejax 0.1.3 with its network, evaluated by sampling as rejax's evaluation does
    assert (cfg.flavour, cfg.network, cfg.deterministic_policy) == ("rejax", "rejax", False)
    hash(cfg)


# ---------------------------------------------------------------------------
# Continuous actions


def test_pendulum_runs_with_actions_in_bounds_and_logprob_of_unclipped_sample():
    # Episodes of 40 steps against rollouts of 32: none ends in the first update, some in the second.
    env = make("Pendulum-v1").with_time_limit(40)
    space = env.spec.action
    assert isinstance(space, Box) and TINY.num_steps == 32
    state = ppo.init(jax.random.PRNGKey(5), env, TINY)
    # Push the mean beyond the upper bound so that clipping matters.
    layers = state.actor["layers"]
    layers[-1]["b"] = layers[-1]["b"] + 1.8
    state = state.replace(actor={**state.actor, "layers": layers}, train_return=jnp.float32(123.0))

    _, traj, _ = jit_rollout(state, env, TINY, False)
    action = np.asarray(traj.action)
    assert action.shape == (TINY.num_steps, TINY.num_envs, space.dim)
    assert (action > space.high[0]).any()  # the stored sample is unclipped ...
    out = networks.mlp(state.actor["layers"], traj.obs)
    np.testing.assert_allclose(  # ... and its log-prob is that of the unclipped sample
        np.asarray(traj.log_prob),
        np.asarray(networks.log_prob(space, state.actor, out, traj.action)),
        rtol=1e-5,
        atol=1e-5,
    )

    state, m1 = jit_update(state, env, TINY)
    assert float(m1["episodes_finished"]) == 0 and float(m1["train_return"]) == 123.0  # carried over
    state, m2 = jit_update(state, env, TINY)
    assert float(m2["episodes_finished"]) == TINY.num_envs and float(m2["train_return"]) < 0  # pendulum costs
    assert all(np.isfinite(float(v)) for m in (m1, m2) for v in m.values())
    params = ppo.policy(state)
    assert params["log_std"].shape == (space.dim,) and "obs_norm" in params

    # What the env receives is clipped to the bounds, sampled or deterministic.
    obs = jax.random.normal(jax.random.PRNGKey(0), (256, env.spec.obs_dim)) * 3
    for deterministic in (False, True):
        acts = networks.act(params, obs, jax.random.PRNGKey(1), space, deterministic)
        assert acts.shape == (256, space.dim)
        assert np.all(np.asarray(acts) >= space.low[0]) and np.all(np.asarray(acts) <= space.high[0])
        assert deterministic or np.any(np.asarray(acts) == space.high[0])
    stats = jax.jit(lambda p: evaluate_policy(jax.random.PRNGKey(2), env, p, 4, True))(params)
    assert np.all(np.isfinite(np.asarray(stats.returns))) and np.all(np.asarray(stats.lengths) == 40)
