"""`esbench run`: one trial, its final returns and throughput printed."""

from __future__ import annotations

from pathlib import Path

from esbench.cli.common import parse_set, print_outcome, run_options


def add_parser(add) -> None:
    """The subcommand's parser, made by `add(name, runs_trials=..., help=...)`."""
    from esbench.algorithms import algorithm_names

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
    p.set_defaults(func=handle)


def handle(args) -> int:
    from esbench.results import ResultStore
    from esbench.runner import TrialSpec, resolve_trial, run_trials
    from esbench.validation import build

    spec = build(
        TrialSpec,
        {
            "env": args.env,
            "algo": args.algo,
            "hparams": parse_set(args.set),
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
    outcome = run_trials([trial], ResultStore(out), backend="local", options=run_options(args))
    if trial.trial_id in outcome.ran + outcome.skipped:
        _print_summary(out, trial.trial_id)
    return print_outcome(outcome, out)


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
