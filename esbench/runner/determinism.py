"""`--deterministic`: XLA's deterministic GPU ops, so that a GPU rerun is bit-identical to the first run.

On a GPU, XLA may pick kernels by autotuning and reduce with atomics, whose order varies from run to
run; `--xla_gpu_deterministic_ops=true` (in XLA_FLAGS before the backend starts) rules both out, at
some speed. The random numbers are deterministic already (JAX's default PRNG, threefry, is
counter-based). A CPU run is deterministic without it: there the switch is accepted and does nothing.
docs/determinism.md says where bit-identity holds.
"""

from __future__ import annotations

import os

FLAG = "--xla_gpu_deterministic_ops=true"
CPU_NOTE = "--deterministic: nothing to do on a CPU (CPU runs are deterministic already)"


def is_on() -> bool:
    """Whether this process's XLA runs with deterministic GPU ops (the switch, or the user's XLA_FLAGS)."""
    return FLAG in os.environ.get("XLA_FLAGS", "").split()


def enable(say=print) -> None:
    """Set the flag before JAX's backend starts; on a CPU, `say` the one-line note that it does nothing."""
    import jax
    from jax._src import xla_bridge

    from esbench.validation import ConfigError

    if not is_on():
        if xla_bridge.backends_are_initialized() and jax.default_backend() != "cpu":
            raise ConfigError(
                "--deterministic must be set before JAX starts its GPU backend, and something (a plugin?) "
                f"started it first; set XLA_FLAGS={FLAG} in the environment instead"
            )
        os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {FLAG}".strip()
    if jax.default_backend() == "cpu":
        say(CPU_NOTE)
