"""The persistent compilation cache: which folder wins, and that a process compiling with it fills it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from esbench.runner import compile_cache

ROOT = Path(__file__).resolve().parents[1]
CACHE_VARIABLES = (compile_cache.VARIABLE, compile_cache.JAX_VARIABLE, "XDG_CACHE_HOME")


@pytest.fixture
def clean_environment(monkeypatch):
    for name in CACHE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_option_wins_then_esbench_variable_then_jax_variable_then_the_user_cache(
    clean_environment, tmp_path
):
    env = clean_environment
    env.setenv("HOME", str(tmp_path / "home"))
    env.setattr(compile_cache, "accelerator_installed", lambda: False)
    assert compile_cache.resolve(None) == compile_cache.OFF  # a CPU-only install: off unless asked
    env.setattr(compile_cache, "accelerator_installed", lambda: True)
    assert compile_cache.resolve(None) == str(tmp_path / "home" / ".cache" / "esbench" / "xla")
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.resolve(None) == str(tmp_path / "xdg" / "esbench" / "xla")
    env.setenv(compile_cache.JAX_VARIABLE, str(tmp_path / "jax"))
    assert compile_cache.resolve(None) == str(tmp_path / "jax")
    env.setenv(compile_cache.VARIABLE, "OFF")
    assert compile_cache.resolve(None) == compile_cache.OFF
    assert compile_cache.resolve(str(tmp_path / "mine")) == str(tmp_path / "mine")
    assert compile_cache.resolve("off") == compile_cache.OFF


PROGRAM = """
import jax, jax.numpy as jnp
from esbench.runner import compile_cache
compile_cache.apply(compile_cache.resolve(None))
x = jnp.arange(4096.0)
jax.jit(lambda v: jnp.cumsum(jnp.sin(v) @ jnp.outer(v, v)))(x).block_until_ready()
print(compile_cache.current())
"""


def _compile_in_child(env: dict) -> str:
    base = {k: v for k, v in os.environ.items() if k not in CACHE_VARIABLES}
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], cwd=ROOT, env={**base, **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_a_process_caches_its_compiles_in_the_resolved_folder_and_off_writes_none(tmp_path):
    home = tmp_path / "home"
    if compile_cache.accelerator_installed():  # the default folder; a CPU-only install defaults to off
        assert _compile_in_child({"HOME": str(home)}) == str(home / ".cache" / "esbench" / "xla")
        assert any(name.startswith("jit_") for name in os.listdir(home / ".cache" / "esbench" / "xla"))
    else:
        assert _compile_in_child({"HOME": str(home)}) == compile_cache.OFF
        assert not (home / ".cache").exists()
    mine = tmp_path / "mine"
    assert _compile_in_child({"HOME": str(home), compile_cache.VARIABLE: str(mine)}) == str(mine)
    assert any(name.startswith("jit_") for name in os.listdir(mine))
    folder = tmp_path / "jax-users-own"
    assert _compile_in_child({"HOME": str(home), compile_cache.JAX_VARIABLE: str(folder)}) == str(folder)
    assert any(name.startswith("jit_") for name in os.listdir(folder))
    off_home = tmp_path / "off"
    assert _compile_in_child({"HOME": str(off_home), compile_cache.VARIABLE: "off"}) == compile_cache.OFF
    assert not (off_home / ".cache").exists()


def test_every_command_that_compiles_takes_the_options_and_hands_them_to_its_workers(tmp_path):
    from esbench import cli
    from esbench.cli.common import run_options

    parser = cli.build_parser()
    for command in (["run", "--env", "CartPole-v1", "--algo", "ppo", "--env-steps", "8"], ["sweep", "f", "--out", "o"],
                    ["reproduce", "f", "--out", "o"], ["plan", "f"], ["bench"]):  # fmt: skip
        args = parser.parse_args([*command, "--compile-cache", "off", "--deterministic"])
        assert (args.compile_cache, args.deterministic) == ("off", True)
    assert not hasattr(parser.parse_args(["report", "r"]), "compile_cache")
    args = parser.parse_args(["sweep", "f", "--out", str(tmp_path), "--deterministic"])
    options = run_options(args)  # what Ray workers apply: this process's folder and the switch
    assert (options.compile_cache, options.deterministic) == (compile_cache.current(), True)
