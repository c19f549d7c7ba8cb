"""The paper's protocol (Appendix N.4) as one resumable run: search, select, final, and two optional stages.

    protocol = prepare_protocol(load_sweep_file(path), "cpu", out=out)   # everything validated, nothing written
    print(describe_protocol(protocol, store))                            # --dry-run (protocol_description.py)
    outcome = run_protocol(protocol, store, backend="local")

The stages are one ordered list (stages.py): search (per (env, algorithm), `search_trials` points of
the space on the tuning seeds), the optional re-selection (the best points re-run on fresh seeds),
final (the winner on the final seeds; with `skip_search`, the paper's rows) and the optional matched
stage (each ES on the other's winning configuration, beside the final stage). How a winner is chosen:
selection.py. What is recorded: protocol_record.py. This module validates a protocol before anything
runs and runs its stages in order, each until the store holds all its trials.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from esbench.results import ResultStore
from esbench.runner import samplers
from esbench.runner.backends import SweepOutcome, run_trials
from esbench.runner.config import ResolvedTrial, TrialSpec, resolve_trial
from esbench.runner.eta import EtaHistory
from esbench.runner.protocol_record import base_record, check_record, write_record
from esbench.runner.protocol_settings import ProtocolSettings, protocol_settings
from esbench.runner.selection import Pair
from esbench.runner.stages import ProtocolState, Stage, batches, next_round
from esbench.runner.sweep import Sweep, paper_row, parse_sweep
from esbench.runner.trial import RunOptions
from esbench.validation import ConfigError

_NO_LIMIT = 2**62  # env steps of a value's check alone (the budget is checked on the biggest update)


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
        """`algo` on `env` with every hyperparameter of `other` (the other ES's final trial) that `algo` has, but
        rank."""
        own_fields = dataclasses.asdict(own.cfg)
        shared = {k: v for k, v in dataclasses.asdict(other.cfg).items() if k in own_fields and k != "rank"}
        spec = self.sweep.spec(
            env,
            algo,
            owner=f"matched trial [{env} x {algo}]",
            seeds=self.settings.final_seeds_for(env),
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
            seeds=self.settings.final_seeds_for(env),
            stage="final",
        )

    def paper_point(self, pair: Pair) -> dict:
        env, algo = pair
        return paper_row(algo, env, f"{self.path}.skip_search")


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
    pilot: bool = False,
    out: str | os.PathLike | None = None,
) -> Protocol:
    """The protocol of a sweep file under `budget`, every stage validated before anything runs.

    envs: a subset of the budget's envs; skip_search, sampler: the command line's (None: the file's);
    pilot: every stage on pilot seeds (protocol_settings.PILOT_SEED_BASES);
    out: the results folder, whose protocol.json (if any) must record the same protocol.
    """
    sweep = parse_sweep(data, budget)
    if data.get("search"):
        raise ConfigError(
            "search: `esbench reproduce` searches protocol.space (see esbench/runner/search_space.py); "
            "the `search` section is for `esbench sweep`; remove one"
        )
    settings = protocol_settings(sweep, skip_search=skip_search, sampler=sampler, pilot=pilot or None)
    chosen_envs = sweep.only(envs)
    protocol = Protocol(sweep, settings, tuple((e, a) for e in chosen_envs for a in sweep.algos_on(e)))
    for pair in protocol.pairs:
        if settings.skip_search:
            _resolve(protocol.final_spec(pair, protocol.paper_point(pair)), "final stage")
            continue
        _check_search_space(protocol, pair)
        points = next_round(protocol, pair, [])
        for i, point in enumerate(points):
            _resolve(protocol.search_spec(pair, point, i), f"search point {i}")
        _resolve(
            protocol.final_spec(pair, points[0]), "final stage"
        )  # the final seeds; a winner's budget fits
    if out is not None:
        check_record(protocol, Path(out))
    return protocol


# ---------------------------------------------------------------------------------------- run ---


@dataclass
class ProtocolOutcome(SweepOutcome):
    """What a run of the protocol ran, skipped, and whether every stage has finished."""

    complete: bool = False


def _merge(total: ProtocolOutcome, part: SweepOutcome) -> None:
    for name in ("ran", "skipped", "busy", "diverged"):
        getattr(total, name).extend(getattr(part, name))
    total.failed.update(part.failed)


def run_protocol(
    protocol: Protocol,
    store: ResultStore,
    backend: str = "local",
    address: str | None = None,
    options: RunOptions | None = None,
    stages: tuple[Stage, ...] | None = None,
) -> ProtocolOutcome:
    """Run (or resume) every stage in order (stages.STAGES unless `stages`), protocol.json rewritten after each.

    Stages that run beside each other (final and matched) run as one batch of trials. A stage whose trials
    did not all settle (one failed, or another process is running it) stops the run before the next stage:
    rerunning the command goes on from there. `options`: how trials run (run_trials).
    """
    options = options if options is not None else RunOptions()
    if options.eta_history is None:  # one history for every stage: later stages start from earlier paces
        options = dataclasses.replace(options, eta_history=EtaHistory())
    progress = options.progress
    out, record, outcome = Path(store.out_dir), base_record(protocol), ProtocolOutcome()
    state = ProtocolState(protocol, store)

    def write(batch: list[Stage], status: str | None = None) -> None:
        for stage in batch:
            entry = stage.status(state)
            if status is not None and entry["status"] != "done":
                entry["status"] = status
            record["stages"][stage.name] = entry
            stage.record(state, record)
        write_record(out, record)

    if protocol.settings.skip_search:
        record["stages"]["search"] = {"status": "skipped", "trials": 0, "finished": 0}
    for batch in batches(protocol, stages):
        while True:
            todo = [t for stage in batch for t in stage.runnable(state)]
            write(batch)
            if not todo:
                done = set(outcome.ran)
                outcome.skipped.extend(
                    i
                    for stage in batch
                    for i in stage.trial_ids(state)
                    if i not in done and store.is_finished(i)
                )
                break
            if progress:
                ids = {t.trial_id for t in todo}
                lines = [
                    stage.announce(state, [t for t in stage.trials(state) or [] if t.trial_id in ids])
                    for stage in batch
                ]
                print("; ".join(lines), file=sys.stderr, flush=True)
            part = run_trials(todo, store, backend=backend, address=address, options=options)
            _merge(outcome, part)
            state.refresh()
            if not all(any(stage.settles(state, t) for stage in batch) for t in todo):
                write(batch, "failed" if part.failed else "busy")
                names = " and ".join(stage.name for stage in batch)
                print(
                    f"{names}: {len(part.failed)} trial(s) failed, {len(part.busy)} run by another process; "
                    "the next stage waits until all have finished (rerun this command)",
                    file=sys.stderr,
                    flush=True,
                )
                return outcome
    outcome.complete = all(entry["status"] in ("done", "skipped") for entry in record["stages"].values())
    return outcome
