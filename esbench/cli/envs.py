"""`esbench envs`: the registered environments, or a check that each resets and steps under jit."""

from __future__ import annotations

import sys
from pathlib import Path


def add_parser(add) -> None:
    """The subcommand's parser, made by `add(name, runs_trials=..., help=...)`."""
    p = add("envs", help="list registered environments, or check that they step")
    p.add_argument(
        "--check", nargs="*", metavar="ID", help="reset and step these ids (default: the 16 paper envs)"
    )
    p.add_argument(
        "--random-return",
        nargs="+",
        metavar="ID",
        help="the mean return of a uniformly random policy in these ids (the `random` of a sweep's references)",
    )
    p.add_argument("--episodes", type=int, default=256, help="episodes for --random-return")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--steps", type=int, default=100)
    p.set_defaults(func=handle)


def handle(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from esbench import plugins
    from esbench.envs import PAPER_ENVS, make, registered_ids
    from esbench.envs.check import check_env

    # Piped output gets rich's 80 columns by default, which truncates ids and numbers.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    if args.random_return:
        return _print_random_returns(console, args.random_return, args.episodes)
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


def _print_random_returns(console, ids: list[str], episodes: int) -> int:
    import math

    from rich.table import Table

    from esbench.envs import make
    from esbench.envs.check import random_returns

    if episodes < 2:
        print(f"error: --episodes = {episodes}; allowed: an integer >= 2", file=sys.stderr)
        return 2
    envs = [make(env_id) for env_id in ids]  # unknown ids fail before anything is compiled
    table = Table(title=f"Uniformly random actions: the first episode of {episodes} envs (seed 0)")
    table.add_column("id", no_wrap=True)
    for column in ("mean return", "standard error", "min", "max"):
        table.add_column(column, justify="right")
    for env in envs:
        with console.status(f"rolling out {env.spec.id} ..."):
            r = random_returns(env, episodes)
        sem = r.std(ddof=1) / math.sqrt(r.size)
        table.add_row(env.spec.id, f"{r.mean():.4g}", f"{sem:.2g}", f"{r.min():.4g}", f"{r.max():.4g}")
    console.print(table)
    return 0


def _shown_origin(origin: str) -> str:
    """A plugin file's path relative to the current folder where it lies below it; other origins as they are."""
    try:
        return str(Path(origin).relative_to(Path.cwd()))
    except ValueError:
        return origin
