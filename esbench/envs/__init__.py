"""One functional interface over gymnax, brax, craftax, jumanji, kinetix and navix."""

from esbench.envs.core import Box, Discrete, Env, EnvSpec, EnvState, StepInfo, build_env, flatten_obs
from esbench.envs.registry import PAPER_ENVS, SUITES, UnknownEnvError, make, register, registered_ids, resolve

__all__ = [
    "Box",
    "Discrete",
    "Env",
    "EnvSpec",
    "EnvState",
    "StepInfo",
    "build_env",
    "flatten_obs",
    "PAPER_ENVS",
    "SUITES",
    "UnknownEnvError",
    "make",
    "register",
    "registered_ids",
    "resolve",
]
