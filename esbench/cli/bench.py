"""`esbench bench`: the throughput benchmarks (esbench/bench/)."""

from __future__ import annotations

from pathlib import Path


def add_parser(add) -> None:
    """The subcommand's parser, made by `add(name, runs_trials=..., help=...)`."""
    from esbench import bench
    from esbench.algorithms import algorithm_names

    p = add("bench", compiles=True, help="throughput benchmarks (see benchmarks/)")
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
    p.set_defaults(func=handle)


def handle(args) -> int:
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
