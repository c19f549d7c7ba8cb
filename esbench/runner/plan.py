"""`esbench plan`: every program a run would compile, measured at its exact shapes, and the run's cost.

    staged = protocol_groups(protocol)            # (stage, group, rounds): what each stage compiles
    plan = plan_run(staged, steps=2, accelerator=accelerator("h100-sxm"))
    print(format_plan(plan, workers=4)); plan.as_json()

The groups are the runner's own (`backends.group_trials` over the trials each
stage resolves), so the plan compiles what the run would. The final stage's
points are chosen by the search; it is planned with the first sampled point,
whose shapes are the winner's (only value fields are searched). Programs of
equal shapes are measured once and projected for each group's own budget.
Nothing runs to completion and nothing is written (but the JSON the CLI asks for).
"""

from __future__ import annotations

import dataclasses
import heapq
import json
import math
from dataclasses import dataclass, field
from typing import Callable

from esbench.provenance import device_description
from esbench.runner.backends import group_trials, resolve_trials
from esbench.runner.cost import ProgramCost, error_line, evaluations, measure_group, projection, unmeasured
from esbench.runner.measure_in_child import measure_in_child
from esbench.runner.memory import accelerator_limit, gb
from esbench.runner.memory import memory_limit as device_limit
from esbench.runner.roofline import Accelerator
from esbench.runner.stages import batches
from esbench.validation import ConfigError

FINAL_NOTE = "final stage planned with the first sampled point's shapes (the search changes values only)"


@dataclass
class StagedGroup:
    stage: str
    trials: list  # one group: ResolvedTrials run as one program
    rounds: int = 1  # how many times the stage compiles a group like it (TPE rounds)


_COMPLETENESS = ("ok", "over time", "too big", "failed")  # a program's measurements, most complete first


@dataclass
class RunPlan:
    programs: list[ProgramCost]
    rounds: list[int]
    accelerator: Accelerator | None
    notes: list[str] = field(default_factory=list)
    device: str | None = None  # the machine that measured (provenance.device_description)

    def stage_totals(self) -> dict[str, dict]:
        totals: dict[str, dict] = {}
        for cost, rounds in zip(self.programs, self.rounds):
            t = totals.setdefault(
                cost.stage,
                {"programs": 0, "trials": 0, "projected_s": 0.0, "roofline_s": 0.0, "lower_bound": False},
            )
            t["lower_bound"] |= cost.status != "ok"
            t["programs"] += rounds
            t["trials"] += cost.trials * rounds
            t["projected_s"] += (cost.projected_s or 0.0) * rounds
            t["roofline_s"] += (cost.roofline_s or 0.0) * rounds
        return totals

    @property
    def projected_s(self) -> float:
        return sum((c.projected_s or 0.0) * r for c, r in zip(self.programs, self.rounds))

    @property
    def lower_bound(self) -> bool:
        """Whether projected_s is a lower bound: a program was not run (too big, failed) or its timing was
        stopped (measure_in_child.py)."""
        return any(c.status != "ok" for c in self.programs)

    def makespan_s(self, workers: int) -> float:
        """Wall time when `workers` take the groups longest-first (each to the least loaded worker)."""
        jobs = sorted(
            ((c.projected_s or 0.0) for c, r in zip(self.programs, self.rounds) for _ in range(r)),
            reverse=True,
        )
        loads = [0.0] * workers
        for job in jobs:
            heapq.heapreplace(loads, loads[0] + job)
        return max(loads)

    @classmethod
    def from_json(cls, plans: list[dict]) -> "RunPlan":
        """Saved plans (`--json`) as one: parts of a run planned apart (by env, on two machines).

        A program in more than one plan (the k-th of its stage, env, algorithm, points, seeds and budget
        in each) is kept once: its most complete measurement (ok, then over time, too big, failed),
        with the fields that one lacks taken from the others (a program planned again to fill a gap).
        Within one plan every program is kept."""
        names = {f.name for f in dataclasses.fields(ProgramCost)}
        programs: dict[tuple, list] = {}
        notes, chips, devices = [], [], []
        for n, plan in enumerate(plans):
            if plan.get("device") and plan["device"] not in devices:
                devices.append(plan["device"])
            seen: dict[tuple, int] = {}
            for program in plan["programs"]:
                try:
                    cost = ProgramCost(**{k: v for k, v in program.items() if k in names})
                    _COMPLETENESS.index(cost.status)
                except (TypeError, ValueError) as err:
                    raise ConfigError(
                        f"plan {n + 1}: a program that `esbench plan --json` did not write: {err}"
                    ) from None
                key = (cost.stage, cost.env, cost.algo, cost.trials, cost.seeds, cost.budget)
                seen[key] = seen.get(key, -1) + 1
                programs.setdefault((*key, seen[key]), []).append((cost, program.get("rounds", 1)))
            notes += [n for n in plan.get("notes", []) if n not in notes and not n.startswith("partial")]
            chips.append(plan.get("accelerator"))
        if len({json.dumps(c, sort_keys=True) for c in chips}) > 1:
            raise ConfigError(
                "the plans were made for different accelerators: "
                f"{', '.join(sorted({c['name'] if c else 'none' for c in chips}))}"
            )
        costs, rounds = [], []
        for measured in programs.values():
            ordered = sorted(measured, key=lambda m: _COMPLETENESS.index(m[0].status))
            best, r = ordered[0]
            gaps = {
                f: getattr(other, f)
                for other, _ in reversed(ordered[1:])
                for f in names
                if getattr(best, f) is None and getattr(other, f) is not None
            }
            costs.append(dataclasses.replace(best, **{**gaps, "shared_with": []}))  # indices of another plan
            rounds.append(r)
        return cls(
            costs,
            rounds,
            Accelerator(**chips[0]) if chips and chips[0] else None,
            notes,
            " and ".join(devices) or None,
        )

    def env_totals(self) -> dict[str, dict]:
        """Per env: its programs' projected and roofline seconds (times their rounds) and its largest program."""
        totals: dict[str, dict] = {}
        for cost, rounds in zip(self.programs, self.rounds):
            t = totals.setdefault(
                cost.env,
                {
                    "projected_s": 0.0,
                    "lower_bound": False,
                    "unprojected": 0,
                    "roofline_s": 0.0,
                    "peak_bytes": 0,
                    "largest": None,
                },
            )
            if cost.projected_s is None:
                t["unprojected"] += 1  # too big to run here, or failed
            t["projected_s"] += (cost.projected_s or 0.0) * rounds
            t["lower_bound"] |= cost.status != "ok"
            t["roofline_s"] += (cost.roofline_s or 0.0) * rounds
            if (cost.peak_bytes or 0) > t["peak_bytes"]:
                t["peak_bytes"], t["largest"] = cost.peak_bytes, cost.algo
        return totals

    def as_json(self, workers: int | None = None) -> dict:
        out = {
            "device": self.device,
            "projected_s": self.projected_s,
            "projected_is_lower_bound": self.lower_bound,
            "stages": self.stage_totals(),
            "envs": self.env_totals(),
            "notes": self.notes,
            "accelerator": dataclasses.asdict(self.accelerator) if self.accelerator else None,
            "programs": [{**c.as_dict(), "rounds": r} for c, r in zip(self.programs, self.rounds)],
        }
        if self.accelerator is not None:
            out["roofline_s"] = sum((c.roofline_s or 0.0) * r for c, r in zip(self.programs, self.rounds))
        if workers:
            out["workers"], out["makespan_s"] = workers, self.makespan_s(workers)
        return json.loads(json.dumps(out, default=str, allow_nan=True))


# ------------------------------------------------------------------------------- groups ---


def protocol_groups(protocol, vectorize: bool = True, stages=None) -> list[StagedGroup]:
    """The groups each stage of `esbench reproduce` compiles: stages.STAGES' own specs, grouped as the run groups.

    Each stage plans at the shapes it will compile (Stage.planned: the sampler's first round; the final and
    matched stages at the first point's shapes, which are the winner's: the search changes values only).
    Stages that run beside each other share one batch of groups, labelled by the first.
    """
    staged = []
    for batch in batches(protocol, stages):
        planned = [entry for stage in batch for entry in stage.planned(protocol)]
        if len(batch) > 1:  # run as one batch of trials: a matched trial may share a final trial's program
            planned = [([spec for specs, _ in planned for spec in specs], max(r for _, r in planned))]
        for specs, rounds in planned:
            staged += [
                StagedGroup(batch[0].name, g, rounds) for g in group_trials(resolve_trials(specs), vectorize)
            ]
    return staged


def sweep_groups(trials, vectorize: bool = True) -> list[StagedGroup]:
    """The groups `esbench sweep` compiles."""
    return [StagedGroup("sweep", g) for g in group_trials(trials, vectorize)]


def _shape_key(group) -> tuple:
    """Groups with equal keys compile the same programs (only values and budgets differ)."""
    from esbench.runner.backends import group_key

    spec = group[0].spec
    key = group_key(group[0])
    if isinstance(key, str):  # no value fields: the whole config but the budget fixes the shapes
        key = json.dumps(
            {k: v for k, v in group[0].config.items() if k not in ("trial_id", "env_steps", "stage")},
            sort_keys=True,
        )
    else:
        key = key[:4]
    return key, len(group), len(spec.seeds), spec.eval_episodes


def _for_group(measured: ProgramCost, stage: str, group) -> ProgramCost:
    """A measurement of the same shapes projected for another group's budget and logging."""
    trial = group[0]
    schedule = trial.schedule
    cost = dataclasses.replace(
        measured,
        stage=stage,
        trials=len(group),
        budget=schedule.budget,
        evaluations=evaluations(schedule, trial.spec.eval_every),
        shared_with=[],
    )
    if measured.roofline_at_limit_s is not None:  # the fewest updates: in proportion to the budget
        cost.roofline_at_limit_s = measured.roofline_at_limit_s * schedule.budget / measured.budget
    if measured.status not in ("ok", "over time"):  # not run: its only bound is the one at the limit
        cost.roofline_s = cost.roofline_at_limit_s
        return cost
    # an update's env steps as measured; over time before any update was: every episode to its limit
    per_update = measured.env_steps_per_update or schedule.max_env_steps_per_update
    run_updates = min(schedule.budget / per_update, schedule.max_updates)
    cost.projected_s = projection(cost, run_updates)
    if measured.bound_per_update_s is not None:
        cost.roofline_s = run_updates * measured.bound_per_update_s
    return cost


def plan_run(
    staged: list[StagedGroup],
    steps: int = 2,
    accelerator: Accelerator | None = None,
    memory_limit: int | None = None,
    device_bytes: float | None = None,
    progress: Callable[[str], None] | None = None,
    after_each: Callable[[RunPlan], None] | None = None,
    time_limit: float | None = None,
) -> RunPlan:
    """Measure every distinct program of `staged` once and project each group (see the module's docstring).

    memory_limit: what a program measured here may use (None: what this device has, memory.py); a bigger
    one is compiled, not run. device_bytes: what a program may use on the device the run is for (None: the
    accelerator's usable memory, memory.accelerator_limit, else this device's, memory.memory_limit): each
    program's `fits_device` says whether it fits there.
    after_each(plan so far): called after each group (a long plan's partial JSON).
    time_limit: measure each program in a process of its own and stop timing it after this many
    seconds (measure_in_child.py: its projection is then a lower bound)."""
    if device_bytes is None and accelerator is not None and not math.isnan(accelerator.memory_gb):
        device_bytes = accelerator_limit(accelerator.memory_gb)
    if device_bytes is None:
        device_bytes = device_limit(memory_limit)[0]
    device = device_description()
    measured: dict[tuple, ProgramCost] = {}
    costs, rounds = [], []
    for i, sg in enumerate(staged):
        key = _shape_key(sg.trials)
        spec = sg.trials[0].spec
        if key not in measured:
            if progress:
                progress(
                    f"[{i + 1}/{len(staged)}] {sg.stage}: {spec.env} x {spec.algo}, "
                    f"{len(sg.trials)} point(s) x {len(spec.seeds)} seed(s)"
                )
            try:
                if time_limit is None:
                    measured[key] = measure_group(sg.trials, sg.stage, steps, accelerator, memory_limit)
                else:
                    measured[key] = measure_in_child(
                        sg.trials, sg.stage, steps, accelerator, memory_limit, time_limit
                    )
            except Exception as err:  # one program that fails to compile must not hide the others' figures
                measured[key] = unmeasured(sg.trials, sg.stage, status="failed", note=error_line(err))
            costs.append(measured[key])
        else:
            costs.append(_for_group(measured[key], sg.stage, sg.trials))
            measured[key].shared_with.append(i)
        rounds.append(sg.rounds)
        if costs[-1].peak_bytes is not None and device_bytes is not None:
            costs[-1].fits_device = costs[-1].peak_bytes <= device_bytes
        if after_each is not None:
            after_each(RunPlan(list(costs), list(rounds), accelerator, ["partial: planned so far"], device))
    notes = (
        [FINAL_NOTE]
        if any(sg.stage == "final" for sg in staged) and any(sg.stage == "search" for sg in staged)
        else []
    )
    if device_bytes is not None:
        notes.append(f"device memory compared against: {gb(device_bytes)}")
    return RunPlan(costs, rounds, accelerator, notes, device)


# ------------------------------------------------------------------------------- format ---


def _seconds(s: float | None) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return "-"
    if s < 0.1:
        return f"{s * 1e3:.3g} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _projected(cost: ProgramCost) -> str:
    if cost.status == "ok":
        return _seconds(cost.projected_s)
    if cost.status == "over time":  # a lower bound (measure_in_child.py)
        return f"> {_seconds(cost.projected_s)}"
    return cost.status.upper()


def _table(rows: list[list[str]], left: int = 1) -> str:
    """Columns padded to their widest cell: the first `left` to the left, the rest to the right."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in rows
    )


def _env_table(plan: RunPlan, envs: dict) -> str:
    """Per env: projected time here, the accelerator's bound, the largest program."""
    head = ["env", "projected here", "largest program"]
    if plan.accelerator is not None:
        head.insert(2, f"{plan.accelerator.name} bound")
    rows = [head]
    for env, t in envs.items():
        here = ("> " if t["lower_bound"] else "") + _seconds(t["projected_s"])
        if t["unprojected"]:
            here += f" (+{t['unprojected']} not run)"
        row = [env, here, f"{gb(t['peak_bytes'])} ({t['largest']})"]
        if plan.accelerator is not None:
            row.insert(2, _seconds(t["roofline_s"]))
        rows.append(row)
    return _table(rows)


def format_plan(plan: RunPlan, workers: int | None = None) -> str:
    head = ["stage", "program", "trials", "seeds", "compile", "env steps/s", "peak memory", "projected"]
    if plan.accelerator is not None:
        head.append(f"{plan.accelerator.name} bound")
    rows = [head]
    for cost, r in zip(plan.programs, plan.rounds):
        name = f"{cost.env} x {cost.algo}"
        row = [
            cost.stage,
            name,
            f"{cost.trials}" + (f" x{r}" if r > 1 else ""),
            str(cost.seeds),
            _seconds(cost.compile_s),
            "-" if cost.env_steps_per_s is None else f"{cost.env_steps_per_s:,.0f}",
            gb(cost.peak_bytes) + ("" if cost.fits_device is not False else " (too big)"),
            _projected(cost),
        ]
        if plan.accelerator is not None:
            row.append(_seconds(cost.roofline_s))
        rows.append(row)
    lines = [_table(rows, left=2), ""]
    envs = plan.env_totals()
    if len(envs) > 1:
        lines += [_env_table(plan, envs), ""]
    for stage, t in plan.stage_totals().items():
        bound = f", {plan.accelerator.name} bound {_seconds(t['roofline_s'])}" if plan.accelerator else ""
        at_least = "at least " if t["lower_bound"] else ""
        lines.append(
            f"{stage}: {t['programs']} program(s), {t['trials']} trial(s), projected {at_least}"
            f"{_seconds(t['projected_s'])}{bound}"
        )
    at_least = "at least " if plan.lower_bound else ""
    lines.append(
        f"total: projected {at_least}{_seconds(plan.projected_s)} on this machine, one group after another"
    )
    if workers:
        lines.append(
            f"with {workers} workers taking groups longest-first: {at_least}{_seconds(plan.makespan_s(workers))}"
        )
    for note in dict.fromkeys(c.note for c in plan.programs if c.status != "ok"):
        lines.append(note)
    lines += plan.notes
    return "\n".join(lines)
