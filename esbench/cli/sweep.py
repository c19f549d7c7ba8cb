"""`esbench sweep`: every trial of a sweep file under a budget (resumable)."""

from __future__ import annotations

from pathlib import Path

from esbench.cli.common import print_outcome, run_options


def add_parser(add) -> None:
    """The subcommand's parser, made by `add(name, runs_trials=..., help=...)`."""
    p = add("sweep", runs_trials=True, help="run (or resume) a sweep file")
    p.add_argument("file")
    p.add_argument(
        "--budget", default=None, help="a budget named in the sweep file (default: its default_budget)"
    )
    p.add_argument("--backend", default="local", choices=("local", "ray"))
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--out", required=True)
    p.add_argument("--envs", nargs="+", metavar="ID", help="run only these envs of the sweep")
    p.add_argument("--dry-run", action="store_true", help="list the trials it would run")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=handle)


def handle(args) -> int:
    from esbench.results import ResultStore
    from esbench.runner import expand_sweep, load_sweep_file, parse_sweep, resolve_trials, run_trials

    data = load_sweep_file(args.file)
    specs = expand_sweep(data, args.budget, args.envs)
    out = Path(args.out)
    store = ResultStore(out)
    trials = resolve_trials(specs)
    if args.dry_run:
        for trial in trials:
            state = "done" if store.is_finished(trial.trial_id) else "todo"
            spec = trial.spec
            print(
                f"{state}  {trial.trial_id}  env={spec.env} algo={spec.algo} seeds={len(spec.seeds)} "
                f"env_steps={spec.env_steps:,} hparams={spec.hparams}"
            )
        print(f"{len(trials)} trial(s)")
        return 0
    options = run_options(args, parse_sweep(data, args.budget).checkpoint_every)
    outcome = run_trials(trials, store, backend=args.backend, address=args.address, options=options)
    return print_outcome(outcome, out)
