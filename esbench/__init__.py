"""esbench: EGGROLL, OpenES and PPO on JAX-native vectorised environments."""

__version__ = "0.1.0"

from esbench import quiet as _quiet

_quiet.install()  # before any suite is imported: known third-party noise off, real warnings on
