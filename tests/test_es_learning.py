"""EGGROLL and OpenES learn: CartPole-v1 solved, Pendulum-v1 clearly improved, within stated budgets.

Budgets are shrunk from the paper's rows (esbench/paper/rl_tables.yaml) to
fit a 2-core CPU: smaller populations and the official network at 2 layers
of 32 instead of 3 of 256; every other hyperparameter is the paper's row,
and the update is the official one. Evaluation runs `policy(state)`
over 16 fresh episodes with the config's own deterministic/stochastic actions.
Seeded and deterministic on CPU.

Measured on the project's shared 2-core CPU (load ~7): EGGROLL CartPole
reaches 500 by generation 20 (~3 s after a ~30 s compile); OpenES CartPole
by generation 40 (~15 s); EGGROLL Pendulum goes from -1218 to about -250 in
150-200 generations (~40 s).
"""

import jax
import pytest

from esbench.algorithms import eggroll, evaluate, openes
from esbench.envs import make

pytestmark = pytest.mark.slow
EVAL_EPISODES = 16


def train(mod, env, cfg, generations, seed=0):
    """The runner's loop, written out: jit(update) called `generations` times."""
    state = mod.init(jax.random.PRNGKey(seed), env, cfg)
    initial = mod.policy(state)
    update = jax.jit(lambda s: mod.update(s, env, cfg))
    for _ in range(generations):
        state, metrics = update(state)
    return initial, state, metrics


def eval_return(env, cfg, params, seed=1234):
    stats = jax.jit(
        lambda p, k: evaluate.evaluate_policy(
            k, env, p, EVAL_EPISODES, cfg.deterministic_policy, cfg.activation
        )
    )(params, jax.random.PRNGKey(seed))
    return float(stats.returns.mean())


def test_eggroll_solves_cartpole(cartpole):
    # Budget: 50 generations x 128 members x 1 episode x 500 steps = 3.2e6 env steps.
    env = cartpole
    cfg = eggroll.Config(
        pop_size=128, layer_size=32, n_layers=2
    )  # rank 4, sigma 0.2, sgd 0.1: the paper's row
    _, state, metrics = train(eggroll, env, cfg, generations=50)
    assert eval_return(env, cfg, eggroll.policy(state)) >= 475.0
    assert float(metrics["train_return"]) >= 400.0  # the population itself, not just its mean, balances


def test_openes_solves_cartpole(cartpole):
    # Budget: 60 generations x 128 members x 2 episodes x 500 steps = 7.68e6 env steps.
    env = cartpole
    cfg = openes.Config(
        pop_size=128, n_parallel_evaluations=2, layer_size=32, n_layers=2
    )  # sigma 0.5, adamw 0.1, ranks
    _, state, _ = train(openes, env, cfg, generations=60)
    assert eval_return(env, cfg, openes.policy(state)) >= 475.0


def test_eggroll_improves_pendulum():
    # Budget: 150 generations x 512 members x 1 episode x 200 steps = 1.54e7 env steps.
    env = make("Pendulum-v1")
    cfg = eggroll.Config(
        pop_size=512,
        layer_size=32,
        n_layers=2,
        rank=4,
        sigma=0.05,
        sigma_decay=0.995,
        optimizer="adam",
        learning_rate=0.01,
        lr_decay=0.995,
    )  # the paper's Pendulum row except pop_size (4096) and the network's size
    initial, state, _ = train(eggroll, env, cfg, generations=150)
    before = eval_return(env, cfg, initial)
    after = eval_return(env, cfg, eggroll.policy(state))
    assert before < -900.0  # a random pqn policy swings nowhere near upright
    assert after >= before + 500.0, (before, after)
    assert after >= -600.0, (before, after)
