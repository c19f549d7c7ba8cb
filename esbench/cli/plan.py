"""`esbench plan`: every program a run would compile, measured before the run pays for it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def add_parser(add) -> None:
    """The subcommand's parser, made by `add(name, runs_trials=..., help=...)`."""
    p = add(
        "plan",
        compiles=True,
        help="measure every program a run would compile (time, memory, roofline) before paying for it",
    )
    p.add_argument("file", nargs="?", default=None, help="the sweep file to plan")
    p.add_argument(
        "--from-json",
        nargs="+",
        default=None,
        metavar="PLAN",
        help="measure nothing: read plans saved with --json (parts of one run planned apart) as one, "
        "and print, save or draw them",
    )
    p.add_argument(
        "--budget", default=None, help="a budget named in the sweep file (default: its default_budget)"
    )
    p.add_argument("--envs", nargs="+", metavar="ID", help="plan only these envs of the budget")
    p.add_argument("--algos", nargs="+", metavar="NAME", help="plan only these algorithms' programs")
    p.add_argument(
        "--sweep", action="store_true", help="plan `esbench sweep` (default: `esbench reproduce`'s protocol)"
    )
    p.add_argument(
        "--skip-search",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="as reproduce's (default: the budget's protocol.skip_search)",
    )
    p.add_argument(
        "--steps", type=int, default=2, help="updates timed per program after one warm-up (default 2)"
    )
    p.add_argument("--workers", type=int, default=None, metavar="G", help="also the makespan on G workers")
    from esbench.runner.roofline import ACCELERATORS, HOST

    p.add_argument(
        "--accelerator",
        default=None,
        metavar="NAME",
        help=f"a roofline lower bound per program for: {', '.join([*ACCELERATORS, HOST])}",
    )
    p.add_argument(
        "--memory-gb",
        type=float,
        default=None,
        help="the run's device memory in GB, to flag programs that cannot fit in its usable share "
        "(memory.accelerator_limit; default: the accelerator's, else this device's)",
    )
    p.add_argument(
        "--memory-limit",
        default=None,
        metavar="SIZE",
        help="what a program measured here may use (default: what this device has); bigger ones are "
        "compiled, not timed",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="measure each program in a process of its own and stop timing it after SECONDS; its "
        "projection is then a lower bound (for the paper's shapes on a CPU)",
    )
    p.add_argument("--no-vectorize", action="store_true", help="plan every trial as its own program")
    p.add_argument("--json", default=None, metavar="FILE", help="write the plan as JSON")
    p.add_argument(
        "--figure",
        default=None,
        metavar="PNG",
        help="also draw Figure 15 (EGGROLL vs OpenES speed per env, beside the paper's factors)",
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=handle)


def handle(args) -> int:
    import json

    from esbench.runner.plan import RunPlan, format_plan
    from esbench.validation import ConfigError

    for option, value in (("--steps", args.steps), ("--workers", args.workers)):
        if value is not None and value < 1:
            raise ConfigError(f"{option} {value}: expected an integer >= 1")
    if args.memory_gb is not None and not args.memory_gb > 0:
        raise ConfigError(f"--memory-gb {args.memory_gb}: expected a number of GB > 0, e.g. 80")
    if args.time_limit is not None and not args.time_limit > 0:
        raise ConfigError(f"--time-limit {args.time_limit}: expected a number of seconds > 0, e.g. 120")
    if (args.file is None) == (args.from_json is None):
        raise ConfigError(
            "esbench plan: give a sweep file to plan, or --from-json with saved plans to read (not both)"
        )

    def write_json(plan) -> None:
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(plan.as_json(args.workers), indent=2))

    if args.from_json:
        measuring = [
            option
            for option, value in (
                ("--budget", args.budget),
                ("--envs", args.envs),
                ("--algos", args.algos),
                ("--sweep", args.sweep),
                ("--skip-search", args.skip_search),
                ("--accelerator", args.accelerator),
                ("--memory-gb", args.memory_gb),
                ("--memory-limit", args.memory_limit),
                ("--time-limit", args.time_limit),
                ("--no-vectorize", args.no_vectorize),
            )
            if value not in (None, False)
        ]
        if measuring:
            raise ConfigError(
                f"--from-json measures nothing: {', '.join(measuring)} belong to the plans it reads"
            )
        plan = RunPlan.from_json([_saved_plan(path) for path in args.from_json])
    else:
        plan = _measured_plan(args, write_json)
    print(format_plan(plan, args.workers))
    write_json(plan)
    if args.json:
        print(f"plan: {args.json}")
    if args.figure:
        from esbench.report.plan_figure import figure15_plot, figure15_table

        table = figure15_table(plan.as_json())
        if table.empty:
            print(
                "figure: no env has both an EGGROLL and an OpenES program measured; nothing drawn",
                file=sys.stderr,
            )
        else:
            print(table.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
            chip = plan.accelerator.name if plan.accelerator else None
            print(f"figure: {figure15_plot(table, Path(args.figure), plan.device or 'this machine', chip)}")
    return 0


def _saved_plan(path: str) -> dict:
    import json

    from esbench.validation import ConfigError

    try:
        plan = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--from-json {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"--from-json {path}: cannot be read ({err})") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"--from-json {path}: not JSON ({err})") from None
    if not isinstance(plan, dict) or not isinstance(plan.get("programs"), list):
        raise ConfigError(
            f"--from-json {path}: not a plan written by `esbench plan --json` (no programs list)"
        )
    return plan


def _measured_plan(args, write_json):
    from esbench.runner import expand_sweep, load_sweep_file, resolve_trials
    from esbench.runner.memory import accelerator_limit, parse_size
    from esbench.runner.plan import plan_run, protocol_groups, sweep_groups
    from esbench.runner.protocol import prepare_protocol
    from esbench.runner.roofline import accelerator
    from esbench.validation import ConfigError

    if args.time_limit is not None:  # the programs run in child processes: leave them the GPU's memory
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    chip = accelerator(args.accelerator) if args.accelerator else None
    limit = parse_size(args.memory_limit) if args.memory_limit is not None else None
    data = load_sweep_file(args.file)
    if args.sweep:
        specs = expand_sweep(data, args.budget, args.envs)
        staged = sweep_groups(resolve_trials(specs), not args.no_vectorize)
    else:
        protocol = prepare_protocol(data, args.budget, envs=args.envs, skip_search=args.skip_search)
        staged = protocol_groups(protocol, not args.no_vectorize)
    if args.algos:
        known = list(dict.fromkeys(sg.trials[0].spec.algo for sg in staged))
        unknown = [a for a in args.algos if a not in known]
        if unknown:
            raise ConfigError(
                f"--algos: {', '.join(unknown)} not planned by this budget; its algorithms: {', '.join(known)}"
            )
        staged = [sg for sg in staged if sg.trials[0].spec.algo in args.algos]
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if not args.quiet else None
    return plan_run(
        staged,
        args.steps,
        chip,
        limit,
        accelerator_limit(args.memory_gb) if args.memory_gb else None,
        say,
        after_each=write_json,
        time_limit=args.time_limit,
    )  # a long plan keeps what it measured
