"""What a running trial has logged so far: per-seed counters and the metric rows, one per seed per log point.

The trial loop feeds it each chunk's metrics and evaluations; the summary and
the metrics table are read off it at the end. It is plain host data, so a
checkpoint can save it beside the algorithm state and a resumed trial goes on
logging exactly where the killed one stopped.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from esbench.results.schema import ALGORITHM_METRIC_PREFIX


@dataclasses.dataclass
class TrialRecord:
    seeds: tuple[int, ...]
    log_point: int = 0  # log points written so far after the initial one
    updates: np.ndarray = None  # int64 [seeds]: updates done
    env_steps: np.ndarray = None  # int64 [seeds]: env steps inside episodes
    simulated_env_steps: np.ndarray = None  # int64 [seeds]: env steps simulated
    diverged: np.ndarray = None  # bool [seeds]
    final_eval: np.ndarray = None  # float64 [seeds]: last finite evaluation mean before divergence
    final_eval_std: np.ndarray = None
    run_s: float = 0.0
    eval_s: float = 0.0
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        n = len(self.seeds)
        for name, dtype, fill in (
            ("updates", np.int64, 0),
            ("env_steps", np.int64, 0),
            ("simulated_env_steps", np.int64, 0),
            ("diverged", bool, False),
            ("final_eval", np.float64, np.nan),
            ("final_eval_std", np.float64, np.nan),
        ):
            if getattr(self, name) is None:
                setattr(self, name, np.full(n, fill, dtype))

    @property
    def all_diverged(self) -> bool:
        return bool(self.diverged.all())

    def _evaluation(self, returns, seconds: float) -> tuple[np.ndarray, np.ndarray]:
        if returns is None:
            nan = np.full(len(self.seeds), np.nan)
            return nan, nan
        returns = np.asarray(returns, np.float64)
        self.eval_s += seconds
        mean, std = returns.mean(axis=1), returns.std(axis=1)
        self.diverged |= ~np.isfinite(mean)
        self.final_eval = np.where(self.diverged, self.final_eval, mean)
        self.final_eval_std = np.where(self.diverged, self.final_eval_std, std)
        return mean, std

    def initial(self, returns, seconds: float) -> list[dict]:
        """Log point 0: the evaluation before any training (the paper's curves start there)."""
        mean, std = self._evaluation(returns, seconds)
        return self._append(mean, std, np.full(len(self.seeds), np.nan), np.full(len(self.seeds), np.nan), {})

    def chunk(
        self,
        counts: dict,
        metrics: dict,
        finite: np.ndarray,
        seconds: float,
        returns=None,
        eval_seconds: float = 0.0,
    ) -> list[dict]:
        """The log point after a chunk: its per-seed `counts` (updates, env_steps, simulated_env_steps), the
        `metrics` of each seed's last update, each seed's finiteness, the training seconds, and the
        evaluation after it (or None). A seed that ran no update keeps its previous metrics."""
        ran = np.asarray(counts["updates"], np.int64)
        env_steps = np.asarray(counts["env_steps"], np.int64)
        self.updates += ran
        self.env_steps += env_steps
        self.simulated_env_steps += np.asarray(counts["simulated_env_steps"], np.int64)
        self.run_s += seconds
        self.log_point += 1
        last = {row["seed"]: row for row in self.rows[-len(self.seeds) :]}
        previous = {
            name: np.asarray([last[s].get(name, np.nan) for s in self.seeds], np.float64)
            for name in (
                "train_return",
                *(f"{ALGORITHM_METRIC_PREFIX}{m}" for m in metrics if m != "train_return"),
            )
        }
        current = {
            ("train_return" if m == "train_return" else f"{ALGORITHM_METRIC_PREFIX}{m}"): np.asarray(
                v, np.float64
            )
            for m, v in metrics.items()
        }
        current = {name: np.where(ran > 0, v, previous[name]) for name, v in current.items()}
        train_return = current.pop("train_return")
        self.diverged |= ~np.asarray(finite) | ~np.isfinite(train_return)
        mean, std = self._evaluation(returns, eval_seconds)
        throughput = env_steps / seconds if seconds > 0 else np.full(len(self.seeds), np.nan)
        return self._append(mean, std, train_return, throughput, current)

    def _append(self, mean, std, train_return, throughput, extra) -> list[dict]:
        rows = [
            {
                "seed": int(seed),
                "log_point": self.log_point,
                "update": int(self.updates[i]),
                "env_steps": int(self.env_steps[i]),
                "simulated_env_steps": int(self.simulated_env_steps[i]),
                "wall_clock_s": self.run_s,
                "train_return": float(train_return[i]),
                "eval_return_mean": float(mean[i]),
                "eval_return_std": float(std[i]),
                "throughput_sps": float(throughput[i]),
                "diverged": bool(self.diverged[i]),
                **{name: float(v[i]) for name, v in extra.items()},
            }
            for i, seed in enumerate(self.seeds)
        ]
        self.rows.extend(rows)
        return rows

    def mean_train_return(self) -> float:
        """The mean last training return over the seeds that have not diverged (NaN if none)."""
        last = {row["seed"]: row["train_return"] for row in self.rows[-len(self.seeds) :]}
        values = [last[s] for s, d in zip(self.seeds, self.diverged) if not d and np.isfinite(last[s])]
        return float(np.mean(values)) if values else float("nan")

    def summary(self) -> dict[str, Any]:
        """Per-seed status and final evaluations, timings and totals (the trial summary adds where and how)."""
        seeds = [str(s) for s in self.seeds]
        final = [None if np.isnan(v) else float(v) for v in self.final_eval]
        total = int(self.env_steps.sum())
        return {
            "status": "diverged" if self.all_diverged else "finished",
            "seed_status": {s: ("diverged" if d else "finished") for s, d in zip(seeds, self.diverged)},
            "final_eval_return": dict(zip(seeds, final)),
            "final_eval_return_std": {
                s: (None if np.isnan(v) else float(v)) for s, v in zip(seeds, self.final_eval_std)
            },
            "final_eval_return_mean": float(np.nanmean(self.final_eval))
            if np.isfinite(self.final_eval).any()
            else None,
            "run_s": self.run_s,
            "eval_s": self.eval_s,
            "chunks": self.log_point,
            "updates": {s: int(u) for s, u in zip(seeds, self.updates)},
            "env_steps": {s: int(v) for s, v in zip(seeds, self.env_steps)},
            "simulated_env_steps": {s: int(v) for s, v in zip(seeds, self.simulated_env_steps)},
            "throughput_sps": total / self.run_s if self.run_s > 0 else None,
        }
