"""esbench: EGGROLL, OpenES and PPO on JAX-native vectorised environments."""

__version__ = "0.1.0"
