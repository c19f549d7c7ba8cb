"""`esbench reproduce --dry-run`: what each stage will run and what the store already has; nothing runs or is written.

Each stage of stages.STAGES gives its heading, a table of (env, algorithm) rows and the lines after it;
this module lays them out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from esbench.runner.stages import ProtocolState, Row, stages_of

if TYPE_CHECKING:
    from esbench.runner.protocol import Protocol

HEAD = ("env", "algorithm", "trials", "done", "seeds", "env steps/run", "env steps", "")


def table(rows: Sequence[Row]) -> list[str]:
    """The rows under HEAD (text left-aligned, numbers right-aligned) and a total of the env steps."""
    cells: list[Sequence[Any]] = [HEAD]
    cells += [
        (
            r.env,
            r.algo,
            r.trials,
            r.done,
            r.seeds,
            r.env_steps_per_run,
            r.trials * r.seeds * r.env_steps_per_run,
            r.note,
        )
        for r in rows
    ]
    cells.append(
        (
            "total",
            "",
            sum(r[2] for r in cells[1:]),
            sum(r[3] for r in cells[1:]),
            "",
            "",
            sum(r[6] for r in cells[1:]),
            "",
        )
    )
    text = [[f"{c:,}" if isinstance(c, int) else str(c) for c in row] for row in cells]
    widths = [max(len(row[i]) for row in text) for i in range(len(HEAD))]
    return [
        "  "
        + "  ".join(
            c.ljust(w) if i in (0, 1, 7) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip()
        for row in text
    ]


def describe_protocol(protocol: Protocol, store, stages=None) -> str:
    """Every stage's heading, table and notes, from what `store` holds (stages: STAGES unless given)."""
    state = ProtocolState(protocol, store)
    lines = [
        f"esbench reproduce: sweep {protocol.sweep.data.get('name')}, budget {protocol.sweep.budget}, "
        f"{len(protocol.pairs)} (env, algorithm) pairs; a dry run: nothing is run or written.",
    ]
    for stage in stages_of(protocol, stages):
        lines += ["", *stage.heading(state), *table(stage.rows(state)), *stage.footer(state)]
    return "\n".join(lines)
