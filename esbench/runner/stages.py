"""The protocol's stages as one ordered list, each deriving its trials from what the store holds.

    STAGES = (Search(), Reselect(), Final(), Matched())      # in the order they run
    state = ProtocolState(protocol, store)                   # what the store knows, derived stage by stage
    stage.runnable(state)    # its trials still to run now ([] when it has settled; None while an earlier
                             # stage has not, so its trials are not known yet)
    stage.record(state, record)   # what it writes to protocol.json
    stage.rows(state)        # its dry-run table; stage.heading(state): the lines above it
    stage.planned(protocol)  # [(specs at the shapes it will compile, rounds)]: what `esbench plan` measures

`esbench reproduce` (protocol.run_protocol), `--dry-run` (protocol_description.py) and `esbench plan`
(plan.protocol_groups) all iterate STAGES, so a stage added here reaches all three. A stage whose `beside`
names an earlier one runs together with it (the matched stage beside the final one: their trials may share
a program). Stages a protocol's settings switch off (`enabled`) are skipped everywhere.

Everything is derived from stored results: trial ids hash their resolved configs, the samplers give the
same points on every rerun, and each stage reads the winners from the stored summaries, so a killed run
resumes where it stopped. A search or re-selection trial whose program cannot fit the device even at its
smallest split (a stored failure of kind "memory") has settled: it ranks last (selection.RULES).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from esbench.results import read_trial, trial_path
from esbench.results.store import read_failure
from esbench.runner import samplers
from esbench.runner.config import ResolvedTrial, TrialSpec, resolve_trial
from esbench.runner.fitting import MEMORY_FAILURE
from esbench.runner.protocol_settings import MATCHED_ALGOS
from esbench.runner.selection import RULES, Candidate, Pair, ranked, score, selection_entry

if TYPE_CHECKING:
    from esbench.runner.protocol import Protocol

PERMANENT_FAILURES = (
    MEMORY_FAILURE,
)  # failures a rerun on the same device would repeat: the trial ranks last


def next_round(protocol: Protocol, pair: Pair, history: list[Candidate]) -> list[dict]:
    """The sampler's next round of points of `pair` after `history` (none once the search is complete)."""
    s = protocol.settings
    return samplers.next_points(
        s.sampler,
        s.space[pair[1]],
        [(c.point, c.score) for c in history],
        s.search_trials,
        protocol.key(pair),
        s.tpe_batch,
    )


class ProtocolState:
    """What the store knows of one protocol run, each stage's trials derived from the stages before it.

    Cached: call `refresh()` after running trials."""

    def __init__(self, protocol: Protocol, store):
        self.protocol, self.store = protocol, store

    def refresh(self) -> None:
        for name in ("search", "reselect_trials", "again", "selection", "finals", "matched"):
            self.__dict__.pop(name, None)

    # ------------------------------------------------------------------ trials in the store ---

    def finished(self, trial: ResolvedTrial) -> bool:
        return self.store.is_finished(trial.trial_id)

    def failure(self, trial: ResolvedTrial) -> str | None:
        """The reason a trial could not run, when a rerun here would fail the same way (else None)."""
        if self.finished(trial):
            return None
        record = read_failure(self.store.out_dir, trial.trial_id)
        return record["reason"] if record and record.get("kind") in PERMANENT_FAILURES else None

    def settled(self, trial: ResolvedTrial) -> bool:
        """Finished, or failed for good: a search or re-selection can go on without it."""
        return self.finished(trial) or self.failure(trial) is not None

    def candidate(self, point: dict, trial: ResolvedTrial) -> Candidate:
        reason = self.failure(trial)
        if reason is not None:
            return Candidate(point, trial.trial_id, None, failed=reason)
        _, _, summary = read_trial(trial_path(self.store.out_dir, trial.trial_id))
        return Candidate(point, trial.trial_id, score(summary))

    # --------------------------------------------------------------------- derived stage by stage ---

    @cached_property
    def search(self) -> tuple[dict[Pair, list[Candidate]], list[tuple[Pair, dict, ResolvedTrial]]]:
        """(every pair's settled rounds as candidates, in search order; the trials of the first round not yet
        settled: [] once the search is complete). A round's points follow from the rounds before it (TPE)."""
        p = self.protocol
        history: dict[Pair, list[Candidate]] = {pair: [] for pair in p.pairs}
        if p.settings.skip_search:
            return history, []
        while True:
            trials = []
            for pair in p.pairs:
                done = len(history[pair])
                for i, point in enumerate(next_round(p, pair, history[pair])):
                    trials.append((pair, point, resolve_trial(p.search_spec(pair, point, done + i))))
            if not trials or not all(self.settled(t) for _, _, t in trials):
                return history, trials
            for pair, point, trial in trials:
                history[pair].append(self.candidate(point, trial))

    @property
    def history(self) -> dict[Pair, list[Candidate]]:
        return self.search[0]

    @property
    def search_complete(self) -> bool:
        return not self.search[1]

    def top(self, pair: Pair) -> list[Candidate]:
        return ranked(self.history[pair])[: self.protocol.settings.reselect_top]

    @cached_property
    def reselect_trials(self) -> list[tuple[Pair, Candidate, ResolvedTrial]] | None:
        """Every pair's best search points as re-selection trials (None until the search is complete)."""
        p = self.protocol
        if not self.search_complete:
            return None
        return [
            (pair, c, resolve_trial(p.reselect_spec(pair, c.point, self.history[pair].index(c))))
            for pair in p.pairs
            for c in self.top(pair)
        ]

    @cached_property
    def again(self) -> dict[Pair, list[Candidate]] | None:
        """The re-selection's candidates per pair, once every one has settled (None before)."""
        chosen = self.reselect_trials
        if chosen is None or not all(self.settled(t) for _, _, t in chosen):
            return None
        again: dict[Pair, list[Candidate]] = {pair: [] for pair in self.protocol.pairs}
        for pair, c, trial in chosen:
            again[pair].append(self.candidate(c.point, trial))
        return again

    @cached_property
    def selection(self) -> list[dict] | None:
        """Each pair's selection entry (selection.py), once the search (and the re-selection) has settled."""
        p = self.protocol
        if p.settings.skip_search or not self.search_complete:
            return None
        again = None
        if p.settings.reselect_top:
            again = self.again
            if again is None:
                return None
        return [
            selection_entry(pair, self.history[pair], self.top(pair), again and again[pair])
            for pair in p.pairs
        ]

    @cached_property
    def finals(self) -> list[ResolvedTrial] | None:
        """The final stage's trials: the winners (the paper's rows with skip_search); None until known."""
        p = self.protocol
        if p.settings.skip_search:
            return [resolve_trial(p.final_spec(pair, p.paper_point(pair))) for pair in p.pairs]
        if self.selection is None:
            return None
        return [resolve_trial(p.final_spec((e["env"], e["algo"]), e["point"])) for e in self.selection]

    @cached_property
    def matched(self) -> list[tuple[dict, ResolvedTrial]] | None:
        """(record entry, trial) of each ES on the other's final configuration; None until the finals are known."""
        if self.finals is None:
            return None
        by_pair = {(t.spec.env, t.spec.algo): t for t in self.finals}
        return [(entry, resolve_trial(spec)) for entry, spec in matched_specs(self.protocol, by_pair)]


def matched_specs(protocol: Protocol, finals: dict[Pair, ResolvedTrial]) -> list[tuple[dict, TrialSpec]]:
    """Per env with both ES, (record entry, spec) of each one on the other's final configuration."""
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


# ------------------------------------------------------------------------------------ stages ---


@dataclass(frozen=True)
class Row:
    """One dry-run table row: a pair's trials in a stage (`trials` of which `done` are stored)."""

    env: str
    algo: str
    trials: int
    done: int
    seeds: int
    env_steps_per_run: int
    note: str = ""


class Stage:
    """A protocol stage (module doc). Subclasses set `name` and implement what they derive."""

    name: str = ""
    beside: str | None = None  # an earlier stage this one runs together with

    def enabled(self, protocol: Protocol) -> bool:
        return True

    def trials(self, state: ProtocolState) -> list[ResolvedTrial] | None:
        """Its trials as far as the store lets them be known (None: not yet)."""
        raise NotImplementedError

    def trial_ids(self, state: ProtocolState) -> list[str]:
        """The ids of every trial it has derived so far, settled ones included."""
        return [t.trial_id for t in self.trials(state) or []]

    def settles(self, state: ProtocolState, trial: ResolvedTrial) -> bool:
        """Whether `trial` no longer needs running for the stage to go on."""
        return state.finished(trial)

    def runnable(self, state: ProtocolState) -> list[ResolvedTrial] | None:
        trials = self.trials(state)
        return None if trials is None else [t for t in trials if not self.settles(state, t)]

    def status(self, state: ProtocolState) -> dict:
        trials = self.trials(state) or []
        finished = sum(state.finished(t) for t in trials)
        failed = sum(state.failure(t) is not None for t in trials)
        known = self.trials(state) is not None
        done = known and all(self.settles(state, t) for t in trials)
        entry = {"status": "done" if done else "running", "trials": len(trials), "finished": finished}
        return {**entry, "failed": failed} if failed else entry  # failed: could not fit the device

    def record(self, state: ProtocolState, record: dict) -> None:
        """Its entries in protocol.json (the stage's status is written by the run)."""

    def announce(self, state: ProtocolState, todo: list[ResolvedTrial]) -> str:
        return f"{self.name}: {len(todo)} trial(s)"

    def heading(self, state: ProtocolState) -> list[str]:
        raise NotImplementedError

    def footer(self, state: ProtocolState) -> list[str]:
        """Dry-run lines after its table."""
        return []

    def rows(self, state: ProtocolState) -> list[Row]:
        raise NotImplementedError

    def planned(self, protocol: Protocol) -> list[tuple[list[TrialSpec], int]]:
        raise NotImplementedError


def _budget(protocol: Protocol, pair: Pair) -> int:
    return protocol.sweep.spec(*pair).env_steps


class Search(Stage):
    """Stage 1: per (env, algorithm), `search_trials` points of the space on the tuning seeds, in rounds."""

    name = "search"

    def enabled(self, protocol):
        return not protocol.settings.skip_search

    def trials(self, state):
        return [t for _, _, t in state.search[1]]

    def trial_ids(self, state):
        settled = [c.trial_id for history in state.history.values() for c in history]
        return settled + super().trial_ids(state)

    def settles(self, state, trial):
        return state.settled(trial)

    def status(self, state):
        s = state.protocol.settings
        total = len(state.protocol.pairs) * s.search_trials
        settled = [c for history in state.history.values() for c in history]
        failed = sum(c.failed is not None for c in settled)
        entry = {
            "status": "done" if state.search_complete else "running",
            "trials": total,
            "finished": len(settled) - failed,
        }
        return {**entry, "failed": failed} if failed else entry  # failed: could not fit the device

    def announce(self, state, todo):
        s = self.status(state)
        return f"search: {len(todo)} trial(s) ({s['finished']} of {s['trials']} finished before)"

    def heading(self, state):
        s = state.protocol.settings
        how = (
            "random search (the paper's)"
            if s.sampler == "random"
            else f"TPE (Optuna) in rounds of {s.tpe_batch}, the first random (later rounds follow from earlier "
            "results)"
        )
        return [
            f"stage 1, search: {s.search_trials} trials per (env, algorithm) by {how}, sampler seed "
            f"{s.sampler_seed}, on tuning seeds {list(s.tuning_seeds)}"
        ]

    def footer(self, state):
        rules = " ".join(_sentence(r) for r in ("score", "diverged", "ties"))
        spaces = [
            f"  {algo} searches " + ", ".join(_dist_text(name, dist) for name, dist in space.items())
            for algo, space in state.protocol.settings.space.items()
        ]
        return [*spaces, "", f"stage 2, select: per (env, algorithm), the best search trial. {rules}"]

    def rows(self, state):
        p, s = state.protocol, state.protocol.settings
        done = {pair: len(h) for pair, h in state.history.items()}
        for _, _, trial in state.search[1]:  # the unsettled round's finished trials count too
            done[(trial.spec.env, trial.spec.algo)] += state.settled(trial)
        return [
            Row(*pair, s.search_trials, done[pair], len(s.tuning_seeds), _budget(p, pair)) for pair in p.pairs
        ]

    def planned(self, protocol):
        s, out = protocol.settings, []
        for pair in protocol.pairs:
            points = next_round(protocol, pair, [])
            out.append(
                (
                    [protocol.search_spec(pair, p, i) for i, p in enumerate(points)],
                    math.ceil(s.search_trials / len(points)),
                )
            )
        return out


class Reselect(Stage):
    """Stage 2b: per (env, algorithm) the `reselect_top` best search points re-run on the re-selection seeds."""

    name = "reselect"

    def enabled(self, protocol):
        return bool(protocol.settings.reselect_top)

    def trials(self, state):
        chosen = state.reselect_trials
        return None if chosen is None else [t for _, _, t in chosen]

    def settles(self, state, trial):
        return state.settled(trial)

    def announce(self, state, todo):
        s = state.protocol.settings
        return (
            f"reselect: the {s.reselect_top} best search point(s) per (env, algorithm) on seeds "
            f"{list(s.reselect_seeds)}: {len(todo)} trial(s) to run"
        )

    def heading(self, state):
        s = state.protocol.settings
        return [
            f"stage 2b, re-select: per (env, algorithm) the {s.reselect_top} best search trials re-run on "
            f"{len(s.reselect_seeds)} re-selection seeds {list(s.reselect_seeds)} (a pair's points and seeds run as "
            f"one program); the best there wins. {_sentence('reselect')}"
        ]

    def rows(self, state):
        p, s = state.protocol, state.protocol.settings
        chosen = state.reselect_trials or []
        done = {pair: 0 for pair in p.pairs}
        for pair, _, trial in chosen:
            done[pair] += state.settled(trial)
        return [
            Row(*pair, s.reselect_top, done[pair], len(s.reselect_seeds), _budget(p, pair))
            for pair in p.pairs
        ]

    def planned(self, protocol):
        s = protocol.settings
        specs = []
        for pair in protocol.pairs:
            points = next_round(protocol, pair, [])[: s.reselect_top]
            specs += [protocol.reselect_spec(pair, p, i) for i, p in enumerate(points)]
        return [(specs, 1)]


class Final(Stage):
    """Stage 3: each (env, algorithm)'s winner on the final seeds (the paper's rows with skip_search)."""

    name = "final"

    def trials(self, state):
        return state.finals

    def record(self, state, record):
        finals = state.finals
        if finals is None:
            return
        if state.selection is not None:
            record["selection"] = [
                {**e, "final_trial_id": t.trial_id} for e, t in zip(state.selection, finals)
            ]
        record["final"] = [{"env": t.spec.env, "algo": t.spec.algo, "trial_id": t.trial_id} for t in finals]

    def announce(self, state, todo):
        s = state.protocol.settings
        envs = dict.fromkeys(t.spec.env for t in todo)
        return f"final: {len(todo)} trial(s) on seeds {list(s.final_seeds)}{_per_env_text(s, envs)}"

    def heading(self, state):
        s = state.protocol.settings
        lines = []
        if s.skip_search:
            lines += [
                "stage 1, search: skipped (skip_search); the final stage runs the paper's rows",
                "stage 2, select: skipped",
                "",
            ]
        k, others = len(s.final_seeds), _per_env_text(s, dict.fromkeys(e for e, _ in state.protocol.pairs))
        return lines + [
            f"stage 3, final: the winner of each (env, algorithm) x {k} seeds {list(s.final_seeds)}{others}, each "
            "with its budget"
        ]

    def rows(self, state):
        p, s = state.protocol, state.protocol.settings
        finals = {(t.spec.env, t.spec.algo): t for t in state.finals or []}
        return [
            Row(
                *pair,
                1,
                int(pair in finals and state.finished(finals[pair])),
                len(s.final_seeds_for(pair[0])),
                _budget(p, pair),
                finals[pair].trial_id if pair in finals else "(the winner of its search)",
            )
            for pair in p.pairs
        ]

    def planned(self, protocol):
        if protocol.settings.skip_search:
            return [([protocol.final_spec(pair, protocol.paper_point(pair)) for pair in protocol.pairs], 1)]
        # the first sampled point has the winner's shapes: the search changes values only
        return [
            ([protocol.final_spec(pair, next_round(protocol, pair, [])[0]) for pair in protocol.pairs], 1)
        ]


class Matched(Stage):
    """Stage 4: per env, each ES on the other's final configuration, on the final seeds, beside stage 3."""

    name = "matched"
    beside = "final"

    def enabled(self, protocol):
        return protocol.settings.matched

    def trials(self, state):
        matched = state.matched
        return None if matched is None else [t for _, t in matched]

    def record(self, state, record):
        if state.matched is not None:
            record["matched_trials"] = [{**entry, "trial_id": t.trial_id} for entry, t in state.matched]

    def announce(self, state, todo):
        return f"matched: {len(todo)} trial(s) on the same seeds, run beside it"

    def heading(self, state):
        a, b = MATCHED_ALGOS
        s = state.protocol.settings
        seeds = f"{list(s.final_seeds)}{_per_env_text(s, dict.fromkeys(e for e, _ in state.protocol.pairs))}"
        return [
            f"stage 4, matched: per env, {a} on {b}'s final configuration and {b} on {a}'s, on the final seeds "
            f"{seeds}, run beside stage 3. {_sentence('matched')}"
        ]

    def rows(self, state):
        p, s = state.protocol, state.protocol.settings
        a, b = MATCHED_ALGOS
        known = {(e["env"], e["algo"]): t for e, t in state.matched or []}
        envs = [e for e in dict.fromkeys(e for e, _ in p.pairs) if (e, a) in p.pairs and (e, b) in p.pairs]
        return [
            Row(
                env,
                algo,
                1,
                int((env, algo) in known and state.finished(known[env, algo])),
                len(s.final_seeds_for(env)),
                _budget(p, (env, algo)),
                known[env, algo].trial_id if (env, algo) in known else f"(at {other}'s winning point)",
            )
            for env in envs
            for algo, other in ((a, b), (b, a))
        ]

    def planned(self, protocol):
        final = Final().planned(protocol)[0][0]
        finals = {(s.env, s.algo): resolve_trial(s) for s in final}
        return [([spec for _, spec in matched_specs(protocol, finals)], 1)]


def _per_env_text(settings, envs) -> str:
    """' (ENV: N seeds [...]; ...)': the final seeds of those of `envs` with their own, or ''."""
    own = [(env, settings.final_seeds_per_env[env]) for env in envs if env in settings.final_seeds_per_env]
    if not own:
        return ""
    return " (" + "; ".join(f"{env}: {len(seeds)} seeds {_seeds_text(seeds)}" for env, seeds in own) + ")"


def _seeds_text(seeds: tuple[int, ...]) -> str:
    """A list of seeds; a run of more than 3 consecutive ones as [first, ..., last]."""
    if len(seeds) > 3 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"[{seeds[0]}, ..., {seeds[-1]}]"
    return str(list(seeds))


def _dist_text(name: str, dist: dict) -> str:
    ((kind, args),) = dist.items()
    values = ", ".join(json.dumps(a) for a in args)
    return f"{name} [{values}]" if kind == "choice" else f"{name} {kind}[{values}]"


def _sentence(rule: str) -> str:
    text = RULES[rule]
    return f"{text[0].upper()}{text[1:]}."


STAGES: tuple[Stage, ...] = (Search(), Reselect(), Final(), Matched())


def stages_of(protocol: Protocol, stages: tuple[Stage, ...] | None = None) -> list[Stage]:
    """The stages `protocol` runs, in order (those its settings switch off left out)."""
    return [s for s in (STAGES if stages is None else stages) if s.enabled(protocol)]


def batches(protocol: Protocol, stages: tuple[Stage, ...] | None = None) -> list[list[Stage]]:
    """The stages grouped as they run: each with those that run beside it."""
    out: list[list[Stage]] = []
    for stage in stages_of(protocol, stages):
        if stage.beside is not None and out and any(s.name == stage.beside for s in out[-1]):
            out[-1].append(stage)
        else:
            out.append([stage])
    return out


__all__ = [
    "STAGES",
    "Final",
    "Matched",
    "ProtocolState",
    "Reselect",
    "Row",
    "Search",
    "Stage",
    "batches",
    "next_round",
    "matched_specs",
    "stages_of",
]
