"""User code that registers environments and algorithms, loaded the same way by every entry point.

    esbench sweep s.yaml --import my_envs --out results     # a module (or several, repeatable)
    imports: [my_envs, my_baseline]                         # in a sweep file
    [project.entry-points."esbench.plugins"] my = "my_pkg"  # an installed package's entry point

A plugin module calls `esbench.envs.register(...)` and/or
`esbench.algorithms.register_algorithm(...)` when imported. Modules are looked
up on `sys.path` plus the current folder (and a sweep file's folder), as
`python -m` would. Ray workers call `load` with what the driver loaded before
they run a trial, since each worker starts with a fresh registry.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys
from typing import Iterable

from esbench.validation import ConfigError

ENTRY_POINT_GROUP = "esbench.plugins"
_modules: list[str] = []  # imported by `load`, in order
_paths: list[str] = []  # folders `load` put on sys.path
_entry_points_loaded = False


def _add_path(path: str) -> None:
    path = os.path.abspath(path)
    if path not in sys.path:
        sys.path.insert(0, path)
    if path not in _paths:
        _paths.append(path)


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = entry_point.load()
        except Exception as err:
            raise ConfigError(f"plugin {entry_point.name!r} ({entry_point.value}, entry point group "
                              f"{ENTRY_POINT_GROUP}) failed to load: {type(err).__name__}: {err}") from err
        if callable(loaded) and not isinstance(loaded, type(sys)):
            loaded()  # an entry point may name a registration function rather than a module


def load(modules: Iterable[str] = (), paths: Iterable[str] = (".",)) -> None:
    """Import the installed plugins' entry points (once), then `modules`, looked up also in `paths`."""
    for path in paths:
        _add_path(path)
    _load_entry_points()
    for name in modules:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"imports: {name!r} is not a module name")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            raise ConfigError(f"--import {name}: cannot import it ({err}); a plugin must be importable from the current "
                              f"folder, the sweep file's folder or an installed package") from err
        except Exception as err:  # the plugin's own code failed: say which plugin
            raise ConfigError(f"--import {name}: importing it raised {type(err).__name__}: {err}") from err
        if name not in _modules:
            _modules.append(name)


def loaded() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(modules, paths) `load` has taken so far: what a Ray worker must load to see the same registry."""
    return tuple(_modules), tuple(_paths)
