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
    p.add_argument(
        "--reward-stats",
        nargs="+",
        metavar="ID",
        help="how sparse the reward of these ids is: per step and per first episode, under random actions "
        "(and, with --policies, under each trained policy stored there)",
    )
    p.add_argument(
        "--policies",
        metavar="RESULTS",
        help="with --reward-stats: a results folder; every final-stage trial of an id, each seed's policy",
    )
    p.add_argument("--episodes", type=int, default=256, help="episodes for --random-return, --reward-stats")
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
    if args.reward_stats:
        return _print_reward_stats(console, args.reward_stats, args.episodes, args.policies)
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


def _print_reward_stats(console, ids: list[str], episodes: int, policies: str | None) -> int:
    import jax
    from rich.table import Table

    from esbench.algorithms import networks
    from esbench.envs import make
    from esbench.envs.check import reward_stats, rollout_program
    from esbench.results import load_configs
    from esbench.results.policies import load_trained_policy

    if episodes < 2:
        print(f"error: --episodes = {episodes}; allowed: an integer >= 2", file=sys.stderr)
        return 2
    envs = {env_id: make(env_id) for env_id in ids}  # unknown ids fail before anything is compiled
    trials = {env_id: [] for env_id in ids}
    if policies:
        if not Path(policies, "trials").is_dir():
            print(f"error: --policies {policies}: not a results folder (no trials/ in it)", file=sys.stderr)
            return 2
        for config in load_configs(policies):
            if config["env"] in trials and config.get("stage") == "final":
                trials[config["env"]].append(config)
    table = Table(title=f"Rewards of the first episode of {episodes} envs (seed 0)")
    table.add_column("id", no_wrap=True)
    for column in ("policy", "mean return", "s.e.", "mean length", "steps rewarded", "episodes > 0"):
        table.add_column(column, justify="right")
    table.add_column("reward range", justify="right")

    def add(env_id, label, stats):
        table.add_row(
            env_id,
            label,
            f"{stats.return_mean:.4g}",
            f"{stats.return_sem:.2g}",
            f"{stats.length_mean:.0f}",
            f"{stats.nonzero_steps:.2%}",
            f"{stats.rewarded_episodes:.0%}",
            f"[{stats.reward_min:.3g}, {stats.reward_max:.3g}]",
        )

    for env_id, configs in trials.items():
        if configs:  # the trials' episode limit, so that random and trained episodes are alike
            envs[env_id] = make(env_id, configs[0].get("max_episode_steps"))
        if not envs[env_id].spec.max_episode_steps:
            print(f"error: {env_id} has no episode limit: a first episode might never end", file=sys.stderr)
            return 2
    key = jax.random.PRNGKey(0)
    for env_id, env in envs.items():
        configs, limit = trials[env_id], env.spec.max_episode_steps
        with console.status(f"rolling out {env_id} (random actions) ..."):
            _, reward, done, _ = rollout_program(env, episodes, int(limit))(key, None)
        add(env_id, "random", reward_stats(reward, done))
        for config in configs:
            first = load_trained_policy(policies, config["trial_id"])

            def act(params, obs, act_key, policy=first):
                spec = policy.env.spec
                return networks.act(
                    params, obs, act_key, spec.action, policy.deterministic, policy.activation
                )

            program = rollout_program(first.env, episodes, int(limit), act)
            for seed in config["seeds"]:
                policy = load_trained_policy(policies, config["trial_id"], seed)
                with console.status(f"rolling out {env_id}: {config['algo']} seed {seed} ..."):
                    _, reward, done, _ = program(key, policy.params)
                add(env_id, f"{config['algo']} seed {seed}", reward_stats(reward, done))
    console.print(table)
    return 0


def _shown_origin(origin: str) -> str:
    """A plugin file's path relative to the current folder where it lies below it; other origins as they are."""
    try:
        return str(Path(origin).relative_to(Path.cwd()))
    except ValueError:
        return origin
