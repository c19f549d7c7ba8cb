"""Benchmark output: the JSON file of each run, the Figure-2a style plot, and one-screen rich tables.

SCHEMA_VERSION is every JSON file's "schema_version"; bump it when a key changes.

    1  first version
    2  forward settings: `openes_mem_cap_gib` (what the user sets) replaces `openes_mem_cap_bytes`;
       training settings: no `sweep_file` (the hyperparameters come from `esbench.paper.row`);
       training records: `scaled_field`, `trial_id` and `simulated_env_steps_per_update` added; `compile_s`
       and `memory` are those of the runner's programs (`compile_programs`), each timed update one chunk
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

SCHEMA_VERSION = 2
REFERENCE_RANK = 4  # the rank whose speed-up over OpenES the summary table shows (EGGROLL's usual default)


def reference_rank(ranks: list[int]) -> Optional[int]:
    if not ranks:
        return None
    return REFERENCE_RANK if REFERENCE_RANK in ranks else ranks[0]


def _clean(value):
    """JSON-safe: non-finite floats become null, tuples become lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def write_json(path: Path, payload: dict) -> Path:
    """Write atomically (temp file + rename), so an interrupted run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_clean(payload), indent=1, allow_nan=False))
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------
# Plot


def plot_forward(records: list[dict]):
    """Normalised throughput (method / pure inference) against population size; one panel per width, log axes."""
    from matplotlib import colormaps

    from esbench.report.figures import new_figure

    forward = [r for r in records if r["phase"] == "forward"]
    widths = sorted({r["width"] for r in forward})
    labels = list(
        dict.fromkeys(r["method"] for r in forward)
    )  # measurement order: inference, eggroll_r*, openes
    colours = {"inference": "black", "openes": "tab:red"}
    egg = [m for m in labels if m.startswith("eggroll")]
    for i, label in enumerate(egg):
        colours[label] = colormaps["Blues"](0.45 + 0.5 * (i + 1) / max(len(egg), 1))

    fig = new_figure(figsize=(4.2 * len(widths), 3.6), layout="constrained")
    axes = fig.subplots(1, len(widths), squeeze=False, sharey=True)
    for ax, width in zip(axes[0], widths):
        for label in labels:
            points = sorted(
                (r["pop_size"], r["normalized_throughput"])
                for r in forward
                if r["width"] == width and r["method"] == label and r["normalized_throughput"]
            )
            if not points:
                continue
            xs, ys = zip(*points)
            name = (
                label.replace("eggroll_r", "EGGROLL r=")
                .replace("openes", "OpenES")
                .replace("inference", "pure inference")
            )
            ax.plot(
                xs,
                ys,
                marker="o",
                color=colours.get(label),
                label=name,
                linestyle="--" if label == "inference" else "-",
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        title = f"width {width}, depth {forward[0]['depth']}"
        not_run = {}
        for r in forward:
            if r["width"] == width and r["status"] != "ok":
                not_run.setdefault(r["method"], []).append(r["pop_size"])
        if not_run:  # skipped (memory cap) or failed: say so rather than leave a silent gap
            title += "\nnot run: " + "; ".join(
                f"{m} N={','.join(map(str, sorted(ns)))}" for m, ns in not_run.items()
            )
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("population size")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("throughput / pure inference")
    axes[0][-1].legend(fontsize="small")
    return fig


def forward_files(payload: dict, stem: Path) -> dict[str, Path]:
    """The forward benchmark's file beside its JSON: <stem>.png, the plot."""
    from esbench.report.figures import save_figure

    (path,) = save_figure(plot_forward(payload["records"]), stem, formats=("png",), dpi=120)
    return {"forward_plot": path}


# ---------------------------------------------------------------------------
# Tables


def _fmt(value: Optional[float], spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def forward_table(payload: dict):
    from rich.table import Table

    rows = payload["summary"]
    ranks = payload["settings"]["ranks"]
    ref = reference_rank(ranks)
    device = payload["device"]["description"]
    table = Table(title=f"Population forward pass, throughput / pure inference ({payload['mode']}, {device})")
    table.add_column("width", justify="right")
    table.add_column("N", justify="right")
    table.add_column("inference samples/s", justify="right")
    for rank in ranks:
        table.add_column(f"EGGROLL r={rank}", justify="right")
    table.add_column("OpenES", justify="right")
    if ref is not None:
        table.add_column(f"EGGROLL r={ref} / OpenES fwd", justify="right")
        table.add_column(f"EGGROLL r={ref} / OpenES update", justify="right")
    for row in rows:
        cells = [str(row["width"]), str(row["pop_size"]), _fmt(row["inference_samples_per_s"], ",.0f")]
        cells += [_fmt(row["normalized_throughput"].get(f"eggroll_r{rank}"), ".2f") for rank in ranks]
        cells.append(_fmt(row["normalized_throughput"].get("openes"), ".3f"))
        if ref is not None:
            cells.append(_fmt(row["speedup_vs_openes_forward"].get(f"eggroll_r{ref}"), ".1f", "x"))
            cells.append(_fmt(row["speedup_vs_openes_update"].get(f"eggroll_r{ref}"), ".1f", "x"))
        table.add_row(*cells)
    not_ok = [r for r in payload["records"] if r["status"] != "ok"]
    if not_ok:
        table.caption = f"{len(not_ok)} measurement(s) not run (see 'reason' in the JSON); '-' = not measured"
    return table


def _population(record: dict) -> str:
    """'pop_size=16', 'num_envs=2', 'unscaled' (the Config has no population field) or '-' (not built)."""
    if record["config"] is None:
        return "-"
    field = record["scaled_field"]
    return f"{field}={record['config'][field]}" if field else "unscaled"


def training_table(payload: dict):
    from rich.table import Table

    device = payload["device"]["description"]
    table = Table(
        title=f"Training loop: env steps/s of one update ({payload['mode']}, "
        f"scale {payload['settings']['scale']:g}, {device})"
    )
    columns = (
        "env",
        "algorithm",
        "population",
        "episode cap",
        "env steps / update",
        "valid / update",
        "compile s",
        "update s",
        "env steps/s",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("env", "algorithm", "population") else "right")
    for r in payload["records"]:
        if r["status"] != "ok":
            table.add_row(
                r["env"],
                r["algorithm"],
                _population(r),
                *["-"] * (len(columns) - 4),
                f"{r['status']}: {r['reason']}",
            )
            continue
        table.add_row(
            r["env"],
            r["algorithm"],
            _population(r),
            str(r["max_episode_steps"]),
            f"{r['env_steps_per_update']:,}",
            _fmt(r["valid_env_steps_per_update"], ",.0f"),
            _fmt(r["compile_s"], ".1f"),
            _fmt(r["median_s"], ".3f"),
            _fmt(r["env_steps_per_s"], ",.0f"),
        )
    return table


def early_exit_table(payload: dict):
    from rich.table import Table

    s = payload["settings"]
    table = Table(
        title=f"Early exit: one ES training run with and without it ({payload['mode']}, pop {s['pop_size']}, "
        f"{s['env_steps']:,} env steps, {payload['device']['description']})"
    )
    columns = (
        "env",
        "algorithm",
        "same returns",
        "simulated / inside, off",
        "env steps/s off",
        "env steps/s on",
        "speed-up",
        "to solve",
        "speed-up to solve",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("env", "algorithm") else "right")
    for r in payload["records"]:
        if r["status"] != "ok":
            table.add_row(
                r["env"], r["algorithm"], *["-"] * (len(columns) - 3), f"{r['status']}: {r['reason']}"
            )
            continue
        solve = (
            "-"
            if r["solved_return"] is None
            else (
                f">= {r['solved_return']:g} at {r['solved_at_env_steps']:,.0f}"
                if r["solved_at_env_steps"]
                else f">= {r['solved_return']:g} not reached"
            )
        )
        table.add_row(
            r["env"],
            r["algorithm"],
            str(r["same_returns"]),
            _fmt(r["simulated_share"]["full_episodes"], ".2f"),
            _fmt(r["env_steps_per_s"]["full_episodes"], ",.0f"),
            _fmt(r["env_steps_per_s"]["early_exit"], ",.0f"),
            _fmt(r["speedup"], ".2f", "x"),
            solve,
            _fmt(r["speedup_to_solve"], ".2f", "x"),
        )
    return table


def vectorized_sweep_table(payload: dict):
    from rich.console import Group
    from rich.table import Table

    s = payload["settings"]
    table = Table(
        title=f"Vectorised sweep: {len(s['sigmas'])} sigmas x {len(s['learning_rates'])} learning rates "
        f"({payload['mode']}, {payload['device']['description']})"
    )
    columns = (
        "env",
        "algorithm",
        "points",
        "programs together",
        "together s",
        "programs alone",
        "alone s",
        "same results",
        "speed-up",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("env", "algorithm") else "right")
    for r in payload["records"]:
        if r["status"] != "ok":
            table.add_row(
                r["env"],
                r["algorithm"],
                str(r["points"]),
                *["-"] * (len(columns) - 4),
                f"{r['status']}: {r['reason']}",
            )
            continue
        table.add_row(
            r["env"],
            r["algorithm"],
            str(r["points"]),
            str(r["vectorized_groups"]),
            _fmt(r["vectorized_s"], ".1f"),
            str(r["one_by_one_groups"]),
            _fmt(r["one_by_one_s"], ".1f"),
            str(r["same_results"]),
            _fmt(payload["vectorized_sweep_speedup"], ".2f", "x"),
        )
    parts = [r for r in payload["records"] if r["status"] == "ok" and r.get("vectorized_parts")]
    return Group(table, *(_sweep_parts_table(r) for r in parts))


def _sweep_parts_table(record: dict):
    """Where each way's seconds went, and how much of the lanes' loop iterations did useful updates."""
    from rich.table import Table

    together, alone = record["vectorized_parts"], record["one_by_one_parts"]
    table = Table(title=f"Where the time went: {record['env']} x {record['algorithm']}")
    for column in ("part", "together", "one by one", "one by one / together"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for part, label in (
        ("compile_s", "compile s"),
        ("train_s", "train s"),
        ("eval_s", "evaluate s"),
        ("host_s", "host s"),
    ):
        ratio = alone[part] / together[part] if together[part] > 0 else None
        table.add_row(label, _fmt(together[part], ".1f"), _fmt(alone[part], ".1f"), _fmt(ratio, ".2f", "x"))
    table.add_row("occupancy", _fmt(together["occupancy"], ".2f"), _fmt(alone["occupancy"], ".2f"), "")
    return table
