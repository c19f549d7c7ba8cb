"""What every subcommand shares: exit codes, the plugin and run options, `--set` parsing, the outcome lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

EXIT_BAD_INPUT = 2
EXIT_MACHINE_FAULT = 3  # disk, file system, memory: nothing finished is lost, rerunning resumes
EXIT_INTERRUPTED = 130
DEBUG_VARIABLE = "ESBENCH_DEBUG"  # =1: tracebacks of bad input and machine faults, as --debug


def parse_set(pairs: list[str]) -> dict:
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


def run_options(args, checkpoint_every: int | None = None):
    """How trials run (progress, checkpoints, live logs, vectorised groups), from the shared options.

    checkpoint_every: the sweep file's, used when the command line gives none.
    """
    from esbench.runner import compile_cache
    from esbench.runner.eta import planned_times
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
        eta_history=planned_times(args.plan) if args.plan else None,
        compile_cache=compile_cache.current(),
        deterministic=args.deterministic,
    )


def apply_compile_options(args) -> None:
    """--deterministic and --compile-cache, in this process, before anything compiles."""
    from esbench.runner import compile_cache, determinism

    if args.deterministic:
        determinism.enable(say=lambda line: print(line, file=sys.stderr))
    compile_cache.apply(compile_cache.resolve(args.compile_cache))


def print_outcome(outcome, out: Path) -> int:
    busy = f", {len(outcome.busy)} left to another process running them" if outcome.busy else ""
    print(
        f"ran {len(outcome.ran)} trial(s), skipped {len(outcome.skipped)} already finished{busy}; results in {out}"
    )
    if outcome.diverged:
        print(f"diverged (all seeds): {', '.join(outcome.diverged)}")
    for trial_id, err in outcome.failed.items():
        print(f"FAILED {trial_id}: {err}", file=sys.stderr)
    return 1 if outcome.failed else 0


def parents() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser, argparse.ArgumentParser]:
    """(options of every subcommand: plugins and --debug; of those that compile programs; of those that run
    trials)."""
    from esbench.runner import compile_cache
    from esbench.runner.live_log import LOGGERS

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
    plugin.add_argument(
        "--plugins",
        dest="plugin_dirs",
        action="append",
        default=[],
        metavar="DIR",
        help="run every *.py in DIR first, as ./envs and ./algorithms always are (repeatable)",
    )

    compiling = argparse.ArgumentParser(add_help=False)
    g = compiling.add_argument_group("how programs compile")
    g.add_argument(
        "--compile-cache",
        default=None,
        metavar="DIR",
        help=f"the persistent compilation cache every process of the run shares, or 'off' (default: "
        f"${compile_cache.VARIABLE}, else ${compile_cache.JAX_VARIABLE}, "
        f"else {compile_cache.default_folder()} with a GPU or TPU plugin installed, off on a CPU-only "
        "install: see esbench/runner/compile_cache.py)",
    )
    g.add_argument(
        "--deterministic",
        action="store_true",
        help="deterministic GPU ops (XLA's), so that a GPU rerun is bit-identical; slower. A CPU run is "
        "deterministic already (docs/determinism.md)",
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
        "--plan",
        default=None,
        metavar="PLAN.json",
        help="a plan of this run saved with `esbench plan --json`: the ETA starts from its per-program "
        "times, scaled to this machine's measured pace (default: each (env, algorithm)'s pace as measured)",
    )
    g.add_argument(
        "--no-memory-guard",
        action="store_true",
        help="run a group even when its compiled program looks too big for the device",
    )

    return plugin, compiling, running
