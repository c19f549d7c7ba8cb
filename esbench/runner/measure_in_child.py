"""One group's cost measured in a process of its own, its timing stopped after a time limit.

    cost = measure_in_child(trials, "final", steps=1, accelerator=chip, time_limit=120)

At the paper's shapes one ES generation on a CPU can take an hour (brax humanoid:
4096 members x 8 episodes x 3 seeds, 98k envs a step), and XLA cannot be
interrupted from Python. So the child compiles the group (cost.measure_group),
reports its compile time, memory and roofline bound, and is killed if timing
its updates (and one evaluation) takes longer than `time_limit` seconds. The
parent then keeps what was reported, with status "over time" and a projection
that is a lower bound. Stopped while timing its updates:

    update_s   > time_limit / (1 + steps)             # the warm-up and the timed updates ran past the limit
    updates   >= budget / max env steps per update    # every episode to its limit: the fewest updates
    projected >= compile_s + updates * update_s       # evaluations left out

Stopped while timing its evaluation: the timed program's projection with the
evaluations left out (lower than that estimate, which is itself one).
A message that arrives after the deadline counts as not arrived. A child that
dies (killed for memory, a crash in XLA) gives status "failed" and its exit
code; what it reported before is kept.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import queue
import time

from esbench.runner.cost import ProgramCost, error_line, measure_group, projection, unmeasured

POLL_S = 2.0  # how often the parent checks that a silent child is still alive


def _child(out, specs, loaded, stage, steps, accelerator, memory_limit, cache) -> None:
    import esbench.quiet  # noqa: F401  (the same silenced warnings as the CLI)
    from esbench import plugins
    from esbench.runner import compile_cache
    from esbench.runner.backends import resolve_trials

    try:
        compile_cache.apply(cache)  # the parent's (XLA_FLAGS, --deterministic's, come with the environment)
        plugins.replay(loaded)
        trials = resolve_trials(specs)
        cost = measure_group(
            trials,
            stage,
            steps,
            accelerator,
            memory_limit,
            report=lambda phase, c: out.put((phase, c.as_dict())),
        )
        out.put(("done", cost.as_dict()))
    except Exception as err:  # the parent records it as this program's failure
        out.put(("error", error_line(err)))


def _over_time(cost: ProgramCost, phase: str, trials, steps: int, time_limit: float) -> ProgramCost:
    """The lower-bound projection of a group whose timing ran past `time_limit` (see the module's docstring)."""
    schedule = trials[0].schedule
    cost.status = "over time"
    if phase == "compiled":
        cost.update_s = time_limit / (1 + steps)
        updates = min(schedule.budget / schedule.max_env_steps_per_update, schedule.max_updates)
        what = f"one update took over {time_limit / (1 + steps):.3g} s"
    else:  # the updates were timed; timing them and the evaluation ran past the limit
        updates = min(schedule.budget / cost.env_steps_per_update, schedule.max_updates)
        what = "its evaluation was not timed: evaluations left out"
    cost.projected_s = projection(dataclasses.replace(cost, eval_s=None), updates)
    cost.note = (
        f"timing: {cost.env} x {cost.algo} stopped after {time_limit:g} s ({what}); "
        f"its projection is a lower bound"
    )
    return cost


def measure_in_child(
    trials, stage: str, steps: int, accelerator, memory_limit: int | None, time_limit: float
) -> ProgramCost:
    """cost.measure_group in a child process whose timing may take `time_limit` seconds (module docstring)."""
    from esbench import plugins
    from esbench.runner import compile_cache

    context = multiprocessing.get_context("spawn")  # a forked JAX runtime is not safe
    out = context.Queue()
    specs = [t.spec for t in trials]
    child = context.Process(
        target=_child,
        daemon=True,
        args=(out, specs, plugins.loaded(), stage, steps, accelerator, memory_limit, compile_cache.current()),
    )
    child.start()
    phase, last, deadline = None, None, None
    try:
        while True:
            wait = POLL_S if deadline is None else max(0.0, min(POLL_S, deadline - time.monotonic()))
            try:
                kind, data = out.get(timeout=wait)
            except queue.Empty:
                if deadline is not None and time.monotonic() >= deadline:
                    return _over_time(ProgramCost(**last), phase, trials, steps, time_limit)
                if not child.is_alive():
                    try:  # what it sent just before it ended may still be in the pipe
                        kind, data = out.get(timeout=POLL_S)
                    except queue.Empty:
                        return _died(trials, stage, last, child.exitcode)
                else:
                    continue
            if kind == "error":
                cost = ProgramCost(**last) if last else unmeasured(trials, stage)
                return dataclasses.replace(cost, status="failed", note=data, projected_s=None)
            if deadline is not None and time.monotonic() >= deadline:  # too late, whatever it says
                return _over_time(ProgramCost(**last), phase, trials, steps, time_limit)
            if kind == "done":
                return ProgramCost(**data)
            phase, last = kind, data
            if deadline is None:  # the limit counts from the end of compiling
                deadline = time.monotonic() + time_limit
    finally:
        if child.is_alive():
            child.kill()
        child.join()


def _died(trials, stage: str, last: dict | None, exitcode) -> ProgramCost:
    cost = ProgramCost(**last) if last else unmeasured(trials, stage)
    how = (
        f"killed by signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exit code {exitcode}"
    )
    return dataclasses.replace(
        cost,
        status="failed",
        projected_s=None,
        note=f"{cost.env} x {cost.algo}: the measuring process died ({how}; out of memory?)",
    )
