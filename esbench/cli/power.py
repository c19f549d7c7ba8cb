"""`esbench power`: the final seeds each env needs for a conclusive verdict, from a pilot (report/power.py)."""

from __future__ import annotations


def add_parser(add) -> None:
    """The subcommand's parser, made by `add(name, runs_trials=..., help=...)`."""
    p = add("power", help="plan the final seeds a conclusive verdict needs, from a pilot's variances")
    p.add_argument("file", help="the sweep file, with its margin and references declared")
    p.add_argument(
        "--budget", default=None, help="a budget named in the sweep file (default: its default_budget)"
    )
    p.add_argument(
        "--pilot",
        required=True,
        metavar="FOLDER",
        help="the results of `esbench reproduce FILE --budget B --pilot --out FOLDER`",
    )
    p.set_defaults(func=handle)


def handle(args) -> int:
    from esbench.report.power import plan_power, power_text
    from esbench.runner import load_sweep_file
    from esbench.runner.protocol import prepare_protocol

    protocol = prepare_protocol(load_sweep_file(args.file), args.budget)
    print(power_text(plan_power(protocol, args.pilot)), end="")
    return 0
