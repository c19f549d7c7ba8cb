"""`esbench reproduce`: the paper's protocol as one resumable run (runner/protocol.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from esbench.cli.common import print_outcome, run_options


def add_parser(add) -> None:
    """The subcommand's parser, made by `add(name, runs_trials=..., help=...)`."""
    from esbench.runner.protocol_settings import SAMPLERS

    p = add(
        "reproduce",
        runs_trials=True,
        help="the paper's protocol (search, select, final seeds) as one resumable run",
    )
    p.add_argument("file")
    p.add_argument(
        "--budget", default=None, help="a budget named in the sweep file (default: its default_budget)"
    )
    p.add_argument("--out", required=True)
    p.add_argument(
        "--skip-search",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="no search: the final stage runs the paper's rows (default: the budget's protocol.skip_search)",
    )
    p.add_argument(
        "--sampler",
        default=None,
        choices=SAMPLERS,
        help="random search (the paper's) or TPE (Optuna) (default: the budget's protocol.sampler)",
    )
    p.add_argument(
        "--pilot",
        action="store_true",
        help="run every stage on pilot seeds (9000000+), never a final run's: `esbench power` plans the final "
        "seeds from what it measures",
    )
    p.add_argument("--backend", default="local", choices=("local", "ray"))
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--envs", nargs="+", metavar="ID", help="run only these envs of the budget")
    p.add_argument(
        "--dry-run", action="store_true", help="print what each stage would run; run and write nothing"
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=handle)


def handle(args) -> int:
    from esbench.results import ResultStore
    from esbench.runner import load_sweep_file
    from esbench.runner.protocol import prepare_protocol, run_protocol
    from esbench.runner.protocol_description import describe_protocol

    out = Path(args.out)
    protocol = prepare_protocol(
        load_sweep_file(args.file),
        args.budget,
        envs=args.envs,
        skip_search=args.skip_search,
        sampler=args.sampler,
        pilot=args.pilot,
        out=out,
    )
    store = ResultStore(out)
    if args.dry_run:
        print(describe_protocol(protocol, store))
        return 0
    options = run_options(args, protocol.sweep.checkpoint_every)
    outcome = run_protocol(protocol, store, backend=args.backend, address=args.address, options=options)
    code = print_outcome(outcome, out)
    return code if outcome.complete else max(code, 1)
