"""EGGROLL and OpenES: exact maths against materialised perturbations, noise statistics,
memory scaling from the compiled program, determinism, config errors, and the evosax adapter.

Shapes are tiny and the maths checks run in float64, so equalities hold to ~1e-12.
"""

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_EPISODE

from esbench import paper
from esbench.algorithms import eggroll, es, get_algorithm, networks, noise, openes
from esbench.algorithms.networks import PolicySettings
from esbench.envs import Box, Discrete

ES_MODULES = {"eggroll": eggroll, "openes": openes}
SIGMA = 0.3


def small_cfg(name, rank=2, **kw):
    kw = {"pop_size": 6, **kw}
    if name == "eggroll":
        return eggroll.Config(rank=rank, **kw)
    return openes.Config(**kw)


def small_params(key, dtype):
    """The official network at width 5: three matrices (one without bias), two biases and a log_std."""
    params = networks.init_policy(key, 3, Box.make(-1.0, 1.0, 4), PolicySettings(layer_size=5, n_layers=1))
    params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
    # Non-zero biases and log_std, so that a wrong vector perturbation shows.
    return jax.tree_util.tree_map(
        lambda a: a + 0.1 * jnp.arange(a.size, dtype=dtype).reshape(a.shape), params
    )


def materialised_E(name, cfg, pair_noise_k, j, sign):
    """E_i for the matrix whose stacked pair noise is `pair_noise_k`, written out from the paper's formula."""
    if name == "eggroll":
        a, b = pair_noise_k
        return sign * (a[j] @ b[j].T) / math.sqrt(cfg.rank)
    return sign * pair_noise_k[j]


def explicit_member_params(name, cfg, params, pair_noise, i, sigma=SIGMA):
    """params with W + sigma E_i and v + sigma s eps_v, every leaf written out."""
    j, sign = i // 2, (1.0 if i % 2 == 0 else -1.0)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    out = []
    for leaf, eps in zip(leaves, pair_noise):
        if leaf.ndim == 2:
            out.append(leaf + sigma * materialised_E(name, cfg, eps, j, sign))
        else:
            out.append(leaf + sigma * sign * eps[j])
    return jax.tree_util.tree_unflatten(treedef, out)


# EGGROLL's low-rank term has two contractions (rank 1: broadcast-and-reduce; from
# BATCHED_PRODUCT_MIN_RANK: batched products); each is checked against the materialised weights.
@pytest.mark.parametrize(
    "name, rank",
    [("eggroll", 1), ("eggroll", eggroll.BATCHED_PRODUCT_MIN_RANK), ("eggroll", 4), ("openes", None)],
)
def test_perturbed_forward_equals_materialised_weights(name, rank):
    mod = ES_MODULES[name]
    cfg = small_cfg(name, rank=rank)
    n = cfg.pop_size
    with jax.enable_x64(True):
        params = small_params(jax.random.PRNGKey(0), jnp.float64)
        obs = jax.random.normal(jax.random.PRNGKey(1), (n, 2, 3), jnp.float64)  # 2 observations per member
        eps = es.draw_noise(jax.random.PRNGKey(2), jnp.int32(7), params, n // 2, cfg, mod.MATRIX_NOISE)

        def fn(member_params, matmul, x):
            return networks.forward(member_params, x, "pqn", matmul), member_params["log_std"]

        population = jax.jit(lambda p, e, x: es.population_map(fn, p, e, SIGMA, cfg, mod.MATRIX_NOISE, x))
        out, log_std = population(params, eps, obs)
        assert out.shape == (n, 2, 4) and out.dtype == jnp.float64
        for i in range(n):
            explicit = explicit_member_params(name, cfg, params, eps, i)
            np.testing.assert_allclose(
                out[i], networks.forward(explicit, obs[i], "pqn"), rtol=1e-12, atol=1e-12
            )
            np.testing.assert_allclose(log_std[i], explicit["log_std"], rtol=1e-12, atol=1e-12)
        # The perturbation is not trivially zero.
        assert float(jnp.max(jnp.abs(out[0] - networks.forward(params, obs[0], "pqn")))) > 1e-3


def explicit_update(name, cfg, params, eps, f, sigma):
    """The official update (HyperscaleES noisers) written out: sum_i f_i E_i over materialised E_i, then scaled."""
    n = f.shape[0]
    scale = sigma / math.sqrt(n) if cfg.update_scale == "official" else 1.0 / (n * sigma)
    out = []
    for leaf, e in zip(jax.tree_util.tree_leaves(params), eps):
        total = jnp.zeros_like(leaf)
        for i in range(n):
            j, sign = i // 2, (1.0 if i % 2 == 0 else -1.0)
            e_i = materialised_E(name, cfg, e, j, sign) if leaf.ndim == 2 else sign * e[j]
            total = total + f[i] * e_i
        out.append(total * scale)
    return out


@pytest.mark.parametrize("update_scale", ["official", "textbook"])
@pytest.mark.parametrize("name", ["eggroll", "openes"])
def test_update_equals_sum_over_materialised_perturbations(name, update_scale):
    """official: u = (sigma / sqrt(N)) sum_i f_i E_i (HyperscaleES); textbook: g = 1 / (N sigma) sum_i f_i E_i."""
    mod = ES_MODULES[name]
    cfg = small_cfg(name, update_scale=update_scale)
    n = cfg.pop_size
    with jax.enable_x64(True):
        params = small_params(jax.random.PRNGKey(0), jnp.float64)
        root, t = jax.random.PRNGKey(3), jnp.int32(4)
        eps = es.draw_noise(root, t, params, n // 2, cfg, mod.MATRIX_NOISE)
        f = jax.random.normal(jax.random.PRNGKey(5), (n,), jnp.float64)
        update = es.estimate_update(params, eps, f, SIGMA, cfg, mod.MATRIX_NOISE)
        expected = explicit_update(name, cfg, params, eps, f, SIGMA)
        for got, want in zip(jax.tree_util.tree_leaves(update), expected):
            assert got.shape == want.shape
            np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["eggroll", "openes"])
def test_one_sgd_step_moves_the_parameters_by_lr_times_the_official_update(name, short_cartpole):
    """A whole generation with plain SGD at the paper's learning rate: new params = params + lr * u, u from
    the explicit formula on the population's returns recomputed here. Returns are float32 sums of float32
    rewards and sigma_t, lr_t float32, as in training; the z-score is test_fitness_shaping's."""
    mod = ES_MODULES[name]
    cfg = tiny(name, optimizer="sgd", learning_rate=0.1, rank_transform=False, deterministic_policy=False)
    with jax.enable_x64(True):
        state = mod.init(jax.random.PRNGKey(0), short_cartpole, cfg)
        state = state.replace(params=jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), state.params))
        state = state.replace(opt_state=es.make_optimizer(cfg).init(state.params))
        new_state, metrics = jax.jit(lambda s: mod.update(s, short_cartpole, cfg))(state)
        sigma = float(np.float32(cfg.sigma))  # generation 0
        lr = float(np.float32(cfg.learning_rate))
        eps = es.draw_noise(
            state.noise_root, state.generation, state.params, cfg.pop_size // 2, cfg, mod.MATRIX_NOISE
        )
        _, episode_key = jax.random.split(state.key)
        member_keys = jnp.repeat(jax.random.split(episode_key, cfg.pop_size // 2), 2, axis=0)
        returns = jnp.stack(
            [
                es.fitness(
                    member_keys[i],
                    short_cartpole,
                    cfg,
                    explicit_member_params(name, cfg, state.params, eps, i, sigma),
                )[0]
                for i in range(cfg.pop_size)
            ]
        )
        np.testing.assert_allclose(float(metrics["train_return"]), float(jnp.mean(returns)), rtol=1e-6)
        u = explicit_update(name, cfg, state.params, eps, noise.zscore(returns).astype(jnp.float64), sigma)
        for old, new, step in zip(
            jax.tree_util.tree_leaves(state.params), jax.tree_util.tree_leaves(new_state.params), u
        ):
            np.testing.assert_allclose(new - old, lr * step, rtol=1e-9, atol=1e-12)
        assert max(float(jnp.max(jnp.abs(step))) for step in u) > 1e-3


@pytest.mark.parametrize("name", ["eggroll", "openes"])
def test_antithetic_members_are_exact_negatives(name):
    """With W = 0 and b = 0 a one-layer member's output is sigma s (E x + eps_b): pairs must negate bit for bit."""
    mod = ES_MODULES[name]
    cfg = small_cfg(name, pop_size=8)
    params = {"layers": [{"w": jnp.zeros((3, 5)), "b": jnp.zeros(3)}]}  # one linear layer
    eps = es.draw_noise(jax.random.PRNGKey(1), jnp.int32(0), params, 4, cfg, mod.MATRIX_NOISE)
    x = jnp.broadcast_to(jnp.eye(5, dtype=jnp.float32), (8, 5, 5))
    fwd = lambda p, mm, xi: networks.forward(p, xi, "pqn", mm)  # noqa: E731
    out = jax.jit(lambda p, e, x: es.population_map(fwd, p, e, SIGMA, cfg, mod.MATRIX_NOISE, x))(
        params, eps, x
    )
    np.testing.assert_array_equal(np.asarray(out[0::2]), -np.asarray(out[1::2]))
    assert float(jnp.min(jnp.abs(out))) > 0  # every entry perturbed
    # Different pairs get different noise.
    assert not np.allclose(out[0], out[2])


@pytest.mark.parametrize("name", ["eggroll", "openes"])
def test_noise_is_a_pure_function_of_key_generation_and_pair(name):
    """The generation's draw (used by both the forward pass and the gradient in `update`)
    equals pair j's noise regenerated alone from fold_in(fold_in(fold_in(root, leaf), t), j)."""
    mod = ES_MODULES[name]
    cfg = small_cfg(name)
    params = small_params(jax.random.PRNGKey(0), jnp.float32)
    root, t = jax.random.PRNGKey(11), jnp.int32(3)
    eps = es.draw_noise(root, t, params, 3, cfg, mod.MATRIX_NOISE)

    @jax.jit
    def drawn_one_by_one(root, t):
        return [
            [
                mod.sample(noise.noise_key(root, k, t, j), leaf.shape, leaf.dtype, cfg)
                if leaf.ndim == 2
                else jax.random.normal(noise.noise_key(root, k, t, j), leaf.shape, leaf.dtype)
                for j in range(3)
            ]
            for k, leaf in enumerate(jax.tree_util.tree_leaves(params))
        ]

    for k, per_pair in enumerate(drawn_one_by_one(root, t)):
        for j, alone in enumerate(per_pair):
            for got, want in zip(jax.tree_util.tree_leaves(alone), jax.tree_util.tree_leaves(eps[k])):
                np.testing.assert_array_equal(np.asarray(want[j]), np.asarray(got))
    # A different generation or pair gives different noise.
    other = es.draw_noise(root, t + 1, params, 3, cfg, mod.MATRIX_NOISE)
    first = jax.tree_util.tree_leaves(eps[0])[0]
    assert not np.allclose(first, jax.tree_util.tree_leaves(other[0])[0])
    assert not np.allclose(first[0], first[1])


@pytest.mark.parametrize("rank", [1, 4, 16])
def test_eggroll_perturbation_entries_have_zero_mean_unit_variance(rank):
    """E = A B^T / sqrt(r), read back through EGGROLL's own matmul (W = 0, x = I, sigma = 1).

    Diagonal entries E[a, a] = sum_k A[a, k] B[a, k] / sqrt(r) of one draw use
    disjoint factor rows, so over K draws they are n = K m iid samples. Their
    mean has std 1/sqrt(n); the sample variance has std sqrt((mu4 - 1)/n) with
    the fourth moment mu4 = 3 + 6/r. Tolerances are 5 of those stds.
    """
    cfg = eggroll.Config(rank=rank)
    m, draws = 64, 2000
    keys = noise.pair_keys(jax.random.PRNGKey(rank), 0, jnp.int32(0), draws)
    eye = jnp.eye(m, dtype=jnp.float32)

    def e_transposed(key):
        factors = eggroll.sample(key, (m, m), jnp.float32, cfg)
        return eggroll.matmul(jnp.zeros((m, m)), eye, factors, 1.0, 1.0, cfg)

    e = jax.jit(jax.vmap(e_transposed))(keys)
    samples = np.asarray(jnp.diagonal(e, axis1=1, axis2=2), np.float64).ravel()
    n = samples.size
    assert abs(samples.mean()) < 5 / math.sqrt(n)
    assert abs(samples.var() - 1.0) < 5 * math.sqrt((2 + 6 / rank) / n)
    # The entries are really rank-r products, not Gaussians: the fourth moment is 3 + 6/r.
    if rank == 1:
        assert abs(np.mean(samples**4) - 9.0) < 1.5


def test_eggroll_never_materialises_population_matrices():
    """Compiled temp memory of one generation's population forward + gradient at N=4096, m=n=1024.

    N m n float32 = 16 GiB. EGGROLL's factors are N/2 r (m + n) numbers (64 MiB);
    OpenES must form every member's W + sigma E. Lowered and compiled only, never run.
    """
    n_pop, m, n = 4096, 1024, 1024
    population_bytes = n_pop * m * n * 4
    spec = jax.ShapeDtypeStruct
    params = {"layers": [{"w": spec((m, n), jnp.float32), "b": spec((m,), jnp.float32)}]}
    args = (params, spec((n_pop, n), jnp.float32), spec((2,), jnp.uint32), spec((n_pop,), jnp.float32))

    def temp_bytes(mod, cfg):
        def generation(params, obs, root, fitness):
            eps = es.draw_noise(root, jnp.int32(0), params, n_pop // 2, cfg, mod.MATRIX_NOISE)
            fwd = lambda p, mm, x: networks.forward(p, x, "pqn", mm)  # noqa: E731
            out = es.population_map(fwd, params, eps, 0.1, cfg, mod.MATRIX_NOISE, obs)
            return out, es.estimate_update(params, eps, fitness, 0.1, cfg, mod.MATRIX_NOISE)

        return jax.jit(generation).lower(*args).compile().memory_analysis().temp_size_in_bytes

    eggroll_temp = temp_bytes(eggroll, eggroll.Config(pop_size=n_pop, rank=4))
    openes_temp = temp_bytes(openes, openes.Config(pop_size=n_pop))
    assert eggroll_temp < population_bytes / 50, eggroll_temp
    assert openes_temp >= population_bytes, openes_temp


# ---------------------------------------------------------------- full generations


def tiny(name, **kw):
    base = dict(pop_size=8, layer_size=8, n_layers=1, n_parallel_evaluations=2)
    if name == "eggroll":
        return eggroll.Config(rank=2, **base, **kw)
    return openes.Config(**base, **kw)


_JITTED = {}


def jitted_update(name, env, cfg):
    """One compiled `update` per (algorithm, env, config), shared by the tests below (compiles dominate)."""
    if (name, env, cfg) not in _JITTED:
        mod = ES_MODULES[name]
        _JITTED[name, env, cfg] = jax.jit(lambda s: mod.update(s, env, cfg))
    return _JITTED[name, env, cfg]


@pytest.mark.parametrize("name", ["eggroll", "openes"])
def test_update_is_deterministic_and_reports_metrics(name, short_cartpole):
    mod = ES_MODULES[name]
    cfg = tiny(name)
    update = jitted_update(name, short_cartpole, cfg)

    def run(seed, generations=2):
        state = mod.init(jax.random.PRNGKey(seed), short_cartpole, cfg)
        history = []
        for _ in range(generations):
            state, metrics = update(state)
            history.append(metrics)
        return state, history

    state_a, hist_a = run(0)
    state_b, hist_b = run(0)
    for a, b in zip(
        jax.tree_util.tree_leaves((state_a, hist_a)), jax.tree_util.tree_leaves((state_b, hist_b))
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    state_c, _ = run(1)
    assert not np.array_equal(state_a.params["layers"][0]["w"], state_c.params["layers"][0]["w"])

    assert int(state_a.generation) == 2
    steps = mod.env_steps_per_update(short_cartpole, cfg)
    assert steps == 8 * 2 * TINY_EPISODE
    for metrics in hist_a:
        for key in ("train_return", "fitness_std", "sigma", "lr"):
            assert metrics[key].shape == () and metrics[key].dtype == jnp.float32
            assert np.isfinite(float(metrics[key]))
        assert metrics["valid_env_steps"].shape == () and metrics["valid_env_steps"].dtype == jnp.int32
        assert 8 * 2 <= float(metrics["valid_env_steps"]) <= steps
        assert 1.0 <= float(metrics["train_return"]) <= TINY_EPISODE
    # sigma and lr decay geometrically per generation
    np.testing.assert_allclose(float(hist_a[1]["sigma"]), cfg.sigma * cfg.sigma_decay, rtol=1e-6)
    np.testing.assert_allclose(float(hist_a[1]["lr"]), cfg.learning_rate * cfg.lr_decay, rtol=1e-6)
    # the update moved the policy; policy() is the distribution's mean
    init_state = mod.init(jax.random.PRNGKey(0), short_cartpole, cfg)
    assert not np.array_equal(mod.policy(state_a)["layers"][0]["w"], init_state.params["layers"][0]["w"])
    assert mod.policy(state_a) is state_a.params


def test_fitness_shaping():
    f = jnp.array([3.0, 1.0, 2.0, 2.0, 10.0])
    np.testing.assert_allclose(noise.centered_ranks(f), [0.25, -0.5, -0.125, -0.125, 0.5])
    z = noise.zscore(f)
    np.testing.assert_allclose(
        z, (f - f.mean()) / np.sqrt(np.var(f) + 1e-5), rtol=1e-6
    )  # the official convert_fitnesses
    np.testing.assert_array_equal(noise.zscore(jnp.ones(4)), jnp.zeros(4))
    np.testing.assert_array_equal(noise.pair_weights(jnp.array([1.0, 4.0, 2.0, 2.0])), [-3.0, 0.0])
    np.testing.assert_array_equal(noise.member_sign(jnp.arange(4)), [1.0, -1.0, 1.0, -1.0])


def test_config_defaults_are_the_papers_cartpole_rows():
    for module in (eggroll, openes):
        cfg = module.Config()
        cfg.validate()
        row = paper.row(module.__name__.rsplit(".", 1)[-1], "CartPole-v1")
        assert {k: getattr(cfg, k) for k in row} == row
        assert (cfg.network, cfg.update_scale) == ("hyperscalees", "official")
    assert not hasattr(openes.Config(), "rank")


def test_official_network_layout_and_initialisation():
    """HyperscaleES ActorCriticMLP: a bias-free embedding, n_layers biased layers, a biased head;
    matrices N(0, 1)/sqrt(fan_in) from the keys the official rand_init splits; biases and log_std 0."""
    key = jax.random.PRNGKey(3)
    settings = PolicySettings(layer_size=16, n_layers=3)
    params = networks.init_policy(key, 5, Box.make(-1.0, 1.0, 2), settings)
    layers = params["layers"]
    assert [tuple(layer["w"].shape) for layer in layers] == [(16, 5), (16, 16), (16, 16), (16, 16), (2, 16)]
    assert "b" not in layers[0] and all("b" in layer and not layer["b"].any() for layer in layers[1:])
    obs_key, head_key, mlp_key, _ = jax.random.split(key, 4)
    np.testing.assert_array_equal(layers[0]["w"], jax.random.normal(obs_key, (16, 5)) * (1 / jnp.sqrt(5)))
    np.testing.assert_array_equal(layers[-1]["w"], jax.random.normal(head_key, (2, 16)) * (1 / jnp.sqrt(16)))
    for k, layer in zip(jax.random.split(mlp_key, 3), layers[1:-1]):
        np.testing.assert_array_equal(layer["w"], jax.random.normal(k, (16, 16)) * (1 / jnp.sqrt(16)))
    np.testing.assert_array_equal(params["log_std"], 0.0)
    # pqn after the embedding and after every hidden layer, none after the head
    x = jax.random.normal(jax.random.PRNGKey(1), (5,))
    h = networks.pqn(layers[0]["w"] @ x)
    for layer in layers[1:-1]:
        h = networks.pqn(layer["w"] @ h + layer["b"])
    np.testing.assert_allclose(
        networks.forward(params, x), layers[-1]["w"] @ h + layers[-1]["b"], rtol=1e-5, atol=1e-6
    )


def test_rejax_network_is_flax_dense_default():
    """rejax's actor: n_layers Dense(layer_size) + head, flax's lecun-normal (truncated) kernels, zero biases."""
    settings = PolicySettings(network="rejax", layer_size=256, n_layers=3)
    params = networks.init_policy(jax.random.PRNGKey(0), 64, Box.make(-1.0, 1.0, 3), settings)
    shapes = [tuple(layer["w"].shape) for layer in params["layers"]]
    assert shapes == [(256, 64), (256, 256), (256, 256), (3, 256)]
    w = np.asarray(params["layers"][1]["w"])
    assert abs(w.std() * np.sqrt(256) - 1.0) < 0.02  # variance 1/fan_in
    assert (
        np.abs(w).max() * np.sqrt(256) <= 2.0 / 0.8796256610342398 + 1e-5
    )  # truncated at 2 std of the unscaled normal
    assert all(not layer["b"].any() for layer in params["layers"]) and not params["log_std"].any()


@pytest.mark.parametrize(
    "module, field, value, allowed",
    [
        (eggroll, "pop_size", 7, "even"),
        (eggroll, "pop_size", 0, "even"),
        (eggroll, "rank", 0, ">= 1"),
        (eggroll, "sigma", 0.0, "> 0"),
        (openes, "sigma_decay", 1.5, r"\(0, 1\]"),
        (openes, "optimizer", "rmsprop", "sgd, adam, adamw"),
        (eggroll, "learning_rate", -1.0, "> 0"),
        (openes, "lr_decay", 0.0, r"\(0, 1\]"),
        (openes, "n_parallel_evaluations", 0, ">= 1"),
        (eggroll, "activation", "gelu", "pqn"),
        (openes, "layer_size", 0, ">= 1"),
        (eggroll, "update_scale", "evosax", "official, textbook"),
        (openes, "rank_transform", "yes", "true, false"),
    ],
)
def test_config_validation_names_field_and_allowed_values(module, field, value, allowed):
    cfg = module.Config(**{field: value})
    with pytest.raises(ValueError, match=field) as err:
        cfg.validate()
    assert re.search(allowed, str(err.value)), str(err.value)


# ---------------------------------------------------------------- evosax adapter


@pytest.mark.parametrize("strategy", ["CMA_ES", "Open_ES"])
def test_evosax_adapter_runs_a_few_generations(strategy, short_cartpole):
    alg = get_algorithm(f"evosax:{strategy}")
    cfg = alg.Config(pop_size=8, layer_size=8, n_layers=1)
    cfg.validate()
    state = alg.init(jax.random.PRNGKey(0), short_cartpole, cfg)
    template = networks.init_policy(jax.random.PRNGKey(0), 4, Discrete(2), cfg)
    update = jax.jit(lambda s: alg.update(s, short_cartpole, cfg))
    for _ in range(3):
        state, metrics = update(state)
        for key in ("train_return", "fitness_std"):
            assert metrics[key].shape == () and metrics[key].dtype == jnp.float32
            assert np.isfinite(float(metrics[key]))
        assert metrics["valid_env_steps"].dtype == jnp.int32
        assert (
            8
            <= float(metrics["valid_env_steps"])
            <= alg.env_steps_per_update(short_cartpole, cfg)
            == 8 * TINY_EPISODE
        )
    params = alg.policy(state)
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(template)
    assert all(np.all(np.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(params))
    assert [leaf.shape for leaf in jax.tree_util.tree_leaves(params)] == [
        leaf.shape for leaf in jax.tree_util.tree_leaves(template)
    ]


def test_unknown_evosax_strategy_lists_the_strategies():
    with pytest.raises(KeyError) as err:
        get_algorithm("evosax:CMA-ES")
    message = str(err.value)
    assert "CMA-ES" in message and "CMA_ES" in message and "SNES" in message and "Open_ES" in message
