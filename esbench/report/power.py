"""`esbench power`: the final seeds each env needs for a conclusive verdict, planned from a pilot's variances.

A pilot is the same sweep and budget run with `esbench reproduce --pilot` (seeds no final run uses). Per env,
its final-stage seeds give the spread of each ES's final return (tuned: the two winners' seeds, pooled) and
its matched stage the spread of the paired differences; `verdicts.seeds_needed` turns each into the seeds
that reach equivalence, or non-inferiority, with 80% power at the declared margin were the true difference
0. The time is the pilot's final-stage seconds per seed (a final and a matched trial share one program)
times the seeds: on a CPU seeds cost about linearly, so it is an upper bound where they vectorise.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from esbench.report import aggregate as agg
from esbench.report import verdicts
from esbench.results import load, load_protocol, load_summaries
from esbench.runner.protocol import Protocol
from esbench.validation import ConfigError

A, B = "eggroll", "openes"


def check_pilot(record: dict | None, folder: Path, protocol: Protocol) -> dict:
    """The pilot's protocol record, or a ConfigError saying why `folder` is not this protocol's pilot."""
    if record is None:
        raise ConfigError(
            f"{folder}: no protocol.json, so not a pilot; run `esbench reproduce SWEEP --budget B --pilot --out "
            f"{folder}` first"
        )
    sweep, budget = protocol.sweep.data.get("name"), protocol.sweep.budget
    if (record.get("sweep"), record.get("budget")) != (sweep, budget):
        raise ConfigError(
            f"{folder} is a run of sweep {record.get('sweep')!r}, budget {record.get('budget')!r}; this plan is "
            f"for sweep {sweep!r}, budget {budget!r}: pilot that one"
        )
    if not record.get("pilot"):
        raise ConfigError(
            f"{folder} ran on final seeds, not a pilot's: planning from it would choose seeds after seeing final "
            "results; run the pilot with `esbench reproduce ... --pilot`"
        )
    return record


def _seed_seconds(summaries: pd.DataFrame, trial_id: str) -> float:
    """Training seconds per final seed of a final trial's program: its run_s over its seeds (a matched trial
    runs in the same program on the same seeds, so one more final seed costs both)."""
    row = summaries[summaries["trial_id"] == trial_id]
    return float(row["run_s"].iloc[0]) / len(row["seeds"].iloc[0]) if len(row) else math.nan


def plan_power(protocol: Protocol, folder) -> dict:
    """Per env: each comparison's pilot spread, the seeds for equivalence and non-inferiority, and the cost."""
    s, folder = protocol.settings, Path(folder)
    if s.margin is None:
        raise ConfigError(
            f"{protocol.path}.margin: not declared, so there is no verdict to plan seeds for; declare "
            "`margin` (and `references`) in the sweep file first"
        )
    record = check_pilot(load_protocol(folder), folder, protocol)
    finals = agg.final_returns(load(folder))
    summaries = load_summaries(folder)
    final_ids = {(e["env"], e["algo"]): e["trial_id"] for e in record.get("final", [])}
    matched = record.get("matched_trials") or []
    per_trial = {  # trial id -> its seeds' final returns
        t: trial.set_index("seed")["final_return"].dropna() for t, trial in finals.groupby("trial_id")
    }
    rows = []
    for env in dict.fromkeys(e for e, _ in protocol.pairs):
        ref = s.references.get(env)
        if ref is None or (env, A) not in final_ids or (env, B) not in final_ids:
            continue
        delta = s.margin * (ref["reference"] - ref["random"])
        a, b = per_trial[final_ids[env, A]], per_trial[final_ids[env, B]]
        pooled = math.sqrt(
            ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
        )
        comparisons = [("tuned", pooled, False, a.size)]
        for m in (m for m in matched if m["env"] == env):
            ours, partner = per_trial[m["trial_id"]], per_trial.get(m["partner_trial_id"])
            if partner is None:
                continue
            d = (ours - partner if m["algo"] == A else partner - ours).dropna()  # EGGROLL - OpenES, per seed
            comparisons.append(
                (f"matched at {m['point_of']}'s configuration", float(d.std(ddof=1)), True, d.size)
            )
        seconds = sum(
            _seed_seconds(summaries, final_ids[env, algo])
            for algo in protocol.sweep.algos
            if (env, algo) in final_ids
        )
        declared = len(s.final_seeds_for(env))
        for name, sd, paired, n_pilot in comparisons:
            spread = math.isfinite(sd)  # fewer than 2 pilot seeds on a side: no spread to plan from
            rows.append(
                {
                    "env": env,
                    "comparison": name,
                    "pilot_seeds": int(n_pilot),
                    "sd": sd,
                    "delta": delta,
                    "seeds_equivalent": verdicts.seeds_needed(sd, delta, paired, "equivalent")
                    if spread
                    else None,
                    "seeds_noninferior": verdicts.seeds_needed(sd, delta, paired, "non-inferior")
                    if spread
                    else None,
                    "spread_known": spread,
                    "declared_seeds": declared,
                    "seconds_per_seed": seconds,
                }
            )
    return {"margin": s.margin, "pilot": str(folder), "rows": rows}


def needed_per_env(plan: dict) -> dict[str, int]:
    """Per env, the most seeds any of its comparisons needs for equivalence (None: more than the planner's cap)."""
    out: dict[str, int] = {}
    for r in (r for r in plan["rows"] if r["spread_known"]):
        n = r["seeds_equivalent"] or 10**6
        out[r["env"]] = max(out.get(r["env"], 0), n)
    return out


def power_text(plan: dict) -> str:
    """The plan as the command prints it."""
    lines = [
        f"Seeds for a conclusive EGGROLL vs OpenES verdict at the declared margin ±{plan['margin']:.0%} of the "
        f"reference gain, 80% power, were the true difference 0; spreads from the pilot {plan['pilot']}.",
        "",
        f"{'env':22} {'comparison':36} {'pilot sd':>10} {'margin':>9} {'equivalent':>10} {'non-inf.':>8} "
        f"{'declared':>8} {'s/seed':>7}",
    ]
    for r in plan["rows"]:
        unknown = "no spread" if not r["spread_known"] else ">1000"
        eq, ni = (str(r[k]) if r[k] else unknown for k in ("seeds_equivalent", "seeds_noninferior"))
        lines.append(
            f"{r['env']:22} {r['comparison']:36} {r['sd']:10.4g} {r['delta']:9.4g} {eq:>10} {ni:>8} "
            f"{r['declared_seeds']:>8} {r['seconds_per_seed']:7.1f}"
        )
    lines.append("")
    seconds = {r["env"]: r["seconds_per_seed"] for r in plan["rows"]}
    declared = {r["env"]: r["declared_seeds"] for r in plan["rows"]}
    for env, n in needed_per_env(plan).items():
        if n >= 10**6:
            lines.append(f"{env}: no seed count up to 1000 reaches 80% power at this margin.")
            continue
        extra = (n - declared[env]) * seconds[env]
        lines.append(
            f"{env}: {n} final seeds for equivalence in every comparison ({declared[env]} declared): about "
            f"{'+' if extra >= 0 else ''}{extra / 60:.1f} min of final-stage training on the pilot's machine."
        )
    blind = sorted({f"{r['env']} ({r['comparison']})" for r in plan["rows"] if not r["spread_known"]})
    if blind:
        lines.append("The pilot has fewer than 2 seeds to estimate a spread from: " + ", ".join(blind) + ".")
    lines += [
        "",
        "Fix the seeds in the sweep file (protocol.final_seeds, protocol.final_seeds_per_env) before the final "
        "run; the spreads come from few pilot seeds, so round up.",
    ]
    return "\n".join(lines) + "\n"
