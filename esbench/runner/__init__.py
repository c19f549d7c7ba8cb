"""Trial configs, sweep expansion, trial execution and backends (local, ray)."""

from esbench.runner.backends import BACKENDS, SweepOutcome, run_trials
from esbench.runner.config import ConfigError, TrialSpec, build_algo_config
from esbench.runner.sweep import expand_sweep, load_sweep_file
from esbench.runner.trial import TrialResult, run_trial

__all__ = [
    "BACKENDS", "ConfigError", "SweepOutcome", "TrialResult", "TrialSpec", "build_algo_config",
    "expand_sweep", "load_sweep_file", "run_trial", "run_trials",
]
