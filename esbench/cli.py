"""`esbench <command>`: a thin layer that parses arguments and calls the layers below."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

import yaml

EXIT_BAD_INPUT = 2
EXIT_MACHINE_FAULT = 3  # disk, file system, memory: nothing finished is lost, rerunning resumes
EXIT_INTERRUPTED = 130
DEBUG_VARIABLE = "ESBENCH_DEBUG"  # =1: tracebacks of bad input and machine faults, as --debug


def _parse_set(pairs: list[str]) -> dict:
    """`--set key=value`: values parsed as YAML (0.1 -> float, [64, 64] -> list, true -> bool)."""
    from esbench.validation import ConfigError

    hparams = {}
    for pair in pairs or []:
        key, eq, value = pair.partition("=")
        if not eq or not key:
            raise ConfigError(f"--set {pair!r}: expected key=value, e.g. --set learning_rate=0.01")
        try:
            hparams[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {pair!r}: cannot parse the value: {err}") from None
    return hparams


def _shown_origin(origin: str) -> str:
    """A plugin file's path relative to the current folder where it lies below it; other origins as they are."""
    try:
        return str(Path(origin).relative_to(Path.cwd()))
    except ValueError:
        return origin


def cmd_envs(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from esbench import plugins
    from esbench.envs import PAPER_ENVS, make, registered_ids
    from esbench.envs.check import check_env

    # Piped output gets rich's 80 columns by default, which truncates ids and numbers.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    if args.check is None:
        table = Table(title="Registered environments (any '<suite>/<name>' of a supported suite also works)")
        ids = registered_ids()
        table.add_column("id", no_wrap=True, min_width=max(map(len, ids)))  # never truncate an id
        for column in ("suite", "obs dim", "action", "episode limit", "paper", "from"):
            table.add_column(column)
        for env_id in ids:
            spec = make(env_id).spec
            table.add_row(
                env_id,
                spec.suite,
                str(spec.obs_dim),
                spec.action.describe(),
                str(spec.max_episode_steps),
                "yes" if env_id in PAPER_ENVS else "",
                _shown_origin(plugins.origin("environment", env_id)),
            )
        console.print(table)
        return 0
    ids = args.check or list(PAPER_ENVS)
    envs = [make(env_id) for env_id in ids]  # unknown ids fail before anything is compiled
    table = Table(title=f"Random-action check: jit + vmap({args.num_envs}) + scan({args.steps})")
    table.add_column("id", no_wrap=True, min_width=max(len(env.spec.id) for env in envs))
    for column in ("obs dim", "action", "compile s", "steps/s", "episodes ended"):
        table.add_column(column, justify="right")
    failures = 0
    for env in envs:
        with console.status(f"checking {env.spec.id} ..."):
            try:
                result = check_env(env, args.num_envs, args.steps)
            except Exception as err:  # report every env, then fail
                failures += 1
                table.add_row(
                    env.spec.id, str(env.spec.obs_dim), env.spec.action.describe(), "-", f"FAILED: {err}", "-"
                )
                continue
        table.add_row(
            env.spec.id,
            str(env.spec.obs_dim),
            env.spec.action.describe(),
            f"{result.compile_s:.1f}",
            f"{result.steps_per_s:,.0f}",
            str(result.episodes_finished),
        )
    console.print(table)
    return 1 if failures else 0


def _run_options(args, checkpoint_every: int | None = None):
    """How trials run (progress, checkpoints, live logs, vectorised groups), from the shared options.

    checkpoint_every: the sweep file's, used when the command line gives none.
    """
    from esbench.runner.memory import parse_size
    from esbench.runner.trial import RunOptions

    every = args.checkpoint_every if args.checkpoint_every is not None else checkpoint_every
    limit = parse_size(args.memory_limit) if args.memory_limit is not None else None
    return RunOptions(
        progress=not args.quiet,
        out_dir=Path(args.out),
        checkpoint_every=every,
        keep_checkpoints=args.keep_checkpoints,
        live_logs=tuple(args.log or ()),
        vectorize=not args.no_vectorize,
        memory_guard=not args.no_memory_guard,
        memory_limit=limit,
    )


def _print_outcome(outcome, out: Path) -> int:
    busy = f", {len(outcome.busy)} left to another process running them" if outcome.busy else ""
    print(
        f"ran {len(outcome.ran)} trial(s), skipped {len(outcome.skipped)} already finished{busy}; results in {out}"
    )
    if outcome.diverged:
        print(f"diverged (all seeds): {', '.join(outcome.diverged)}")
    for trial_id, err in outcome.failed.items():
        print(f"FAILED {trial_id}: {err}", file=sys.stderr)
    return 1 if outcome.failed else 0


def cmd_run(args) -> int:
    from esbench.results import ResultStore
    from esbench.runner import TrialSpec, resolve_trial, run_trials
    from esbench.validation import build

    spec = build(
        TrialSpec,
        {
            "env": args.env,
            "algo": args.algo,
            "hparams": _parse_set(args.set),
            "seeds": tuple(range(args.seeds)),
            "env_steps": args.env_steps,
            "num_logs": args.num_logs,
            "eval_every": args.eval_every,
            "eval_episodes": args.eval_episodes,
            "max_episode_steps": args.max_episode_steps,
        },
        "run",
    )
    trial = resolve_trial(spec, "run")
    out = Path(args.out)
    outcome = run_trials([trial], ResultStore(out), backend="local", options=_run_options(args))
    if trial.trial_id in outcome.ran + outcome.skipped:
        _print_summary(out, trial.trial_id)
    return _print_outcome(outcome, out)


def _print_summary(out: Path, trial_id: str) -> None:
    from esbench.results import read_trial, trial_path

    _, _, summary = read_trial(trial_path(out, trial_id))
    finals = ", ".join(
        f"seed {s}: {'diverged' if v is None else f'{v:.2f}'}"
        for s, v in summary["final_eval_return"].items()
    )
    print(f"{trial_id}: final eval return {finals}")
    print(
        f"  env steps {sum(summary['env_steps'].values()):,} (all seeds)  compile {summary['compile_s']:.1f}s  "
        f"run {summary['run_s']:.1f}s  throughput {summary['throughput_sps'] or 0:,.0f} steps/s  on {summary['device']}"
    )


def cmd_sweep(args) -> int:
    from esbench.results import ResultStore
    from esbench.runner import expand_sweep, load_sweep_file, parse_sweep, resolve_trials, run_trials
    from esbench.validation import ConfigError

    data = load_sweep_file(args.file)
    specs = expand_sweep(data, args.budget)
    if args.envs:
        unknown = sorted(set(args.envs) - {s.env for s in specs})
        if unknown:
            raise ConfigError(
                f"--envs: {', '.join(unknown)} not in the sweep; its envs: {', '.join(dict.fromkeys(s.env for s in specs))}"
            )
        specs = [s for s in specs if s.env in args.envs]
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
    options = _run_options(args, parse_sweep(data, args.budget).checkpoint_every)
    outcome = run_trials(trials, store, backend=args.backend, address=args.address, options=options)
    return _print_outcome(outcome, out)


def cmd_reproduce(args) -> int:
    from esbench.results import ResultStore
    from esbench.runner import load_sweep_file
    from esbench.runner.protocol import describe_protocol, prepare_protocol, run_protocol

    out = Path(args.out)
    protocol = prepare_protocol(
        load_sweep_file(args.file),
        args.budget,
        envs=args.envs,
        skip_search=args.skip_search,
        sampler=args.sampler,
        out=out,
    )
    store = ResultStore(out)
    if args.dry_run:
        print(describe_protocol(protocol, store))
        return 0
    options = _run_options(args, protocol.sweep.checkpoint_every)
    outcome = run_protocol(protocol, store, backend=args.backend, address=args.address, options=options)
    code = _print_outcome(outcome, out)
    return code if outcome.complete else max(code, 1)


def cmd_plan(args) -> int:
    import json

    from esbench.runner.run_plan import RunPlan, format_plan
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
    from esbench.runner.memory import parse_size
    from esbench.runner.protocol import prepare_protocol
    from esbench.runner.roofline import accelerator
    from esbench.runner.run_plan import plan_run, protocol_groups, sweep_groups
    from esbench.validation import ConfigError

    if args.time_limit is not None:  # the programs run in child processes: leave them the GPU's memory
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    chip = accelerator(args.accelerator) if args.accelerator else None
    limit = parse_size(args.memory_limit) if args.memory_limit is not None else None
    data = load_sweep_file(args.file)
    if args.sweep:
        specs = expand_sweep(data, args.budget)
        if args.envs:
            unknown = sorted(set(args.envs) - {s.env for s in specs})
            if unknown:
                raise ConfigError(
                    f"--envs: {', '.join(unknown)} not in the sweep; its envs: "
                    f"{', '.join(dict.fromkeys(s.env for s in specs))}"
                )
            specs = [s for s in specs if s.env in args.envs]
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
        args.memory_gb * 1e9 if args.memory_gb else None,
        say,
        after_each=write_json,
        time_limit=args.time_limit,
    )  # a long plan keeps what it measured


def cmd_report(args) -> int:
    from esbench.report import build_report
    from esbench.results import load, load_protocol, load_summaries

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
    )
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def cmd_compare(args) -> int:
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


def cmd_render(args) -> int:
    from esbench import video

    video.main(
        args.results,
        args.trial_id,
        seed=args.seed,
        out=args.out,
        max_steps=args.max_steps,
        fps=args.fps,
        episode=args.episode,
        every=args.every,
    )
    return 0


def cmd_bench(args) -> int:
    from rich.console import Console

    from esbench import bench

    kinds = list(bench.KINDS) if args.only == "all" else [args.only]
    options = {  # each kind's settings from its options (None: the mode's value); kinds without options: the mode's
        "forward": dict(
            pop_sizes=args.pops,
            widths=args.widths,
            ranks=args.ranks,
            depth=args.depth,
            repeats=args.repeats,
            warmup=args.warmup,
            min_time_s=args.min_time_s,
            openes_mem_cap_gib=args.openes_mem_cap_gib,
        ),
        "training": dict(
            envs=args.envs,
            algos=args.algos,
            scale=args.scale,
            max_episode_steps=args.max_episode_steps,
            layer_size=args.layer_size,
            n_layers=args.n_layers,
            repeats=args.train_repeats,
            warmup=args.train_warmup,
        ),
        "early_exit": dict(
            envs=args.exit_envs,
            env_steps=args.exit_env_steps,
            pop_size=args.es_pop_size,
            layer_size=args.layer_size,
            n_layers=args.n_layers,
            seeds=args.es_seeds,
        ),
        "vectorized_sweep": dict(
            sigmas=args.grid_sigmas,
            learning_rates=args.grid_learning_rates,
            env_steps=args.grid_env_steps,
            pop_size=args.es_pop_size,
            layer_size=args.layer_size,
            n_layers=args.n_layers,
            seeds=args.es_seeds,
        ),
    }
    settings = {kind: bench.settings(kind, args.mode, **options.get(kind, {})) for kind in kinds}
    console = Console()
    if not console.is_terminal:  # piped or logged: rich would otherwise cut the tables to 80 columns
        console = Console(width=140)
    with console.status("benchmarks ...") as status:
        outcome = bench.run(kinds, args.mode, Path(args.out), progress=status.update, **settings)
    for kind, payload in outcome.payloads.items():
        console.print(bench.KINDS[kind].table(payload))
    for name, path in outcome.paths.items():
        console.print(f"{name}: {path}")
    if outcome.failed:
        console.print(f"[red]{outcome.failed} configuration(s) failed; see 'reason' in the JSON[/red]")
    return 1 if outcome.failed else 0


def build_parser() -> argparse.ArgumentParser:
    from esbench.algorithms import algorithm_names
    from esbench.runner.live_log import LOGGERS

    parser = argparse.ArgumentParser(prog="esbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    plugin = argparse.ArgumentParser(add_help=False)
    plugin.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first: a plugin that registers environments or algorithms (repeatable)",
    )
    debug_help = f"print the traceback of bad input and machine faults too (or set {DEBUG_VARIABLE}=1)"
    plugin.add_argument("--debug", action="store_true", help=debug_help)
    parser.add_argument("--debug", action="store_true", help=debug_help)
    plugin.add_argument(
        "--plugins",
        dest="plugin_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="run every *.py in DIR first, as ./envs and ./algorithms always are (repeatable)",
    )

    running = argparse.ArgumentParser(add_help=False)
    g = running.add_argument_group("how trials run")
    g.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="save a mid-trial checkpoint every N chunks (default: about once a minute of training)",
    )
    g.add_argument("--keep-checkpoints", action="store_true", help="keep checkpoints of finished trials")
    g.add_argument(
        "--log",
        action="append",
        choices=LOGGERS,
        metavar="{" + ",".join(LOGGERS) + "}",
        help="stream every log point of every seed while trials run (repeatable; TensorBoard event "
        "files or W&B offline runs under the results folder)",
    )
    g.add_argument(
        "--no-vectorize",
        action="store_true",
        help="run every trial on its own (default: trials differing only in value hyperparameters run "
        "as one program)",
    )
    g.add_argument(
        "--memory-limit",
        default=None,
        metavar="SIZE",
        help="memory a group's compiled program may use, e.g. 40GB, 512MiB (default: what the device "
        "has: its memory stats on a GPU, the host's available memory on a CPU)",
    )
    g.add_argument(
        "--no-memory-guard",
        action="store_true",
        help="run a group even when its compiled program looks too big for the device",
    )

    def add(name, runs_trials=False, **kwargs):
        return sub.add_parser(name, parents=[plugin, running] if runs_trials else [plugin], **kwargs)

    p = add("envs", help="list registered environments, or check that they step")
    p.add_argument(
        "--check", nargs="*", metavar="ID", help="reset and step these ids (default: the 16 paper envs)"
    )
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.set_defaults(func=cmd_envs)

    p = add("run", runs_trials=True, help="run one trial")
    p.add_argument("--env", required=True)
    p.add_argument(
        "--algo",
        required=True,
        help=f"{', '.join(algorithm_names())} (and any a plugin registers), or evosax:<Strategy>",
    )
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="hyperparameter override (repeatable)")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--env-steps", type=int, required=True)
    p.add_argument("--num-logs", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--eval-episodes", type=int, default=16)
    p.add_argument("--max-episode-steps", type=int, default=None)
    p.add_argument("--out", default="results/runs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

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
    p.set_defaults(func=cmd_sweep)

    from esbench.runner.sweep import SAMPLERS

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
    p.add_argument("--backend", default="local", choices=("local", "ray"))
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--envs", nargs="+", metavar="ID", help="run only these envs of the budget")
    p.add_argument(
        "--dry-run", action="store_true", help="print what each stage would run; run and write nothing"
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_reproduce)

    p = add(
        "plan", help="measure every program a run would compile (time, memory, roofline) before paying for it"
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
        help="the run's device memory, to flag programs that cannot fit (default: the accelerator's, "
        "else this device's)",
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
    p.set_defaults(func=cmd_plan)

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
    p.set_defaults(func=cmd_report)

    p = add("compare", help="two results folders side by side: final means, Welch intervals, verdicts")
    p.add_argument("a", help="a results folder (e.g. the reference, results/cpu)")
    p.add_argument("b", help="another results folder (e.g. a rerun)")
    p.add_argument("--confidence", type=float, default=0.95, help="level of the Welch interval of B - A")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--fail-on-differ", action="store_true", help="exit 1 when any matched pair differs")
    p.set_defaults(func=cmd_compare)

    p = add("render", help="a video (GIF or MP4) of a stored trial's policy")
    p.add_argument("results", help="a results folder")
    p.add_argument("trial_id")
    p.add_argument("--seed", type=int, default=None, help="which seed's policy (default: the trial's first)")
    p.add_argument("--out", default="clip.gif", help="a .gif or .mp4 path")
    p.add_argument("--episode", type=int, default=0, help="which evaluation episode (its key), default 0")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps")
    p.add_argument("--fps", type=float, default=25)
    p.add_argument("--every", type=int, default=1, help="keep every k-th frame")
    p.set_defaults(func=cmd_render)

    from esbench import bench

    p = add("bench", help="throughput benchmarks (see benchmarks/)")
    p.add_argument("--mode", choices=bench.MODES, default="quick")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--only", choices=("all", *bench.KINDS), default="all", help="run one benchmark")
    g = p.add_argument_group("forward benchmark (defaults: the mode's)")
    g.add_argument("--pops", type=int, nargs="+", metavar="N", help="population sizes (even)")
    g.add_argument("--widths", type=int, nargs="+", metavar="W", help="layer widths")
    g.add_argument("--ranks", type=int, nargs="+", metavar="R", help="EGGROLL ranks")
    g.add_argument("--depth", type=int, help="number of width x width layers")
    g.add_argument("--repeats", type=int, help="timed runs per measurement (median reported)")
    g.add_argument("--warmup", type=int, help="untimed runs after compilation (>= 1)")
    g.add_argument(
        "--min-time-s",
        type=float,
        help="a timed repeat loops a short program until this long (quick: 0.1, full: 0.05; 0: one call)",
    )
    g.add_argument(
        "--openes-mem-cap-gib",
        type=float,
        help="skip OpenES where N*width*width*4 bytes exceeds this (quick: 1, full: 8)",
    )
    g = p.add_argument_group("training-loop benchmark (defaults: the mode's)")
    g.add_argument(
        "--envs",
        nargs="+",
        metavar="ID",
        help="environments (full: CartPole-v1 brax/ant craftax/Craftax-Classic-Symbolic; quick: CartPole-v1)",
    )
    g.add_argument(
        "--algos", nargs="+", choices=algorithm_names(), help="default: every registered algorithm"
    )
    g.add_argument(
        "--scale",
        help="multiplies the algorithm's population field (pop_size or num_envs), "
        "e.g. 1/16 (quick: 1/16, full: 1)",
    )
    g.add_argument("--max-episode-steps", type=int, help="cap on episode length (for CPU)")
    g.add_argument("--layer-size", type=int, help="policy layer width (default: the paper's 256)")
    g.add_argument("--n-layers", type=int, help="policy hidden layers (default: the paper's 3)")
    g.add_argument("--train-repeats", type=int, help="timed updates per measurement")
    g.add_argument("--train-warmup", type=int, help="untimed updates after compilation")
    g = p.add_argument_group(
        "early-exit and vectorised-sweep benchmarks (defaults: the mode's; --layer-size and "
        "--n-layers apply too)"
    )
    g.add_argument(
        "--exit-envs",
        nargs="+",
        metavar="ID",
        help="early exit: environments (quick: CartPole-v1 Pendulum-v1 jumanji/Knapsack-v1)",
    )
    g.add_argument("--exit-env-steps", type=int, help="early exit: env steps per seed (quick: 500000)")
    g.add_argument(
        "--grid-sigmas",
        type=float,
        nargs="+",
        metavar="S",
        help="vectorised sweep: the grid's sigmas (quick: 0.05 0.2 0.5)",
    )
    g.add_argument(
        "--grid-learning-rates",
        type=float,
        nargs="+",
        metavar="LR",
        help="vectorised sweep: the grid's learning rates (quick: 0.001 0.01 0.03 0.1)",
    )
    g.add_argument("--grid-env-steps", type=int, help="vectorised sweep: env steps per seed (quick: 100000)")
    g.add_argument("--es-pop-size", type=int, help="both: ES population (quick: 64)")
    g.add_argument("--es-seeds", type=int, help="both: seeds per trial (quick: 2)")
    p.set_defaults(func=cmd_bench)
    return parser


def _early_options(argv: list[str]) -> argparse.Namespace:
    """--import and --plugins (so that plugins' algorithms appear in the choices) and --debug, read before the
    full parse."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--import", dest="imports", action="append", default=[])
    pre.add_argument("--plugins", dest="plugin_dirs", action="append", default=[])
    pre.add_argument("--debug", action="store_true")
    return pre.parse_known_args(argv)[0]


def _debug_from_environment() -> bool:
    from esbench.validation import ConfigError

    value = os.environ.get(DEBUG_VARIABLE, "").strip().lower()
    if value not in ("", "0", "1", "false", "true"):
        raise ConfigError(
            f"{DEBUG_VARIABLE}={os.environ[DEBUG_VARIABLE]!r} is invalid; allowed: 1 (or true), 0 (or false)"
        )
    return value in ("1", "true")


def _kept(args: argparse.Namespace | None) -> tuple[str | None, str]:
    """(what a machine fault left safe, what to do after fixing it) for the command `args` was running."""
    from esbench.faults import RESUME
    from esbench.results import count_finished

    command = args.command if args is not None else None
    if command in ("run", "sweep", "reproduce"):
        try:
            return f"{count_finished(args.out)} finished trials are stored in {args.out}", RESUME
        except OSError:  # the folder cannot even be listed: the line says why already
            return None, RESUME
    if command in ("report", "render"):
        made = "report file" if command == "report" else "video"
        return (
            f"the results in {args.results} are unchanged and no {made} is half-written",
            "then rerun the same command",
        )
    return None, "then rerun the same command"


def main(argv: list[str] | None = None) -> int:
    from esbench import plugins
    from esbench.algorithms import UnknownAlgorithmError
    from esbench.envs import UnknownEnvError
    from esbench.faults import fault_line
    from esbench.results import CorruptResultsError
    from esbench.runner.interrupt import Interrupted
    from esbench.validation import ConfigError

    argv = sys.argv[1:] if argv is None else argv
    early, args, debug = _early_options(argv), None, False

    def fail(line: str, code: int) -> int:
        if debug:
            traceback.print_exc()
        print(line, file=sys.stderr)
        return code

    try:
        debug = early.debug or _debug_from_environment()
        plugins.load(early.imports)
        plugins.load_drop_ins(early.plugin_dirs)  # ./envs, ./algorithms (when present), then --plugins
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (
        ConfigError,
        UnknownEnvError,
        UnknownAlgorithmError,
        FileNotFoundError,
        CorruptResultsError,
    ) as err:
        return fail(f"error: {err}", EXIT_BAD_INPUT)
    except Interrupted as why:
        return fail(
            f"interrupted: {why}. Finished trials are saved; rerun the same command to resume "
            f"(interrupted trials go on from their last checkpoint).",
            EXIT_INTERRUPTED,
        )
    except Exception as err:
        line = fault_line(err, *_kept(args))
        if line is None:  # not the machine's fault: a bug, which keeps its traceback
            raise
        return fail(f"machine fault: {line}", EXIT_MACHINE_FAULT)


if __name__ == "__main__":
    sys.exit(main())
