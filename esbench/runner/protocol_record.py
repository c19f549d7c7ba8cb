"""`OUT/protocol.json`: the record of a protocol run, what the report reads.

It holds the settings (sampler, seeds, the envs' own final seeds, space, the stages switched on, the
verdicts' declared margin, competence threshold and reference scores), each stage's status, every search
trial's tuning score, the re-selection scores, the selection, and the final and matched trial ids. It is rewritten
atomically after each stage, merged with the pairs an earlier `--envs` run recorded; a folder whose
record states another protocol is refused before anything runs (its results would mix).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from esbench.results import atomic_file, load_protocol
from esbench.results.store import PROTOCOL_FILE
from esbench.runner.selection import RULES
from esbench.validation import ConfigError

if TYPE_CHECKING:
    from esbench.runner.protocol import Protocol

RECORD_FORMAT = 1
NO_SEARCH = "none"  # protocol.json's sampler with skip_search: the paper's rows, no search
# protocol.json keys that must agree before a run may add to a folder that already has a record
SAME_PROTOCOL = (
    "sweep",
    "budget",
    "skip_search",
    "sampler",
    "sampler_seed",
    "tpe_batch",
    "search_trials",
    "tuning_seeds",
    "final_seeds",
    "final_seeds_per_env",
    "space",
    "reselect_top",
    "reselect_seeds",
    "matched",
    "margin",
    "competence",
    "references",
    "pilot",
)
# what a record written before these settings existed ran: no re-selection, no matched stage, no verdicts,
# the same final seeds on every env
UNRECORDED = {
    "final_seeds_per_env": {},
    "reselect_top": 0,
    "reselect_seeds": [],
    "matched": False,
    "margin": None,
    "competence": None,
    "references": {},
    "pilot": False,
}
MERGED = ("selection", "final", "matched_trials")  # per-pair entries an --envs run adds to


def base_record(protocol: Protocol) -> dict[str, Any]:
    """The record's settings part, before any stage has run."""
    s, sweep = protocol.settings, protocol.sweep
    skip = s.skip_search
    return {
        "format": RECORD_FORMAT,
        "sweep": sweep.data.get("name"),
        "budget": sweep.budget or "(the sweep's trial settings)",
        "skip_search": skip,
        "sampler": NO_SEARCH if skip else s.sampler,
        "sampler_seed": None if skip else s.sampler_seed,
        "tpe_batch": s.tpe_batch if s.sampler == "tpe" and not skip else None,
        "search_trials": 0 if skip else s.search_trials,
        "tuning_seeds": [] if skip else list(s.tuning_seeds),
        "final_seeds": list(s.final_seeds),
        "final_seeds_per_env": {env: list(seeds) for env, seeds in s.final_seeds_per_env.items()},
        "space": {} if skip else s.space,
        "reselect_top": s.reselect_top,
        "reselect_seeds": list(s.reselect_seeds),
        "matched": s.matched,
        "margin": s.margin,
        "competence": s.competence,
        "references": s.references,
        "pilot": s.pilot,
        "rules": {
            k: v
            for k, v in RULES.items()
            if (k != "reselect" or s.reselect_top)
            and (k != "matched" or s.matched)
            and (k == "matched" or not skip)
        },
        "envs": list(dict.fromkeys(e for e, _ in protocol.pairs)),
        "algorithms": list(dict.fromkeys(a for _, a in protocol.pairs)),
        "env_steps": {e: protocol.sweep.spec(e, a).env_steps for e, a in protocol.pairs},
        "stages": {},
        "selection": [],
        "final": [],
        "matched_trials": [],
    }


def _json_form(value: Any) -> Any:
    return json.loads(json.dumps(value))


def check_record(protocol: Protocol, out: Path) -> None:
    """ConfigError when `out` already records another protocol (this run would mix its results)."""
    old, new = load_protocol(out), _json_form(base_record(protocol))
    if old is None:
        return
    differ = [k for k in SAME_PROTOCOL if old.get(k, UNRECORDED.get(k)) != new.get(k)]
    if differ:
        raise ConfigError(
            f"{out / PROTOCOL_FILE} records another protocol (it differs in {', '.join(differ)}); "
            "use another --out, or rerun the command that wrote it"
        )


def write_record(out: Path, record: dict) -> None:
    """protocol.json, atomically (a temp file renamed over it), merged with the pairs an earlier --envs run
    recorded."""
    out.mkdir(parents=True, exist_ok=True)
    record, old = _json_form(record), load_protocol(out)
    if old is not None:
        mine = {(e, a) for e in record["envs"] for a in record["algorithms"]}
        record["envs"] = list(dict.fromkeys([*old["envs"], *record["envs"]]))
        record["algorithms"] = list(dict.fromkeys([*old["algorithms"], *record["algorithms"]]))
        record["env_steps"] = {**old["env_steps"], **record["env_steps"]}
        if "references" in record:
            record["references"] = {**old.get("references", {}), **record["references"]}
        for key in MERGED:
            record[key] = [e for e in old.get(key, []) if (e["env"], e["algo"]) not in mine] + record.get(
                key, []
            )
    with atomic_file(out / PROTOCOL_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=2))
