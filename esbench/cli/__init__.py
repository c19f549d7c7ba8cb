"""esbench trains one policy network with EGGROLL, OpenES and PPO on JAX-native vectorised environments,
under one runner, and turns what it logged into the EGGROLL paper's comparison figures and tables.

Start with the paper's protocol at the CPU budget (its time on a 2-core CPU: docs/reference-run.md), then its report:

    esbench reproduce sweeps/paper16.yaml --budget cpu --out results/cpu-mine
    esbench report results/cpu-mine

`esbench <command> --help` gives each command's options; the README is the user's guide.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback

from esbench.cli import bench, compare, envs, plan, power, render, report, reproduce, run, sweep
from esbench.cli.common import (
    DEBUG_VARIABLE,
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    EXIT_MACHINE_FAULT,
    apply_compile_options,
    parents,
)

# In the order `esbench --help` lists them: the protocol first, then single runs, then the tools around them.
COMMANDS = (reproduce, report, compare, plan, power, sweep, run, envs, render, bench)
__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERRUPTED", "EXIT_MACHINE_FAULT", "build_parser", "main"]


def version_line() -> str:
    from esbench import __version__
    from esbench.provenance import code_commit

    return f"esbench {__version__} (commit {code_commit()})"


class _Version(argparse.Action):
    """--version: computed when asked (it runs git), not each time a parser is built."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the version and the commit, and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_line())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="esbench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"print the traceback of bad input and machine faults too (or set {DEBUG_VARIABLE}=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plugin, compiling, running = parents()

    def add(name, runs_trials=False, compiles=False, **kwargs):
        kwargs.setdefault("description", kwargs.get("help"))
        chosen = (
            [plugin, compiling, running] if runs_trials else [plugin, compiling] if compiles else [plugin]
        )
        return sub.add_parser(name, parents=chosen, **kwargs)

    for command in COMMANDS:
        command.add_parser(add)
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
        if hasattr(args, "compile_cache"):
            apply_compile_options(args)
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
