"""`esbench compare`: two results folders side by side."""

from __future__ import annotations

import sys

from esbench.cli.common import EXIT_BAD_INPUT


def add_parser(add) -> None:
    """The subcommand's parser, made by `add(name, runs_trials=..., help=...)`."""
    p = add("compare", help="two results folders side by side: final means, Welch intervals, verdicts")
    p.add_argument("a", help="a results folder (e.g. the reference, results/cpu)")
    p.add_argument("b", help="another results folder (e.g. a rerun)")
    p.add_argument("--confidence", type=float, default=0.95, help="level of the Welch interval of B - A")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--fail-on-differ", action="store_true", help="exit 1 when any matched pair differs")
    p.set_defaults(func=handle)


def handle(args) -> int:
    import json

    from esbench.report.compare import NoTrialsError, compare_folders, comparison_text

    try:
        comparison = compare_folders(args.a, args.b, confidence=args.confidence)
    except NoTrialsError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(
        json.dumps(comparison.to_dict(), indent=2) if args.json else comparison_text(comparison),
        end="" if not args.json else "\n",
    )
    return 1 if args.fail_on_differ and comparison.any_differ() else 0
