"""Sweep files: their format, reading one (YAML, plugins), and the keys each section allows.

The file, section by section (sweep.py makes trials of it under a budget, search_space.py
expands `search:` and `protocol.space`, protocol_settings.py validates `protocol:`):

    name: smoke
    envs: [CartPole-v1, Pendulum-v1]      # or "paper16" for esbench.envs.PAPER_ENVS
    algorithms:                           # algorithm -> base hyperparameters
      eggroll: {pop_size: 64}
      ppo: {}
    paper_rows: true                      # each (env, algorithm) starts from the paper's row
                                          # (esbench/paper/rl_tables.yaml, Tables 17-34)
    env_overrides:                        # env -> algorithm -> hyperparameters
      Pendulum-v1: {eggroll: {sigma: 0.05}}
    search:                               # optional (`esbench sweep` only); algorithm -> hyperparameter ->
      grid: {eggroll: {learning_rate: [0.01, 0.1]}}          # values, written as in protocol.space
      random: {num_samples: 4, seed: 0, space: {eggroll: {sigma: {log_uniform: [0.01, 0.5]}}}}
    trial: {seeds: 3, env_steps: 100000, num_logs: 20, eval_every: 1, eval_episodes: 16,
            max_episode_steps: null, num_gpus: 0}
    protocol:                             # `esbench reproduce` (runner/protocol.py); every key optional
      search_trials: 20                   # per (env, algorithm); default: the tables' (20)
      tuning_seeds: 1                     # search seeds: a count (seeds 1000000, 1000001, ...) or a list
      final_seeds: 10                     # final-stage seeds: a count (seeds 0, 1, ...) or a list;
                                          # default: the tables' (10); never overlapping tuning_seeds
      final_seeds_per_env: {Pendulum-v1: 24}  # env -> a count or a list, instead of final_seeds for that env
      sampler: random                     # random (the paper's) or tpe (Optuna: pip install 'esbench[tpe]')
      sampler_seed: 0                     # seeds the sampler (per env and algorithm, per TPE round)
      tpe_batch: 5                        # TPE suggests this many points per round (the first round: random)
      skip_search: false                  # true: no search; the final stage runs the paper's rows
      reselect_top: 0                     # > 0: the m best search points re-run on reselect_seeds; the
      reselect_seeds: 3                   #   best there wins (a count: seeds 2000000, ...; or a list)
      matched: false                      # true: EGGROLL on OpenES's final configuration and OpenES on
                                          #   EGGROLL's, on the final seeds (needs both algorithms)
      margin: 0.2                         # the verdicts' equivalence margin, a fraction of each env's
                                          #   reference gain (`references`), declared before the run
      competence: 0.5                     # "learned": a seed's gain over its untrained policy reaches
                                          #   this fraction of the reference gain
      space:                              # algorithm -> what the search samples; default: `paper`
        eggroll: paper                    #   the paper's Table 15 (ES) / Table 16 (PPO), every field
        ppo: {learning_rate: paper,       #   or {hyperparameter: paper (that field's choices in the
              gamma: [0.99, 0.999],       #   table) | [choices] | {uniform|log_uniform|int_uniform|
              clip_eps: {uniform: [0.1, 0.3]}}    # choice: [..]}}
    references:                           # env -> fixed scores the verdicts are measured in (rliable's
      CartPole-v1: {random: 22.4, reference: 500}   # practice): a uniform-random policy's mean return
                                          #   and a declared reference return; gain = reference - random
    budgets:                              # named; each may override `trial` fields (env_steps may
      smoke:                              # be a map env -> steps with a `default`), and
        env_steps: {default: 20000, brax/ant: 2000}
        envs: [CartPole-v1]               # a subset of the sweep's envs
        algorithms: {eggroll: {pop_size: 16}}      # hyperparameters applied last
        algorithms_per_env: {default: [ppo], CartPole-v1: [eggroll, ppo]}  # which run where (a list:
                                          # on every env; unset: every algorithm on every env)
        env_overrides: {brax/ant: {ppo: {num_envs: 8}}}
        protocol: {search_trials: 4}      # overrides the top-level `protocol` key by key (space: by algorithm)
    default_budget: smoke
    checkpoint_every: 10                  # chunks between mid-trial checkpoints (also per budget; the
                                          # command line's --checkpoint-every wins; default: ~1 a minute)

Hyperparameters are applied in this order: the algorithm's defaults, `algorithms`, the paper's
row (with `paper_rows: true`), `env_overrides`, the search point, the budget's `algorithms`, the
budget's `env_overrides`. The protocol's search point takes the search point's place (with
`skip_search`, the paper's row does); a hyperparameter the budget sets is fixed: it is left out
of a `paper` space, and naming it in an explicit space is an error. `esbench sweep` ignores
`protocol`; it runs each (env, algorithm) once, with the budget's `seeds`.

Hyperparameter values in `search:` and `protocol.space` share one syntax (search_space.py):
`paper` (that field's choices in the paper's Table 15 / 16), a list of choices, or one
distribution {uniform|log_uniform|int_uniform: [low, high]} / {choice: [..]}; a grid takes lists
or `paper`.
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from esbench import plugins
from esbench.faults import MachineFault, fault_line
from esbench.validation import ConfigError, suggest

TOP_KEYS = (
    "name",
    "description",
    "imports",
    "plugins",
    "envs",
    "algorithms",
    "paper_rows",
    "env_overrides",
    "search",
    "references",
    "trial",
    "protocol",
    "budgets",
    "default_budget",
    "checkpoint_every",
)
TRIAL_KEYS = (
    "seeds",
    "env_steps",
    "num_logs",
    "eval_every",
    "eval_episodes",
    "max_episode_steps",
    "num_gpus",
)
BUDGET_KEYS = (
    *TRIAL_KEYS,
    "envs",
    "algorithms",
    "algorithms_per_env",
    "env_overrides",
    "protocol",
    "description",
    "checkpoint_every",
)


def check_keys(mapping: Any, allowed, path: str) -> dict:
    """`mapping` (a dict, {} for None) whose keys are all `allowed` (None: any); ConfigError naming the first other."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise ConfigError(f"{path}: expected a mapping, got {type(mapping).__name__} {mapping!r}")
    if allowed is None:  # free keys (env ids, budget names), checked elsewhere
        return mapping
    for key in mapping:
        if key not in allowed:
            raise ConfigError(
                f"{path}.{key}: unknown key.{suggest(str(key), allowed)} Allowed: {', '.join(allowed)}"
            )
    return mapping


def load_sweep_file(path: str | os.PathLike) -> dict:
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"sweep file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"sweep file {path} is not valid YAML: {err}") from None
    except UnicodeDecodeError as err:  # the decoder's error does not name the file
        raise MachineFault(
            f"sweep file {path}: {fault_line(err, 'nothing was run or written', 'then rerun')}"
        ) from err
    if not isinstance(data, dict):
        raise ConfigError(
            f"sweep file {path}: expected a mapping at the top level, got {type(data).__name__}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if isinstance(data.get("plugins"), list):  # folders named relative to the file: resolved once, here
        data["plugins"] = [os.path.join(folder, p) if isinstance(p, str) else p for p in data["plugins"]]
    load_imports(data, folder=folder)
    return data


def load_imports(data: dict, folder: str = ".") -> None:
    """Load the sweep's `imports:` (plugin modules, found also beside the file) and `plugins:` (drop-in folders)."""
    imports = data.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(m, str) for m in imports):
        raise ConfigError(f"imports = {imports!r} is invalid; allowed: a list of module names")
    folders = data.get("plugins") or []
    if not isinstance(folders, list) or not all(isinstance(f, str) for f in folders):
        raise ConfigError(
            f"plugins = {folders!r} is invalid; allowed: a list of folders of plugin files (*.py), "
            "relative to the sweep file"
        )
    plugins.load(imports, paths=(".", folder))
    for plugin_folder in folders:
        plugins.load_folder(os.path.join(folder, plugin_folder))
