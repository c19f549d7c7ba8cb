"""The EGGROLL paper's RL tables (15-34) as data: the one place esbench reads the paper's numbers from.

`rl_tables.yaml` beside this file is the paper's appendix transcribed cell by
cell (a verbatim copy of the steering team's `paper/rl_tables.yaml`). This
module maps its keys onto esbench's:

    row("ppo", "navix/DoorKey-8x8")  -> the PPO column of Table 34 for that env, as Config fields
    search_space("eggroll")          -> Table 15 as {field: [choices]}
    env_ids()                        -> the 16 environments, as esbench ids, in the paper's order
    claim_counts(), wall_clock_ratio(env), panel_title(env), protocol()

Field names: ES rows already use the Config names; PPO's Table 16 names are
mapped by the table's own `ppo_field_names`. Metadata columns (`table`,
`paper_column`) and OpenES's "/" rank are dropped. `skip_initial_eval` is
false in every row and is what esbench always does (every trial is evaluated
at env step 0), so it is checked, not passed on.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from esbench.envs.registry import paper_suite_ids

TABLE_FILE = Path(__file__).with_name("rl_tables.yaml")
ALGORITHMS = ("eggroll", "openes", "ppo")
_METADATA = ("table", "paper_column")
_NOT_APPLICABLE = "/"  # OpenES's rank column
# The table's own spelling where it differs from the suite's id (the table says "sic").
_TABLE_SPELLING = {"Navix-Dynamic-Obstacles-6x6-Randomv0": "Navix-Dynamic-Obstacles-6x6-Random-v0"}


class TableError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@functools.cache
def tables() -> dict[str, Any]:
    """The whole table file, parsed."""
    return yaml.safe_load(TABLE_FILE.read_text())


@functools.cache
def _table_key_to_env_id() -> dict[str, str]:
    by_suite_id = {(suite, name): env_id for env_id, suite, name in paper_suite_ids()}
    out = {}
    for key, entry in tables()["environments"].items():
        suite = entry["suite"] or "gymnax"  # the paper names no suite for CartPole and Pendulum
        name = _TABLE_SPELLING.get(entry["id"], entry["id"])
        out[key] = by_suite_id[suite, name]
    return out


def env_ids() -> tuple[str, ...]:
    """esbench ids of the paper's 16 environments, in the table's order."""
    return tuple(_table_key_to_env_id().values())


def table_key(env_id: str) -> str:
    """The table's key of an esbench env id; TableError listing the 16 when the table lacks it."""
    for key, esbench_id in _table_key_to_env_id().items():
        if esbench_id == env_id:
            return key
    raise TableError(f"the paper's tables have no row for {env_id!r}; they cover: {', '.join(env_ids())}")


def _check_algo(algo: str) -> None:
    if algo not in ALGORITHMS:
        raise TableError(f"the paper's tables have no {algo!r} column; they have: {', '.join(ALGORITHMS)}")


def row(algo: str, env_id: str) -> dict[str, Any]:
    """The hyperparameters the paper chose for (algo, env), as Config field names and values."""
    _check_algo(algo)
    raw = dict(tables()[algo][table_key(env_id)])
    for name in _METADATA:
        raw.pop(name, None)
    if raw.get("rank") == _NOT_APPLICABLE:
        del raw["rank"]
    if algo == "ppo":
        if raw.pop("skip_initial_eval") is not False:
            raise TableError(
                f"ppo row of {env_id}: skip_initial_eval is not false; esbench always evaluates at step 0"
            )
    return raw


def search_space(algo: str) -> dict[str, list]:
    """Table 15 (ES) or Table 16 (PPO): {Config field: [choices]} for random search."""
    _check_algo(algo)
    space = tables()["search_space"]
    if algo == "ppo":
        names = space["ppo_field_names"]
        out = {names.get(k, k): list(v) for k, v in space["ppo"].items()}
        if out.pop("skip_initial_eval") != [False]:
            raise TableError(
                "Table 16: skip_initial_evaluation must be [false]; esbench always evaluates at step 0"
            )
        return out
    out = {k: list(v) for k, v in space["es"].items()}
    if algo == "openes":
        del out["rank"]
    return out


def network() -> dict[str, Any]:
    """What the paper states about the policy network (layer_size, n_layers, activation, ...)."""
    return dict(tables()["network"])


def protocol() -> dict[str, Any]:
    return dict(tables()["protocol"])


def claim_counts() -> dict[str, int]:
    """EGGROLL vs OpenES: {'outperforms': 7, 'competitive': 7, 'underperforms': 2, 'total': 16}."""
    return dict(tables()["protocol"]["claim_counts"])


def wall_clock_ratio(env_id: str) -> dict[str, Any]:
    """Figure 15's EGGROLL vs OpenES training-time factor for `env_id` ({factor, eggroll: faster|slower, label})."""
    return dict(tables()["wall_clock_ratio"][table_key(env_id)])


def panel_title(env_id: str) -> str:
    """The environment's panel title in the paper's Figures 14 and 15."""
    return tables()["environments"][table_key(env_id)]["fig_panel"]
