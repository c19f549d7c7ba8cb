"""How a trial's budget of env steps is spent in chunks between log points.

The budget counts env steps inside episodes (what `valid_env_steps` reports),
the x-axis of every curve. An ES generation's cost depends on how long its
episodes last, so the number of updates is not known in advance: each seed
runs updates until its own count reaches the chunk's target,

    target_c = ceil(c * budget / num_logs)        c = 1 .. num_logs

and starts an update only while the budget has room for the fewest env steps
an update can spend (`min_env_steps_per_update`: PPO's whole batch, an ES
generation one step per episode). So an ES seed may end up to one generation
over the budget, and PPO runs exactly floor(budget / batch) updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from esbench.validation import ConfigError


@dataclass(frozen=True)
class Schedule:
    budget: int  # env steps inside episodes, per seed
    num_logs: int  # log points after the initial one (one chunk each)
    max_env_steps_per_update: int  # the most env steps an update simulates
    min_env_steps_per_update: int  # the fewest env steps inside episodes an update spends

    @property
    def max_updates(self) -> int:
        """No seed runs more updates than this (each spends at least min_env_steps_per_update)."""
        return self.budget // self.min_env_steps_per_update

    def target(self, chunk: int) -> int:
        """The env steps a seed reaches (or stops short of, for lack of room) by the end of chunk `chunk` (1-based)."""
        return math.ceil(chunk * self.budget / self.num_logs)


def schedule_trial(env_steps: int, num_logs: int, algorithm, env, cfg) -> Schedule:
    """The schedule of a budget of `env_steps`; ConfigError when it is smaller than one update."""
    most = int(algorithm.env_steps_per_update(env, cfg))
    fewest = int(getattr(algorithm, "min_env_steps_per_update", algorithm.env_steps_per_update)(env, cfg))
    if env_steps < fewest:
        raise ConfigError(
            f"env_steps: a budget of {env_steps} env steps is smaller than one update on {env.spec.id} "
            f"(at least {fewest} env steps); raise env_steps to at least {fewest} or shrink the update"
        )
    return Schedule(env_steps, num_logs, most, fewest)
