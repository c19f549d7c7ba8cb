"""Shared fixtures: the environments most tests use and tiny trials of every built-in algorithm.

Tiny means a few seconds of training after a ~15 s compile on a 2-core CPU:
populations of 8, one layer of 8, episodes capped at 20 steps.
"""

import atexit
import os
import shutil
import sys
import tempfile
import textwrap

import jax
import pytest

from esbench import plugins
from esbench.envs import make
from esbench.runner import TrialSpec

# The checkout's envs/ and algorithms/ are what a user's command in it loads by itself; in this
# process, commands called as functions (cli.main) skip them, so the registry every test sees is
# the built-ins plus what a test registers. Tests of the drop-ins load them explicitly or run
# `esbench` in a subprocess.
plugins.DROP_IN_FOLDERS = ()

# One persistent XLA compilation cache for the session, its subprocesses included (they inherit the
# environment): the suite compiles the same tiny programs many times, and a cached executable is
# the same program, so no result changes. Fresh per session, removed at exit.
_COMPILATION_CACHE = tempfile.mkdtemp(prefix="esbench-tests-xla-cache-")
atexit.register(shutil.rmtree, _COMPILATION_CACHE, ignore_errors=True)
_CACHE_SETTINGS = {
    "jax_compilation_cache_dir": _COMPILATION_CACHE,
    "jax_persistent_cache_min_compile_time_secs": 0,
    "jax_persistent_cache_min_entry_size_bytes": 0,
}
for _name, _value in _CACHE_SETTINGS.items():
    os.environ[_name.upper()] = str(_value)
    jax.config.update(_name, _value)
# esbench's own setting would win over JAX's (runner/compile_cache.py): the suite never writes the
# user's cache.
os.environ.pop("ESBENCH_COMPILE_CACHE", None)

# Hyperparameters of a tiny trial per algorithm (the rest are the Config defaults: the paper's CartPole rows).
TINY_HPARAMS = {
    "eggroll": {"pop_size": 8, "rank": 1, "layer_size": 8, "n_layers": 1, "n_parallel_evaluations": 1},
    "openes": {"pop_size": 8, "layer_size": 8, "n_layers": 1, "n_parallel_evaluations": 1},
    "ppo": {"num_envs": 4, "num_steps": 8, "num_minibatches": 2, "layer_size": 8, "n_layers": 1},
}
TINY_EPISODE = 20
# The metric columns that do not depend on timing.
NON_TIME_COLUMNS = [
    "seed",
    "log_point",
    "update",
    "env_steps",
    "simulated_env_steps",
    "train_return",
    "eval_return_mean",
    "eval_return_std",
    "diverged",
]


@pytest.fixture(scope="session")
def cartpole():
    return make("CartPole-v1")


@pytest.fixture(scope="session")
def short_cartpole():
    """CartPole with episodes capped at TINY_EPISODE steps."""
    return make("CartPole-v1", TINY_EPISODE)


def tiny_spec(algo: str = "eggroll", **overrides) -> TrialSpec:
    """A tiny CartPole trial of `algo`: 3 log points, 2 evaluation episodes; `hparams` entries are merged."""
    hparams = {**TINY_HPARAMS[algo], **overrides.pop("hparams", {})}
    fields = dict(
        env="CartPole-v1",
        algo=algo,
        hparams=hparams,
        env_steps=8 * TINY_EPISODE * 6,
        num_logs=3,
        eval_episodes=2,
        max_episode_steps=TINY_EPISODE,
    )
    return TrialSpec(**{**fields, **overrides})


@pytest.fixture
def restore_registries(monkeypatch):
    """What a test registers or loads as a plugin leaves with it: registries, plugin records, drop-in modules."""
    from esbench import algorithms
    from esbench.envs import registry

    monkeypatch.setattr(algorithms, "_REGISTRY", dict(algorithms._REGISTRY))
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(plugins, "_files", dict(plugins._files))
    monkeypatch.setattr(plugins, "_origins", dict(plugins._origins))
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if name.startswith("esbench_dropin."):
            del sys.modules[name]


@pytest.fixture
def write_sweep(tmp_path):
    """write_sweep(yaml_text, name="sweep.yaml") -> the path of the (dedented) sweep file in tmp_path."""

    def write(text: str, name: str = "sweep.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture(scope="session")
def jax_cache(tmp_path_factory):
    """A persistent compilation cache shared by the protocol subprocesses: a rerun compiles nothing twice."""
    return tmp_path_factory.mktemp("jax_cache")
