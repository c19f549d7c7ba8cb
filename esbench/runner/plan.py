"""How a trial's budget of env steps is cut into compiled chunks between log points."""

from __future__ import annotations

from dataclasses import dataclass

from esbench.validation import ConfigError


@dataclass(frozen=True)
class TrialPlan:
    env_steps_per_update: int
    updates_per_chunk: int
    n_chunks: int

    @property
    def env_steps(self) -> int:
        return self.env_steps_per_update * self.updates_per_chunk * self.n_chunks


def plan_trial(env_steps: int, num_logs: int, algorithm, env, cfg) -> TrialPlan:
    """Updates per chunk and chunk count: `num_logs` to 2 * num_logs - 1 log points, never over the budget."""
    per_update = int(algorithm.env_steps_per_update(env, cfg))
    n_updates = env_steps // per_update
    if n_updates < 1:
        raise ConfigError(
            f"env_steps: a budget of {env_steps} env steps is smaller than one update on {env.spec.id} "
            f"({per_update} env steps); raise env_steps to at least {per_update} or shrink the update"
        )
    # Whole chunks only (one compiled program): up to per_chunk - 1 updates of the budget stay
    # unused; the summary records the env steps actually run.
    per_chunk = max(1, n_updates // num_logs)
    return TrialPlan(per_update, per_chunk, n_updates // per_chunk)
