"""The paper's protocol (Appendix N.4) as one resumable run: search, select, final (and two optional stages).

    protocol = prepare_protocol(load_sweep_file(path), "cpu", out=out)   # everything validated, nothing written
    print(describe_protocol(protocol, store))                            # --dry-run
    outcome = run_protocol(protocol, store, backend="local")

1. search: per (env, algorithm), `search_trials` points of the space (samplers.py) on the tuning
   seeds, stage "search";
2. select: per (env, algorithm) the search trial with the best score (RULES below), read from the
   stored summaries;
   With `reselect_top: m` (off by default) the m best search points of each pair first re-run on
   `reselect_seeds` (stage "reselect"), and the winner is the best of them there: a point's score on
   one tuning seed is mostly luck at small populations, and the best of 20 such scores is the luckiest;
3. final: the winner's hyperparameters on the final seeds, stage "final". With `skip_search` stages
   1-2 are skipped and the final stage runs each (env, algorithm)'s paper row;
4. matched (`matched: true`, off by default): per env, EGGROLL on OpenES's winning configuration and
   OpenES on EGGROLL's (every field both have; EGGROLL keeps its rank), on the final seeds, stage
   "matched": the paper's claim that EGGROLL does not cost ES its returns, tested at equal settings.
   It runs beside the final stage, whose programs it shares where the shapes agree.

Resuming is the store's: every trial id hashes its resolved config (seeds and stage included),
the samplers give the same points on every rerun, and stage 3 is derived from stored stage-1
results, so rerunning the same command after a kill runs only what is missing. The record of the
run, `OUT/protocol.json` (what the report reads), is rewritten atomically after each stage.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from esbench.results import ResultStore, atomic_file, load_protocol, read_trial, trial_path
from esbench.results.store import PROTOCOL_FILE
from esbench.runner import samplers
from esbench.runner.backends import SweepOutcome, run_trials
from esbench.runner.config import ResolvedTrial, TrialSpec, resolve_trial
from esbench.runner.protocol_settings import MATCHED_ALGOS, ProtocolSettings, protocol_settings
from esbench.runner.sweep import Sweep, paper_row, parse_sweep
from esbench.runner.trial import RunOptions
from esbench.validation import ConfigError, suggest

RECORD_FORMAT = 1
RULES = {
    "score": "a search trial's score is the mean over its tuning seeds of each seed's final evaluation return "
    "(the mean parameters, or PPO's actor, evaluated at the last log point: summary final_eval_return)",
    "diverged": "a search trial with a diverged seed, or a seed without a final return, ranks below every other "
    "(counted in n_diverged); if all did, the first in search order is re-run",
    "ties": "equal scores: the trial sampled first (search order) wins; the others are listed in tied_with",
    "reselect": "with reselect_top m: the m search trials ranked best by the rules above re-run on the re-selection "
    "seeds (fresh: neither tuning nor final seeds); the winner is the one with the best mean final "
    "evaluation return over those seeds (diverged last; ties: the better search rank)",
    "matched": "matched stage: per env, EGGROLL re-run with every hyperparameter of OpenES's final trial that EGGROLL "
    "has (its rank stays the budget's) and OpenES with EGGROLL's, on the final seeds",
}
NO_SEARCH = "none"  # protocol.json's sampler with skip_search: the paper's rows, no search
_NO_LIMIT = 2**62  # env steps of a value's check alone (the budget is checked on the biggest update)
# protocol.json keys that must agree before a run may add to a folder that already has a record
_SAME_PROTOCOL = (
    "sweep",
    "budget",
    "skip_search",
    "sampler",
    "sampler_seed",
    "tpe_batch",
    "search_trials",
    "tuning_seeds",
    "final_seeds",
    "space",
    "reselect_top",
    "reselect_seeds",
    "matched",
)
# what a record written before these settings existed ran: no re-selection, no matched stage
_UNRECORDED = {"reselect_top": 0, "reselect_seeds": [], "matched": False}

Pair = tuple[str, str]  # (env, algorithm)


@dataclass(frozen=True)
class Protocol:
    """A validated protocol run: the sweep under its budget, the settings and the (env, algorithm) pairs."""

    sweep: Sweep
    settings: ProtocolSettings
    pairs: tuple[Pair, ...]

    @property
    def path(self) -> str:
        return self.sweep.protocol_path

    def key(self, pair: Pair) -> str:
        """The sampler's stream of one pair."""
        return f"{self.settings.sampler_seed}|{pair[0]}|{pair[1]}"

    def search_spec(self, pair: Pair, point: dict, index: int) -> TrialSpec:
        env, algo = pair
        return self.sweep.spec(
            env,
            algo,
            point,
            owner=f"search trial [{env} x {algo} x point {index}]",
            point_path=f"{self.path}.space",
            seeds=self.settings.tuning_seeds,
            stage="search",
        )

    def reselect_spec(self, pair: Pair, point: dict, index: int) -> TrialSpec:
        env, algo = pair
        return self.sweep.spec(
            env,
            algo,
            point,
            owner=f"re-selection trial [{env} x {algo} x point {index}]",
            point_path=f"{self.path}.space",
            seeds=self.settings.reselect_seeds,
            stage="reselect",
        )

    def matched_spec(self, env: str, algo: str, own: ResolvedTrial, other: ResolvedTrial) -> TrialSpec:
        """`algo` on `env` with every hyperparameter of `other` (the other ES's final trial) that `algo` has, but rank."""
        own_fields = dataclasses.asdict(own.cfg)
        shared = {k: v for k, v in dataclasses.asdict(other.cfg).items() if k in own_fields and k != "rank"}
        spec = self.sweep.spec(
            env,
            algo,
            owner=f"matched trial [{env} x {algo}]",
            seeds=self.settings.final_seeds,
            stage="matched",
        )
        return dataclasses.replace(spec, hparams={**own_fields, **shared})

    def final_spec(self, pair: Pair, point: dict) -> TrialSpec:
        env, algo = pair
        point_path = f"{self.path}.space" if not self.settings.skip_search else "the paper's row"
        return self.sweep.spec(
            env,
            algo,
            point,
            owner=f"final trial [{env} x {algo}]",
            point_path=point_path,
            seeds=self.settings.final_seeds,
            stage="final",
        )

    def paper_point(self, pair: Pair) -> dict:
        env, algo = pair
        return paper_row(algo, env, f"{self.path}.skip_search")


@dataclass
class ProtocolOutcome(SweepOutcome):
    """What a run of the protocol ran, skipped, and whether every stage has finished."""

    complete: bool = False


@dataclass(frozen=True)
class Candidate:
    """A finished search trial and its score (None: diverged or without a final return)."""

    point: dict
    trial_id: str
    score: float | None


# ----------------------------------------------------------------------------------- prepare ---


def _resolve(spec: TrialSpec, owner: str, problem: str = "") -> ResolvedTrial:
    """`spec` resolved; its ConfigError prefixed with what was being checked (`problem`)."""
    try:
        return resolve_trial(spec, owner)
    except ConfigError as err:
        raise ConfigError(f"{problem}{err}") from None


def _check_search_space(protocol: Protocol, pair: Pair) -> None:
    """Every value of the space is valid, and the space's biggest update fits the budget (else ConfigError).

    Each value is checked with the other fields at their first value and no budget limit; the
    biggest update takes, field by field, the value of the most env steps per update (exact for
    updates that grow with each field on its own, as ES's pop_size x n_parallel_evaluations x
    episode and PPO's num_envs x num_steps do).
    """
    env, algo = pair
    space, path, budget = protocol.settings.space[algo], f"{protocol.path}.space.{algo}", protocol.sweep.path
    samplers.check_space(space, protocol.settings.sampler, path)
    size = samplers.space_size(space)
    if size < protocol.settings.search_trials:
        raise ConfigError(
            f"{path}: {size:g} distinct points, fewer than search_trials = {protocol.settings.search_trials}"
        )
    first = {name: samplers.candidate_values(dist)[0] for name, dist in space.items()}
    biggest, grows = dict(first), {}
    for name, dist in space.items():
        steps = []
        for value in samplers.candidate_values(dist):
            spec = dataclasses.replace(
                protocol.search_spec(pair, {**first, name: value}, 0), env_steps=_NO_LIMIT
            )
            trial = _resolve(spec, "search", f"{path}.{name} = {value!r} fails on {env}: ")
            steps.append((trial.algorithm.env_steps_per_update(trial.env, trial.cfg), value))
        biggest[name] = max(steps, key=lambda s: s[0])[1]
        if max(steps)[0] > min(steps)[0]:
            grows[name] = biggest[name]
    fields = ", ".join(f"{k}={v}" for k, v in grows.items()) or "every point updates alike"
    _resolve(
        protocol.search_spec(pair, biggest, 0),
        "search",
        f"{path}: the space's biggest update ({fields}) does not fit {budget} on {env} (narrow the space or "
        "raise env_steps): ",
    )


def prepare_protocol(
    data: dict,
    budget: str | None = None,
    *,
    envs: Sequence[str] | None = None,
    skip_search: bool | None = None,
    sampler: str | None = None,
    out: str | os.PathLike | None = None,
) -> Protocol:
    """The protocol of a sweep file under `budget`, every stage validated before anything runs.

    envs: a subset of the budget's envs; skip_search, sampler: the command line's (None: the file's);
    out: the results folder, whose protocol.json (if any) must record the same protocol.
    """
    sweep = parse_sweep(data, budget)
    if data.get("search"):
        raise ConfigError(
            "search: `esbench reproduce` searches protocol.space (see esbench/runner/search_space.py); "
            "the `search` section is for `esbench sweep`; remove one"
        )
    settings = protocol_settings(sweep, skip_search=skip_search, sampler=sampler)
    if envs:
        unknown = [e for e in envs if e not in sweep.envs]
        if unknown:
            raise ConfigError(
                f"--envs: {', '.join(unknown)} not in the budget's envs.{suggest(unknown[0], sweep.envs)} "
                f"Its envs: {', '.join(sweep.envs)}"
            )
    chosen_envs = [e for e in sweep.envs if not envs or e in envs]
    protocol = Protocol(sweep, settings, tuple((e, a) for e in chosen_envs for a in sweep.algos))
    for pair in protocol.pairs:
        if settings.skip_search:
            _resolve(protocol.final_spec(pair, protocol.paper_point(pair)), "final stage")
            continue
        _check_search_space(protocol, pair)
        points = _next_round(protocol, pair, [])
        for i, point in enumerate(points):
            _resolve(protocol.search_spec(pair, point, i), f"search point {i}")
        _resolve(
            protocol.final_spec(pair, points[0]), "final stage"
        )  # the final seeds; a winner's budget fits
    if out is not None:
        _check_record(protocol, Path(out))
    return protocol


# ------------------------------------------------------------------------------------- search ---


def _next_round(protocol: Protocol, pair: Pair, history: list[Candidate]) -> list[dict]:
    s = protocol.settings
    return samplers.next_points(
        s.sampler,
        s.space[pair[1]],
        [(c.point, c.score) for c in history],
        s.search_trials,
        protocol.key(pair),
        s.tpe_batch,
    )


def _round(
    protocol: Protocol, history: dict[Pair, list[Candidate]]
) -> list[tuple[Pair, dict, ResolvedTrial]]:
    """The next round's trials of every pair (none once the search is complete)."""
    trials = []
    for pair in protocol.pairs:
        done = len(history[pair])
        for i, point in enumerate(_next_round(protocol, pair, history[pair])):
            trials.append((pair, point, resolve_trial(protocol.search_spec(pair, point, done + i))))
    return trials


def score(summary: dict) -> float | None:
    """A search trial's score (RULES['score']); None when a seed diverged or has no final return."""
    finals = list(summary["final_eval_return"].values())
    if "diverged" in summary.get("seed_status", {}).values() or any(v is None for v in finals) or not finals:
        return None
    return sum(finals) / len(finals)


def _candidate(store: ResultStore, point: dict, trial: ResolvedTrial) -> Candidate:
    _, _, summary = read_trial(trial_path(store.out_dir, trial.trial_id))
    return Candidate(point, trial.trial_id, score(summary))


def ranked(candidates: Sequence[Candidate]) -> list[Candidate]:
    """`candidates` best first (RULES): by score, those without one last, ties in the given order."""
    return sorted(candidates, key=lambda c: (c.score is None, -(c.score or 0.0)))


def select(
    pair: Pair, candidates: Sequence[Candidate], seeds: str = "tuning seeds", order: str = "search order"
) -> dict[str, Any]:
    """The selection entry of one pair (RULES): the winner among `candidates` (in `order`), scored on `seeds`."""
    env, algo = pair
    scored = [c for c in candidates if c.score is not None]
    n_diverged = len(candidates) - len(scored)
    if not scored:
        winner, best = candidates[0], None
        tied, note = [], f"all {len(candidates)} trials diverged: the first in {order} is re-run"
    else:
        best = max(c.score for c in scored)
        winners = [c for c in scored if c.score == best]
        winner, tied = winners[0], [c.trial_id for c in winners[1:]]
        note = f"best of {len(candidates)} by mean final return over the {seeds}"
        if tied:
            note += f"; tied with {len(tied)} other(s): the first in {order} wins"
        if n_diverged:
            note += f"; {n_diverged} diverged trial(s) ranked last"
    return {
        "env": env,
        "algo": algo,
        "trial_id": winner.trial_id,
        "score": best,
        "n_candidates": len(candidates),
        "n_diverged": n_diverged,
        "tied_with": tied,
        "note": note,
        "point": winner.point,
    }


def reselect(pair: Pair, top: Sequence[Candidate], again: Sequence[Candidate]) -> dict[str, Any]:
    """The selection entry after re-selection: `top`, the best search candidates (best first), re-run as `again`.

    The winner is the best of `again` (RULES['reselect']); the entry names its search trial and tuning
    score like a plain selection, and `reselect` holds every re-run's scores.
    """
    best = select(pair, again, "re-selection seeds", "search rank")
    i = [c.trial_id for c in again].index(best["trial_id"])
    winner = top[i]
    note = f"the {len(top)} best search trials re-run on fresh seeds: {best['note']}"
    return {
        **best,
        "trial_id": winner.trial_id,
        "score": winner.score,
        "note": note,
        "point": winner.point,
        "tied_with": [top[[c.trial_id for c in again].index(t)].trial_id for t in best["tied_with"]],
        "reselect": {
            "trial_id": best["trial_id"],
            "score": best["score"],
            "candidates": [
                {
                    "search_trial_id": t.trial_id,
                    "tuning_score": t.score,
                    "trial_id": a.trial_id,
                    "score": a.score,
                }
                for t, a in zip(top, again)
            ],
        },
    }


# ------------------------------------------------------------------------------------- record ---


def _base_record(protocol: Protocol) -> dict[str, Any]:
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
        "space": {} if skip else s.space,
        "reselect_top": s.reselect_top,
        "reselect_seeds": list(s.reselect_seeds),
        "matched": s.matched,
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


def _check_record(protocol: Protocol, out: Path) -> None:
    """ConfigError when `out` already records another protocol (this run would mix its results)."""
    old, new = load_protocol(out), _json_form(_base_record(protocol))
    if old is None:
        return
    differ = [k for k in _SAME_PROTOCOL if old.get(k, _UNRECORDED.get(k)) != new.get(k)]
    if differ:
        raise ConfigError(
            f"{out / PROTOCOL_FILE} records another protocol (it differs in {', '.join(differ)}); "
            "use another --out, or rerun the command that wrote it"
        )


def write_record(out: Path, record: dict) -> None:
    """protocol.json, atomically (a temp file renamed over it), merged with the pairs an earlier --envs run recorded."""
    out.mkdir(parents=True, exist_ok=True)
    record, old = _json_form(record), load_protocol(out)
    if old is not None:
        mine = {(e, a) for e in record["envs"] for a in record["algorithms"]}
        record["envs"] = list(dict.fromkeys([*old["envs"], *record["envs"]]))
        record["algorithms"] = list(dict.fromkeys([*old["algorithms"], *record["algorithms"]]))
        record["env_steps"] = {**old["env_steps"], **record["env_steps"]}
        for key in ("selection", "final", "matched_trials"):
            record[key] = [e for e in old.get(key, []) if (e["env"], e["algo"]) not in mine] + record.get(
                key, []
            )
    with atomic_file(out / PROTOCOL_FILE) as tmp:
        tmp.write_text(json.dumps(record, indent=2))


# ---------------------------------------------------------------------------------------- run ---


def _merge(total: ProtocolOutcome, part: SweepOutcome) -> None:
    for name in ("ran", "skipped", "busy", "diverged"):
        getattr(total, name).extend(getattr(part, name))
    total.failed.update(part.failed)


def _say(progress: bool, text: str) -> None:
    if progress:
        print(text, file=sys.stderr, flush=True)


def _stage(record: dict, name: str, status: str, trials: int, finished: int) -> None:
    record["stages"][name] = {"status": status, "trials": trials, "finished": finished}


def _top(protocol: Protocol, history: list[Candidate]) -> list[Candidate]:
    return ranked(history)[: protocol.settings.reselect_top]


def _reselect_trials(
    protocol: Protocol, history: dict[Pair, list[Candidate]]
) -> list[tuple[Pair, Candidate, ResolvedTrial]]:
    """Every pair's best search points as re-selection trials (each point's seeds one program, a pair's points one group)."""
    return [
        (pair, c, resolve_trial(protocol.reselect_spec(pair, c.point, history[pair].index(c))))
        for pair in protocol.pairs
        for c in _top(protocol, history[pair])
    ]


def _selection(
    pair: Pair, history: list[Candidate], again: list[Candidate] | None, top: list[Candidate]
) -> dict:
    """A pair's selection entry: by tuning score, or by re-selection score; with every search trial's score."""
    entry = select(pair, history) if again is None else reselect(pair, top, again)
    return {
        **entry,
        "n_candidates": len(history),
        "n_diverged": sum(c.score is None for c in history),
        "search": [{"trial_id": c.trial_id, "score": c.score} for c in history],
    }


def matched_pairs(protocol: Protocol, finals: dict[Pair, ResolvedTrial]) -> list[tuple[dict, TrialSpec]]:
    """The matched stage: per env with both ES, (record entry, spec) of each one on the other's final configuration."""
    a, b = MATCHED_ALGOS
    out = []
    for env in dict.fromkeys(e for e, _ in protocol.pairs):
        if (env, a) not in finals or (env, b) not in finals:
            continue
        for algo, other in ((a, b), (b, a)):
            spec = protocol.matched_spec(env, algo, finals[env, algo], finals[env, other])
            entry = {
                "env": env,
                "algo": algo,
                "point_of": other,
                "partner_trial_id": finals[env, other].trial_id,
            }
            out.append((entry, spec))
    return out


def run_protocol(
    protocol: Protocol,
    store: ResultStore,
    backend: str = "local",
    address: str | None = None,
    options: RunOptions | None = None,
) -> ProtocolOutcome:
    """Run (or resume) every stage, protocol.json rewritten after each; `options`: how trials run (run_trials).

    A search (or re-selection) that did not finish (a trial failed, or another process is running it)
    stops before the selection: rerunning the command goes on from there.
    """
    progress = options.progress if options is not None else True
    out, record, outcome = Path(store.out_dir), _base_record(protocol), ProtocolOutcome()
    s = protocol.settings

    def run(trials: list[ResolvedTrial]) -> SweepOutcome:
        part = run_trials(trials, store, backend=backend, address=address, options=options)
        _merge(outcome, part)
        return part

    def unfinished(stage: str, part: SweepOutcome, total: int, done: int) -> bool:
        if not (part.failed or part.busy):
            return False
        _stage(record, stage, "failed" if part.failed else "busy", total, done)
        write_record(out, record)
        _say(
            True,
            f"{stage}: {len(part.failed)} trial(s) failed, {len(part.busy)} run by another process; "
            "no selection until all have finished (rerun this command)",
        )
        return True

    if s.skip_search:
        _stage(record, "search", "skipped", 0, 0)
        finals = [protocol.final_spec(pair, protocol.paper_point(pair)) for pair in protocol.pairs]
    else:
        history: dict[Pair, list[Candidate]] = {pair: [] for pair in protocol.pairs}
        total = len(protocol.pairs) * s.search_trials
        while trials := _round(protocol, history):
            done = sum(map(len, history.values()))
            _stage(record, "search", "running", total, done)
            write_record(out, record)
            _say(progress, f"search: {len(trials)} trial(s) ({done} of {total} finished before)")
            if unfinished("search", run([t for _, _, t in trials]), total, done):
                return outcome
            for pair, point, trial in trials:
                history[pair].append(_candidate(store, point, trial))
        _stage(record, "search", "done", total, total)
        again: dict[Pair, list[Candidate]] | None = None
        if s.reselect_top:
            chosen = _reselect_trials(protocol, history)
            done = sum(store.is_finished(t.trial_id) for _, _, t in chosen)
            _stage(record, "reselect", "running", len(chosen), done)
            write_record(out, record)
            _say(
                progress,
                f"reselect: the {s.reselect_top} best search point(s) per (env, algorithm) on seeds "
                f"{list(s.reselect_seeds)}: {len(chosen)} trial(s) ({done} finished before)",
            )
            if unfinished("reselect", run([t for _, _, t in chosen]), len(chosen), done):
                return outcome
            _stage(record, "reselect", "done", len(chosen), len(chosen))
            again = {pair: [] for pair in protocol.pairs}
            for pair, c, trial in chosen:
                again[pair].append(_candidate(store, c.point, trial))
        record["selection"] = [
            _selection(pair, history[pair], again and again[pair], _top(protocol, history[pair]))
            for pair in protocol.pairs
        ]
        finals = [protocol.final_spec((e["env"], e["algo"]), e["point"]) for e in record["selection"]]
    resolved = [resolve_trial(spec) for spec in finals]
    for entry, trial in zip(record["selection"], resolved):
        entry["final_trial_id"] = trial.trial_id
    record["final"] = [{"env": t.spec.env, "algo": t.spec.algo, "trial_id": t.trial_id} for t in resolved]
    stages = {"final": resolved}
    if s.matched:
        pairs = matched_pairs(protocol, {(t.spec.env, t.spec.algo): t for t in resolved})
        stages["matched"] = [resolve_trial(spec) for _, spec in pairs]
        record["matched_trials"] = [
            {**entry, "trial_id": t.trial_id} for (entry, _), t in zip(pairs, stages["matched"])
        ]

    def mark(status: str = "running") -> None:
        """Each of the final and matched stages: done when all its trials are stored, else `status`."""
        for name, trials in stages.items():
            finished = sum(store.is_finished(t.trial_id) for t in trials)
            _stage(record, name, "done" if finished == len(trials) else status, len(trials), finished)
        write_record(out, record)

    mark()
    _say(
        progress,
        f"final: {len(resolved)} trial(s) on seeds {list(s.final_seeds)}"
        + (
            f"; matched: {len(stages['matched'])} trial(s) on the same seeds, run beside it"
            if s.matched
            else ""
        ),
    )
    part = run(
        [t for trials in stages.values() for t in trials]
    )  # together: a matched trial may share a program
    mark("failed" if part.failed else "busy" if part.busy else "running")
    outcome.complete = all(record["stages"][name]["status"] == "done" for name in stages)
    return outcome


# ------------------------------------------------------------------------------------ dry run ---

_HEAD = ("env", "algorithm", "trials", "done", "seeds", "env steps/run", "env steps", "")


def _table(rows: list[Sequence[Any]]) -> list[str]:
    """Rows under _HEAD, text columns left-aligned, numbers right-aligned, and a total of the env steps."""
    rows = [
        _HEAD,
        *rows,
        ("total", "", sum(r[2] for r in rows), sum(r[3] for r in rows), "", "", sum(r[6] for r in rows), ""),
    ]
    cells = [[f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_HEAD))]
    return [
        "  "
        + "  ".join(
            c.ljust(w) if i in (0, 1, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in cells
    ]


def _dist_text(name: str, dist: dict) -> str:
    ((kind, args),) = dist.items()
    values = ", ".join(json.dumps(a) for a in args)
    return f"{name} [{values}]" if kind == "choice" else f"{name} {kind}[{values}]"


def _replay_search(
    protocol: Protocol, store: ResultStore
) -> tuple[dict[Pair, list[Candidate]], dict[Pair, int]]:
    """The search as far as the store knows it: (finished rounds' candidates, finished trials per pair)."""
    history: dict[Pair, list[Candidate]] = {pair: [] for pair in protocol.pairs}
    done = {pair: 0 for pair in protocol.pairs}
    while trials := _round(protocol, history):
        finished = [store.is_finished(t.trial_id) for _, _, t in trials]
        for (pair, _, _), f in zip(trials, finished):
            done[pair] += f
        if not all(finished):
            break
        for pair, point, trial in trials:
            history[pair].append(_candidate(store, point, trial))
    return history, done


def describe_protocol(protocol: Protocol, store: ResultStore) -> str:
    """What each stage will run (counts, seeds, env steps) and what the store already has; runs and writes nothing."""
    s, pairs = protocol.settings, protocol.pairs
    budget = {pair: protocol.sweep.spec(*pair).env_steps for pair in pairs}
    lines = [
        f"esbench reproduce: sweep {protocol.sweep.data.get('name')}, budget {protocol.sweep.budget}, "
        f"{len(pairs)} (env, algorithm) pairs; a dry run: nothing is run or written.",
        "",
    ]
    winners: dict[Pair, ResolvedTrial] = {}
    if s.skip_search:
        lines += [
            "stage 1, search: skipped (skip_search); the final stage runs the paper's rows",
            "stage 2, select: skipped",
        ]
        winners = {
            pair: resolve_trial(protocol.final_spec(pair, protocol.paper_point(pair))) for pair in pairs
        }
    else:
        how = (
            "random search (the paper's)"
            if s.sampler == "random"
            else f"TPE (Optuna) in rounds of {s.tpe_batch}, the first random (later rounds follow from earlier results)"
        )
        history, done = _replay_search(protocol, store)
        n, k = s.search_trials, len(s.tuning_seeds)
        lines += [
            f"stage 1, search: {n} trials per (env, algorithm) by {how}, sampler seed {s.sampler_seed}, on "
            f"tuning seeds {list(s.tuning_seeds)}",
            *_table([(*pair, n, done[pair], k, budget[pair], n * k * budget[pair], "") for pair in pairs]),
            *(
                f"  {algo} searches " + ", ".join(_dist_text(name, dist) for name, dist in space.items())
                for algo, space in s.space.items()
            ),
            "",
            "stage 2, select: per (env, algorithm), the best search trial. "
            + " ".join(f"{RULES[r][0].upper()}{RULES[r][1:]}." for r in ("score", "diverged", "ties")),
        ]
        if s.reselect_top:
            m, r = s.reselect_top, len(s.reselect_seeds)
            lines += [
                "",
                f"stage 2b, re-select: per (env, algorithm) the {m} best search trials re-run on {r} "
                f"re-selection seeds {list(s.reselect_seeds)} (a pair's points and seeds run as one program); "
                f"the best there wins. {RULES['reselect'][0].upper()}{RULES['reselect'][1:]}.",
                *_table(
                    [
                        (
                            *pair,
                            m,
                            _reselect_done(protocol, store, history, pair),
                            r,
                            budget[pair],
                            m * r * budget[pair],
                            "",
                        )
                        for pair in pairs
                    ]
                ),
            ]
        if all(len(h) == n for h in history.values()):
            winners = {
                pair: resolve_trial(protocol.final_spec(pair, point))
                for pair, point in _winning_points(protocol, store, history).items()
            }
    k = len(s.final_seeds)
    rows = [
        (
            *pair,
            1,
            int(pair in winners and store.is_finished(winners[pair].trial_id)),
            k,
            budget[pair],
            k * budget[pair],
            winners[pair].trial_id if pair in winners else "(the winner of its search)",
        )
        for pair in pairs
    ]
    lines += [
        "",
        f"stage 3, final: the winner of each (env, algorithm) x {k} seeds {list(s.final_seeds)}, each "
        "with its budget",
        *_table(rows),
    ]
    if s.matched:
        a, b = MATCHED_ALGOS
        envs = [e for e in dict.fromkeys(e for e, _ in pairs) if (e, a) in pairs and (e, b) in pairs]
        known = {
            (e["env"], e["algo"]): resolve_trial(spec).trial_id
            for e, spec in matched_pairs(protocol, winners)
        }
        lines += [
            "",
            f"stage 4, matched: per env, {a} on {b}'s final configuration and {b} on {a}'s, on the final "
            f"seeds {list(s.final_seeds)}, run beside stage 3. {RULES['matched'][0].upper()}"
            f"{RULES['matched'][1:]}.",
            *_table(
                [
                    (
                        e,
                        algo,
                        1,
                        int((e, algo) in known and store.is_finished(known[e, algo])),
                        k,
                        budget[e, algo],
                        k * budget[e, algo],
                        known.get((e, algo), f"(at {other}'s winning point)"),
                    )
                    for e in envs
                    for algo, other in ((a, b), (b, a))
                ]
            ),
        ]
    return "\n".join(lines)


def _reselect_done(
    protocol: Protocol, store: ResultStore, history: dict[Pair, list[Candidate]], pair: Pair
) -> int:
    """Finished re-selection trials of `pair` (0 while its search is unfinished: the points are not known)."""
    if len(history[pair]) < protocol.settings.search_trials:
        return 0
    return sum(
        store.is_finished(
            resolve_trial(protocol.reselect_spec(pair, c.point, history[pair].index(c))).trial_id
        )
        for c in _top(protocol, history[pair])
    )


def _winning_points(
    protocol: Protocol, store: ResultStore, history: dict[Pair, list[Candidate]]
) -> dict[Pair, dict]:
    """Each pair's winning point as far as the store knows it (the search's, or the re-selection's once finished)."""
    points = {}
    for pair in protocol.pairs:
        top = _top(protocol, history[pair]) if protocol.settings.reselect_top else []
        trials = [resolve_trial(protocol.reselect_spec(pair, c.point, history[pair].index(c))) for c in top]
        if top and all(store.is_finished(t.trial_id) for t in trials):
            points[pair] = reselect(pair, top, [_candidate(store, c.point, t) for c, t in zip(top, trials)])[
                "point"
            ]
        elif not top:
            points[pair] = select(pair, history[pair])["point"]
    return points
