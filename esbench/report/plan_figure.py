"""Figure 15 from a plan: EGGROLL vs OpenES training speed per env, measured at the planned shapes, beside the paper's.

The paper's factor is the training-time ratio of its runs (`wall_clock_ratio`); ours is the ratio of
env steps per second of the two programs of the same stage (the final stage: the paper's rows),
which is the training-time ratio for equal budgets, compile and evaluation left out. With an
accelerator, the plan also gives each program's roofline bound on its budget were every episode to
run to its limit (`roofline_at_limit_s`: the budget's least work, alike for both algorithms): their
ratio is the speed-up the accelerator's own limits allow (`speedup_roofline`), known for programs
that were too big or too slow to time here as well.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from esbench import paper


def _signed(factor: float, eggroll: str) -> float:
    """The paper's factor as EGGROLL's speed-up (> 1: faster)."""
    return factor if eggroll == "faster" else 1.0 / factor


def _bound_at_limit(program: dict) -> float | None:
    """The program's bound were every episode to run to its limit (an untimed program's only bound)."""
    if program.get("roofline_at_limit_s"):
        return program["roofline_at_limit_s"]
    return program.get("roofline_s") if program["status"] != "ok" else None


def figure15_table(plan: dict) -> pd.DataFrame:
    """Per env: both algorithms' env steps/s, our speed-up and the paper's (from `esbench plan --json`)."""
    stages = {p["stage"] for p in plan["programs"]}
    stage = "final" if "final" in stages else "sweep" if "sweep" in stages else None
    staged = [p for p in plan["programs"] if p["stage"] == stage]
    speed = {
        (p["env"], p["algo"]): p["env_steps_per_s"]
        for p in staged
        if p["status"] == "ok" and p["env_steps_per_s"]
    }
    bound = {(p["env"], p["algo"]): _bound_at_limit(p) for p in staged if _bound_at_limit(p)}
    rows = []
    for env in dict.fromkeys(p["env"] for p in staged):
        egg, oes = speed.get((env, "eggroll")), speed.get((env, "openes"))
        egg_bound, oes_bound = bound.get((env, "eggroll")), bound.get((env, "openes"))
        if (egg is None or oes is None) and (egg_bound is None or oes_bound is None):
            continue
        try:
            ratio = paper.wall_clock_ratio(env)
            paper_speedup, label = _signed(float(ratio["factor"]), ratio["eggroll"]), ratio["label"]
        except KeyError:
            paper_speedup, label = float("nan"), "-"
        here = egg / oes if egg is not None and oes is not None else float("nan")
        roofline = oes_bound / egg_bound if egg_bound and oes_bound else float("nan")
        rows.append(
            {
                "env": env,
                "eggroll_env_steps_per_s": egg,
                "openes_env_steps_per_s": oes,
                "speedup_here": here,
                "speedup_roofline": roofline,
                "speedup_paper": paper_speedup,
                "paper": label,
            }
        )
    return pd.DataFrame(rows)


def figure15_plot(
    table: pd.DataFrame, path: Path, device: str = "this machine", accelerator: str | None = None
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bars = [("speedup_here", f"measured here ({device})")] if table["speedup_here"].notna().any() else []
    if accelerator and table["speedup_roofline"].notna().any():
        bars.append(("speedup_roofline", f"{accelerator} roofline bounds"))
    bars.append(("speedup_paper", "paper (Figure 15, GPU)"))
    height = 0.8 / len(bars)
    fig, ax = plt.subplots(figsize=(8, 0.22 * len(bars) * max(len(table), 2) + 1.4))
    y = range(len(table))
    for k, (column, label) in enumerate(bars):
        offset = (k - (len(bars) - 1) / 2) * height
        ax.barh([i + offset for i in y], table[column], height=height, label=label)
    ax.set_yticks(list(y), table["env"])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("EGGROLL speed-up over OpenES (> 1: EGGROLL faster)")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
