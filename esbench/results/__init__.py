"""The results store: the schema of what a trial produces, atomic writes, loading, trained policies."""

from esbench.results.policies import TrainedPolicy, load_trained_policy
from esbench.results.schema import METRIC_COLUMNS, TrialResult
from esbench.results.store import (
    CorruptResultsError,
    ResultStore,
    atomic_file,
    count_finished,
    damaged_trials,
    is_finished,
    load,
    load_configs,
    load_failures,
    load_protocol,
    load_summaries,
    read_trial,
    trial_path,
    write_trial,
)

__all__ = [
    "CorruptResultsError",
    "METRIC_COLUMNS",
    "ResultStore",
    "TrainedPolicy",
    "TrialResult",
    "atomic_file",
    "count_finished",
    "damaged_trials",
    "is_finished",
    "load",
    "load_configs",
    "load_failures",
    "load_protocol",
    "load_summaries",
    "load_trained_policy",
    "read_trial",
    "trial_path",
    "write_trial",
]
