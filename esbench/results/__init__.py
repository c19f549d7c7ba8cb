"""The results store: write trials atomically, load them as one DataFrame, load trained policies."""

from esbench.results.policies import TrainedPolicy, load_trained_policy
from esbench.results.store import (
    CorruptResultsError, ResultStore, is_finished, load, load_summaries, read_trial, trial_path, write_trial,
)

__all__ = [
    "CorruptResultsError", "ResultStore", "TrainedPolicy", "is_finished", "load", "load_summaries",
    "load_trained_policy", "read_trial", "trial_path", "write_trial",
]
