"""How close the run's ETA (esbench/runner/eta.py) comes on a finished `esbench reproduce`: RunEta replayed on
the run's own group times, at each group's start, against each stage's true remaining time.

    esbench reproduce ... 2>&1 | python -u benchmarks/eta_accuracy.py --stamp > run.log   # seconds on each line
    python benchmarks/eta_accuracy.py run.log RESULTS_DIR [PLAN.json]   # the ETAs it printed, then a replay

Group starts come from the log's "[i/n] ENV x ALGO" lines, compiles from the trials' summaries, the
planned times (when PLAN.json is given) from `esbench plan --json`; the groups of a stage are the plan's
programs of that stage in order (a plan of the same budget: `esbench plan SWEEP --budget B --json`).
"""

from __future__ import annotations

import json
import re
import sys
import time
from types import SimpleNamespace

from esbench.results import load_summaries
from esbench.runner.eta import EtaHistory, RunEta, planned_times

STAGE = re.compile(r"\s*([\d.]+) (search|reselect|final)[:;]")
GROUP = re.compile(r"\s*([\d.]+) \[(\d+)/(\d+)\] (\S+) x (\S+)")
END = re.compile(r"\s*([\d.]+) ran \d+ trial")


def stamp() -> None:
    """Copy stdin to stdout, each line prefixed by the seconds since the start."""
    start = time.time()
    for line in sys.stdin:
        sys.stdout.write(f"{time.time() - start:8.1f} {line}")
        sys.stdout.flush()


def stages_of(log: str) -> list[dict]:
    stages, end = [], None
    for line in open(log).read().splitlines():
        if m := STAGE.match(line):
            stages.append({"name": m.group(2), "t0": float(m.group(1)), "starts": []})
        elif (m := GROUP.match(line)) and stages:
            stages[-1]["starts"].append((float(m.group(1)), m.group(4), m.group(5)))
        elif m := END.match(line):
            end = float(m.group(1))
    for stage, nxt in zip(stages, [s["t0"] for s in stages[1:]] + [end]):
        stage["end"] = nxt
    return stages


PRINTED = re.compile(r"\s*([\d.]+) \[(\d+)/\d+\].*ETA (\d+)m(\d+)s\)")
PROJECTED = re.compile(r"\s*([\d.]+) run: projected (\d+)m(\d+)s")


def printed(log: str) -> float:
    """The ETAs the run printed (at each group's start, and each stage's projection after its first chunk)
    against each stage's true remaining time; the worst ratio either way."""
    lines, worst = open(log).read().splitlines(), 1.0
    for stage in stages_of(log):
        print(f"{stage['name']}: took {stage['end'] - stage['t0']:.0f} s")
        for line in lines:
            m = re.match(r"\s*([\d.]+) ", line)
            if m is None or not stage["t0"] <= float(m.group(1)) < stage["end"]:
                continue
            t = float(m.group(1))
            if not stage["t0"] <= t < stage["end"]:
                continue
            if m := PROJECTED.match(line):
                eta, what = (
                    int(m.group(2)) * 60 + int(m.group(3)) - (t - stage["t0"]),
                    "after its first chunk",
                )
            elif m := PRINTED.match(line):
                eta, what = int(m.group(3)) * 60 + int(m.group(4)), f"group {m.group(2)} starts"
            else:
                continue
            ratio = eta / (stage["end"] - t)
            worst = max(worst, ratio, 1 / ratio)
            print(f"  {what}: ETA {eta:.0f} s, truth {stage['end'] - t:.0f} s: {ratio:.2f}x")
    print(f"worst: {worst:.2f}x")
    return worst


def fake_groups(programs: list[dict]) -> list[list]:
    groups = []
    for p in programs:
        spec = SimpleNamespace(env=p["env"], algo=p["algo"], seeds=tuple(range(p["seeds"])))
        groups.append(
            [SimpleNamespace(schedule=SimpleNamespace(budget=p["budget"]), spec=spec)] * p["trials"]
        )
    return groups


def replay(log: str, results: str, plan_path: str, use_plan: bool) -> float:
    """Print each group start's ETA against the truth; return the worst ratio either way."""
    plan, summaries = json.load(open(plan_path)), load_summaries(results)
    history = planned_times(plan_path) if use_plan else EtaHistory()  # one per command, as the runner has
    worst = 1.0
    for stage in stages_of(log):
        programs = [p for p in plan["programs"] if p["stage"] == stage["name"]]
        eta, now = RunEta(fake_groups(programs), history), [stage["t0"]]
        eta._clock, eta.start = (lambda: now[0]), stage["t0"]
        names = ("final", "matched") if stage["name"] == "final" else (stage["name"],)
        times = [t for t, _, _ in stage["starts"]] + [stage["end"]]
        print(f"{stage['name']}: took {stage['end'] - stage['t0']:.0f} s")
        for i, (t, env, algo) in enumerate(stage["starts"]):
            now[0] = t
            left = eta.remaining_s()
            if left is not None:
                ratio = left / (stage["end"] - t)
                worst = max(worst, ratio, 1 / ratio)
                print(
                    f"  group {i + 1} starts: ETA {left:.0f} s, truth {stage['end'] - t:.0f} s: {ratio:.2f}x"
                )
            eta.started(i)
            rows = summaries[(summaries.env == env) & (summaries.algo == algo) & summaries.stage.isin(names)]
            eta.compiled(float(rows.compile_s.max()))
            now[0] = times[i + 1]
            eta.finished(i)
    print(f"worst: {worst:.2f}x")
    return worst


if __name__ == "__main__":
    if sys.argv[1:] == ["--stamp"]:
        stamp()
    else:
        log, results, *plan = sys.argv[1:]
        plan_path = plan[0] if plan else "docs/plan/cpu-budget-plan.json"
        print("as printed by the run:")
        printed(log)
        print("replayed with the plan:")
        replay(log, results, plan_path, use_plan=True)
        print("replayed without a plan:")
        replay(log, results, plan_path, use_plan=False)
