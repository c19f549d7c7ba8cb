"""Trial specs and their resolution, sweep expansion, trial execution and backends (local, ray)."""

from esbench.runner.backends import BACKENDS, SweepOutcome, resolve_trials, run_trials
from esbench.runner.config import ResolvedTrial, TrialSpec, resolve_trial
from esbench.runner.sweep import expand_sweep, parse_sweep
from esbench.runner.sweep_file import load_sweep_file
from esbench.runner.trial import run_trial
from esbench.validation import ConfigError

__all__ = [
    "BACKENDS",
    "ConfigError",
    "ResolvedTrial",
    "SweepOutcome",
    "TrialSpec",
    "expand_sweep",
    "load_sweep_file",
    "parse_sweep",
    "resolve_trial",
    "resolve_trials",
    "run_trial",
    "run_trials",
]
