"""One persistent XLA compilation cache for every process that compiles a run's programs.

A search's points, a rerun and a resumed run compile the same programs again; with JAX's persistent
cache each is compiled once and then read from disk (the same executable: no result changes). The
folder, first given wins:

    --compile-cache DIR | off        (esbench run, sweep, reproduce, plan, bench)
    ESBENCH_COMPILE_CACHE=DIR | off
    JAX_COMPILATION_CACHE_DIR=DIR     (a user's own JAX setting is kept)
    $XDG_CACHE_HOME/esbench/xla, else ~/.cache/esbench/xla   (where a GPU or TPU plugin is installed)
    off                                                        (a CPU-only install)

so that two runs into two results folders share it. A CPU-only install leaves it off unless asked:
XLA:CPU (jax 0.9) logs an error-level "machine feature ... not supported on the host machine ... SIGILL"
line for every program it reads back from the cache, on the machine that wrote it, because it
compares two tuning flags as CPU features (jax-ml/jax#38445, openxla/xla#44565); the programs load
and run, but that is a flood no user should have to learn to ignore. `--compile-cache DIR` turns it
on there (docs/plan.md measures what it saves). Every process that compiles applies it: the CLI
process, Ray workers (the driver's folder travels in RunOptions.compile_cache; on a cluster point it at
a disk the workers share) and `esbench plan`'s measuring children (measure_in_child.py).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

VARIABLE = "ESBENCH_COMPILE_CACHE"
JAX_VARIABLE = "JAX_COMPILATION_CACHE_DIR"
OFF = "off"
# Programs that compile faster than this are not worth a disk entry (eager ops); every program a
# group compiles (init, chunk, policy, evaluation) takes longer on a CPU and far longer on a GPU.
MIN_COMPILE_SECONDS = 0.1


def default_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "esbench" / "xla"


ACCELERATOR_PLUGINS = ("jax-cuda12-plugin", "jax-cuda13-plugin", "libtpu")


def accelerator_installed() -> bool:
    """Whether a GPU or TPU plugin of jax is installed (read from the package metadata: no backend starts)."""
    from importlib.metadata import PackageNotFoundError, version

    for name in ACCELERATOR_PLUGINS:
        try:
            version(name)
            return True
        except PackageNotFoundError:
            continue
    return False


def resolve(option: str | None = None) -> str:
    """The cache folder (or "off") from the option, the environment and the default (module docstring)."""
    for value in (option, os.environ.get(VARIABLE), os.environ.get(JAX_VARIABLE)):
        if value is not None and value.strip():
            value = value.strip()
            return OFF if value.lower() == OFF else str(Path(value).expanduser())
    return str(default_folder()) if accelerator_installed() else OFF


def current() -> str:
    """This process's setting, as `resolve` gives it (to hand to a child process)."""
    folder = jax.config.jax_compilation_cache_dir
    return folder if jax.config.jax_enable_compilation_cache and folder else OFF


def apply(setting: str | None) -> None:
    """Cache this process's compiles in folder `setting` ("off": none; None: leave the process as it is)."""
    from jax._src import compilation_cache

    if setting is None or setting == current():
        return
    if setting == OFF:
        jax.config.update("jax_enable_compilation_cache", False)
    else:
        Path(setting).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_enable_compilation_cache", True)
        jax.config.update("jax_compilation_cache_dir", setting)
        jax.config.update(
            "jax_persistent_cache_min_compile_time_secs",
            min(MIN_COMPILE_SECONDS, jax.config.jax_persistent_cache_min_compile_time_secs),
        )
    compilation_cache.reset_cache()  # the cache is opened once per process: reopen it on the new folder
