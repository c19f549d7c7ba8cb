"""Figure 15 from a plan: EGGROLL vs OpenES training speed per env, measured at the planned shapes, beside the paper's.

The paper's factor is the training-time ratio of its runs (`wall_clock_ratio`); ours is the ratio of
env steps per second of the two programs of the same stage (the final stage: the paper's rows),
which is the training-time ratio for equal budgets, compile and evaluation left out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from esbench import paper


def _signed(factor: float, eggroll: str) -> float:
    """The paper's factor as EGGROLL's speed-up (> 1: faster)."""
    return factor if eggroll == "faster" else 1.0 / factor


def figure15_table(plan: dict) -> pd.DataFrame:
    """Per env: both algorithms' env steps/s, our speed-up and the paper's (from `esbench plan --json`)."""
    programs = [p for p in plan["programs"] if p["status"] == "ok" and p["env_steps_per_s"]]
    stages = {p["stage"] for p in programs}
    stage = "final" if "final" in stages else "sweep" if "sweep" in stages else None
    speed = {(p["env"], p["algo"]): p["env_steps_per_s"] for p in programs if p["stage"] == stage}
    rows = []
    for env in dict.fromkeys(e for e, _ in speed):
        egg, oes = speed.get((env, "eggroll")), speed.get((env, "openes"))
        if egg is None or oes is None:
            continue
        try:
            ratio = paper.wall_clock_ratio(env)
            paper_speedup, label = _signed(float(ratio["factor"]), ratio["eggroll"]), ratio["label"]
        except KeyError:
            paper_speedup, label = float("nan"), "-"
        rows.append({"env": env, "eggroll_env_steps_per_s": egg, "openes_env_steps_per_s": oes,
                     "speedup_here": egg / oes, "speedup_paper": paper_speedup, "paper": label})
    return pd.DataFrame(rows)


def figure15_plot(table: pd.DataFrame, path: Path, device: str = "this machine") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.45 * max(len(table), 2) + 1.2))
    y = range(len(table))
    ax.barh([i - 0.2 for i in y], table["speedup_here"], height=0.4, label=f"plan, {device}")
    ax.barh([i + 0.2 for i in y], table["speedup_paper"], height=0.4, label="paper (Figure 15, GPU)")
    ax.set_yticks(list(y), table["env"])
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("EGGROLL speed-up over OpenES (env steps/s ratio; > 1: EGGROLL faster)")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
