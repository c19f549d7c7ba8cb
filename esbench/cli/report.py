"""`esbench report`: figures and tables from a results folder."""

from __future__ import annotations

import sys
from pathlib import Path

from esbench.cli.common import EXIT_BAD_INPUT


def add_parser(add) -> None:
    """The subcommand's parser, made by `add(name, runs_trials=..., help=...)`."""
    p = add("report", help="figures and tables from a results folder")
    p.add_argument("results")
    p.add_argument("--out", default=None, help="default: plots/<results folder name>")
    p.add_argument(
        "--band",
        choices=("sem", "bootstrap"),
        default="sem",
        help="curve shading: mean +- SEM over seeds (the paper's) or a 95%% bootstrap CI",
    )
    p.add_argument("--alpha", type=float, default=0.05, help="level of the EGGROLL vs OpenES Welch's t-test")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for CIs")
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="the verdicts' margin, a fraction in (0, 1) of each env's reference gain (default: the one the "
        "sweep declared before the run; another is labelled post hoc)",
    )
    p.set_defaults(func=handle)


def handle(args) -> int:
    from esbench.report import build_report
    from esbench.results import damaged_trials, load, load_failures, load_protocol, load_summaries

    df = load(args.results)
    if df.empty:
        print(f"error: no finished trials in {args.results}", file=sys.stderr)
        return EXIT_BAD_INPUT
    out = Path(args.out) if args.out else Path("plots") / Path(args.results).resolve().name
    paths = build_report(
        df,
        out,
        summaries=load_summaries(args.results),
        protocol=load_protocol(args.results),
        band=args.band,
        alpha=args.alpha,
        n_bootstrap=args.bootstrap,
        left_out={"unreadable": damaged_trials(args.results), "failed": load_failures(args.results)},
        margin=args.margin,
    )
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
