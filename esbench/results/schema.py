"""What a trial produces, stated once: the metric columns, their types, and `TrialResult`.

The runner builds rows with these columns, the store writes and checks them,
the report reads them; nobody else lists them.

Metrics (one row per seed per log point; log point 0 is before training):

    seed, log_point, update          ints: the seed, the log point, updates done so far
    env_steps                        int: env steps inside episodes so far (the x-axis, and what budgets count)
    simulated_env_steps              int: env steps simulated so far, masked steps after an episode end
                                     included (a cost: equal to env_steps for PPO)
    wall_clock_s                     float: training seconds so far (compile and evaluation excluded)
    train_return                     float: the last update's training return (NaN at log point 0)
    eval_return_mean, eval_return_std  float: evaluation of policy(state) over fresh episodes (NaN when not evaluated)
    throughput_sps                   float: env steps per second of the chunk before this log point
    diverged                         bool: the seed's parameters or returns have become non-finite
    m_<name>                         float: the algorithm's own metrics of the last update (sigma, lr, losses, ...)

`results.load` adds trial_id, env, algo and stage (sweep, search or final) in front.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

METRIC_COLUMNS: dict[str, str] = {
    "seed": "int64",
    "log_point": "int64",
    "update": "int64",
    "env_steps": "int64",
    "simulated_env_steps": "int64",
    "wall_clock_s": "float64",
    "train_return": "float64",
    "eval_return_mean": "float64",
    "eval_return_std": "float64",
    "throughput_sps": "float64",
    "diverged": "bool",
}
# Metric columns that measure time: they differ from run to run of the same program (all others do not).
TIMING_COLUMNS = ("wall_clock_s", "throughput_sps")
TRIAL_COLUMNS = ("trial_id", "env", "algo", "stage")
ALGORITHM_METRIC_PREFIX = "m_"
STAGES = ("sweep", "search", "reselect", "final", "matched")


@dataclass
class TrialResult:
    """What running one trial produces; the results store writes it."""

    config: dict[str, Any]  # the resolved trial config (with its trial_id)
    metrics: pd.DataFrame  # METRIC_COLUMNS (+ m_* columns)
    summary: dict[str, Any]  # status, final returns, timings, device, versions, protocol version
    policy_bytes: bytes  # flax msgpack of the final policy params of every seed (leading seed axis)


def metrics_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a DataFrame with METRIC_COLUMNS first, in their types, then the m_* columns."""
    frame = pd.DataFrame(rows)
    check_metrics(frame)
    extra = sorted(c for c in frame.columns if c not in METRIC_COLUMNS)
    return frame[[*METRIC_COLUMNS, *extra]].astype(METRIC_COLUMNS)


def check_metrics(frame: pd.DataFrame) -> None:
    """ValueError naming the schema columns `frame` lacks, or the columns it has that the schema does not know."""
    missing = [c for c in METRIC_COLUMNS if c not in frame.columns]
    unknown = [
        c
        for c in frame.columns
        if c not in METRIC_COLUMNS and c not in TRIAL_COLUMNS and not c.startswith(ALGORITHM_METRIC_PREFIX)
    ]
    if missing or unknown:
        raise ValueError(
            f"metrics do not follow esbench.results.schema: missing {missing}, unknown {unknown}; "
            f"expected {list(METRIC_COLUMNS)} plus '{ALGORITHM_METRIC_PREFIX}*' columns"
        )
