"""Where a number came from: the maths version, the device, the package versions.

The runner stores these with every trial and the benchmarks with every
measurement, so both ask this module.

PROTOCOL_VERSION goes into every trial id: bump it whenever an algorithm's
maths or a trial's measurement conventions change, so that a results folder
never mixes runs of different maths (an old trial id simply stops matching).

    1  esbench 0.1: textbook ES gradient, esbench's network, esbench's PPO
    2  the official ES update and networks, PPO flavours, evaluation at env step 0
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path

from esbench import __version__

PROTOCOL_VERSION = 2

# suite -> the distribution that provides it
SUITE_PACKAGES = {
    "gymnax": "gymnax",
    "brax": "brax",
    "craftax": "craftax",
    "jumanji": "jumanji",
    "kinetix": "kinetix-env",
    "navix": "navix",
}
CORE_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy")


def package_versions(suites=()) -> dict[str, str]:
    """esbench's version, the core packages' and those of the given suites ('unknown' if not installed)."""
    names = [*CORE_PACKAGES, *(SUITE_PACKAGES[s] for s in suites if s in SUITE_PACKAGES)]
    versions = {"esbench": __version__}
    for name in dict.fromkeys(names):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "unknown"
    return versions


def device_info() -> dict:
    """The JAX device the work runs on, and the host."""
    import jax

    device = jax.devices()[0]
    kind = getattr(device, "device_kind", "unknown")
    return {
        "platform": device.platform,
        "device_kind": kind,
        "device_count": jax.device_count(),
        "description": f"{device.platform}:{kind} x{jax.device_count()}",
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
    }


def device_description() -> str:
    """'cpu:cpu x1', 'gpu:NVIDIA H100 80GB HBM3 x1', ..."""
    return device_info()["description"]


def code_commit() -> str:
    """The git commit esbench runs from ('<sha>', '<sha>-dirty' with uncommitted changes), or 'unknown'
    (an installed copy outside a git checkout)."""
    import subprocess

    folder = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{sha}-dirty" if dirty else sha
