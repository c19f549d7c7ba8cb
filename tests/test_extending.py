"""Extending esbench is one file each: a toy environment and a toy baseline, written outside the package,
run through `esbench sweep --import` on the local and Ray backends and drawn by `esbench report`."""

import subprocess
from pathlib import Path

import matplotlib.colors
import pytest
from conftest import NON_TIME_COLUMNS

from esbench import cli, plugins
from esbench.report import aggregate as agg
from esbench.report import figures
from esbench.results import load, load_summaries

ROOT = Path(__file__).resolve().parents[1]

# A corridor of length 10: move right (1) or left (0); reward 1 at the end, which ends the episode.
TOY_ENV = """
import jax.numpy as jnp
from esbench.envs import Discrete, EnvSpec, build_env, register


def make_corridor():
    spec = EnvSpec(id="toy/Corridor-v0", suite="custom", obs_dim=1, action=Discrete(2), max_episode_steps=30)

    def raw_reset(key):
        return jnp.zeros(1), jnp.int32(0)

    def raw_step(key, position, action):
        position = jnp.clip(position + 2 * action - 1, 0, 10)
        at_end = position == 10
        return position[None].astype(jnp.float32) / 10, position, at_end.astype(jnp.float32), at_end

    return build_env(spec, raw_reset, raw_step)


register("toy/Corridor-v0", make_corridor)
"""

# Random search on the policy parameters: keep the best of `pop_size` Gaussian perturbations.
TOY_BASELINE = """
import dataclasses
import jax
import jax.numpy as jnp
from flax import struct
from esbench.algorithms import register_algorithm
from esbench.algorithms import es, networks
from esbench.algorithms.networks import PolicySettings


@dataclasses.dataclass(frozen=True)
class Config(PolicySettings):
    pop_size: int = 8
    sigma: float = 0.5
    n_parallel_evaluations: int = 1


@struct.dataclass
class State:
    params: dict
    best: jax.Array
    key: jax.Array


class RandomSearch:
    Config = Config
    LABEL = "Random search"

    @staticmethod
    def init(key, env, cfg):
        init_key, key = jax.random.split(key)
        params = networks.init_policy(init_key, env.spec.obs_dim, env.spec.action, cfg)
        return State(params, jnp.float32(-jnp.inf), key)

    @staticmethod
    def update(state, env, cfg):
        key, noise_key, episode_key = jax.random.split(state.key, 3)
        leaves, treedef = jax.tree_util.tree_flatten(state.params)
        keys = jax.random.split(noise_key, len(leaves))
        candidates = jax.tree_util.tree_unflatten(treedef, [
            leaf + cfg.sigma * jax.random.normal(k, (cfg.pop_size, *leaf.shape)) for leaf, k in zip(leaves, keys)])
        returns, lengths = jax.vmap(lambda p, k: es.fitness(k, env, cfg, p))(
            candidates, jax.random.split(episode_key, cfg.pop_size))
        i = jnp.argmax(returns)
        better = returns[i] > state.best
        params = jax.tree_util.tree_map(lambda c, p: jnp.where(better, c[i], p), candidates, state.params)
        metrics = {"train_return": jnp.mean(returns), "valid_env_steps": jnp.sum(lengths)}
        return State(params, jnp.maximum(returns[i], state.best), key), metrics

    @staticmethod
    def policy(state):
        return state.params

    env_steps_per_update = staticmethod(es.env_steps_per_update)
    min_env_steps_per_update = staticmethod(es.min_env_steps_per_update)


register_algorithm("random_search", RandomSearch)
"""

SWEEP = """
envs: [toy/Corridor-v0, CartPole-v1]
algorithms:
  random_search: {pop_size: 8, layer_size: 8, n_layers: 1}
  eggroll: {pop_size: 8, rank: 1, layer_size: 8, n_layers: 1, n_parallel_evaluations: 1}
trial: {seeds: 2, env_steps: 1200, num_logs: 2, eval_episodes: 2, max_episode_steps: 30}
"""


@pytest.fixture
def plugin_folder(tmp_path):
    (tmp_path / "toy_env.py").write_text(TOY_ENV)
    (tmp_path / "toy_baseline.py").write_text(TOY_BASELINE)
    (tmp_path / "sweep.yaml").write_text(SWEEP)
    return tmp_path


def esbench(folder, *args):
    """The installed command, run in the plugin folder (a fresh process: nothing registered but by --import)."""
    return subprocess.run(["esbench", *args], cwd=folder, capture_output=True, text=True)


@pytest.fixture
def restore_registry(monkeypatch):
    """Plugins this test imports leave the registry and the plugin list with the test."""
    from esbench import algorithms

    monkeypatch.setattr(algorithms, "_REGISTRY", dict(algorithms._REGISTRY))
    monkeypatch.setattr(plugins, "_modules", list(plugins._modules))
    monkeypatch.setattr(plugins, "_paths", list(plugins._paths))


def test_a_new_env_and_baseline_run_through_sweep_and_report(plugin_folder, restore_registry):
    imports = ["--import", "toy_env", "--import", "toy_baseline"]
    without = esbench(plugin_folder, "sweep", "sweep.yaml", "--out", "results", "--quiet")
    assert (
        without.returncode == cli.EXIT_BAD_INPUT
        and "unknown environment id 'toy/Corridor-v0'" in without.stderr
    )

    done = esbench(plugin_folder, "sweep", "sweep.yaml", "--out", "results", "--quiet", *imports)
    assert done.returncode == 0, done.stderr
    summaries = load_summaries(plugin_folder / "results")
    assert sorted(zip(summaries.env, summaries.algo)) == sorted(
        (env, algo) for env in ("toy/Corridor-v0", "CartPole-v1") for algo in ("random_search", "eggroll")
    )
    assert summaries.status.eq("finished").all()

    ray = esbench(
        plugin_folder, "sweep", "sweep.yaml", "--out", "results_ray", "--quiet", "--backend", "ray", *imports
    )
    assert ray.returncode == 0, ray.stderr
    local = (
        load(plugin_folder / "results").sort_values(["trial_id", "seed", "log_point"]).reset_index(drop=True)
    )
    remote = (
        load(plugin_folder / "results_ray")
        .sort_values(["trial_id", "seed", "log_point"])
        .reset_index(drop=True)
    )
    assert local[["trial_id", *NON_TIME_COLUMNS]].equals(remote[["trial_id", *NON_TIME_COLUMNS]])

    report = esbench(plugin_folder, "report", "results", "--out", "plots", "--bootstrap", "20", *imports)
    assert report.returncode == 0, report.stderr
    summary = (plugin_folder / "plots" / "report.md").read_text()
    assert "Random search" in summary  # the baseline's own label
    assert (plugin_folder / "plots" / "returns_vs_env_steps.png").is_file()
    # Drawn in its own colour: the registry's fourth (after eggroll, openes, ppo), in every panel.
    plugins.load(["toy_baseline"], paths=[str(plugin_folder)])
    grid = figures.plot_return_grid(agg.check_results(local), "env_steps")
    lines = [line for ax in grid.axes for line in ax.get_lines() if line.get_label() == "Random search"]
    assert len(lines) == 2 and all(
        matplotlib.colors.to_hex(line.get_color()) == figures.PALETTE[3].lower() for line in lines
    )
    assert figures.PALETTE[3] not in {
        figures.algo_colours(["eggroll", "openes", "ppo"])[a] for a in ("eggroll", "openes", "ppo")
    }


def test_nothing_inside_the_package_names_the_plugins():
    hits = subprocess.run(
        ["git", "grep", "-l", "-e", "random_search", "-e", "Corridor", "--", "esbench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert hits == []
