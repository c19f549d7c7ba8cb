"""Silence the known third-party noise esbench's imports trigger; every other warning still passes.

Three messages, each matched exactly, each harmless here:

    mujoco.mjx.warp     prints "Failed to import warp: ..." and "... mujoco_warp: ..." to stdout when
                        imported (brax imports it; esbench never uses MJX-on-Warp)
    brax                a UserWarning, "Brax System, piplines and environments are not actively being
                        maintained" (brax is still the paper's suite for ant/humanoid)
    grain (via absl)    "Grain multiprocess worker profiling requires jaxlib extension version ..."
                        (esbench runs no grain workers)

`install()` runs once, when esbench is imported, so the first line any command prints is esbench's.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import io
import logging
import sys
import warnings

WARP_MODULE = "mujoco.mjx.warp"
WARP_LINES = ("Failed to import warp:", "Failed to import mujoco_warp:")
BRAX_MAINTENANCE = r"Brax System, piplines and environments are not actively being maintained"
GRAIN_PROFILING = "Grain multiprocess worker profiling requires jaxlib extension"


class _DropLines(io.TextIOBase):
    """A stream passing every line to `target` except those starting with one of `prefixes`."""

    def __init__(self, target, prefixes: tuple[str, ...]):
        self.target, self.prefixes, self.pending = target, prefixes, ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            if not line.startswith(self.prefixes):
                self.target.write(line + "\n")
        return len(text)

    def close_pending(self) -> None:
        if self.pending and not self.pending.startswith(self.prefixes):
            self.target.write(self.pending)
        self.pending = ""


class _QuietLoader(importlib.abc.Loader):
    """Runs `loader`'s module with the warp lines dropped from stdout."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        stream = _DropLines(sys.stdout, WARP_LINES)
        try:
            with contextlib.redirect_stdout(stream):
                self.loader.exec_module(module)
        finally:
            stream.close_pending()


class _QuietWarpFinder(importlib.abc.MetaPathFinder):
    """Finds `mujoco.mjx.warp` as the other finders would, its loader wrapped (imported lazily, as before)."""

    def find_spec(self, name, path, target=None):
        if name != WARP_MODULE:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


class _DropGrainProfiling(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(GRAIN_PROFILING)


_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    warnings.filterwarnings("ignore", message=BRAX_MAINTENANCE, category=UserWarning)
    logging.getLogger("absl").addFilter(_DropGrainProfiling())
    sys.meta_path.insert(0, _QuietWarpFinder())
