"""User code that registers environments and algorithms, loaded the same way by every entry point.

    envs/my_env.py, algorithms/my_algo.py                   # drop-in files in the current folder: no flag
    esbench sweep s.yaml --plugins DIR --out results        # every *.py in DIR (repeatable)
    plugins: [my_plugins]                                   # in a sweep file (folders beside it)
    esbench sweep s.yaml --import my_envs --out results     # a module (or several, repeatable)
    imports: [my_envs, my_baseline]                         # in a sweep file
    [project.entry-points."esbench.plugins"] my = "my_pkg"  # an installed package's entry point

A drop-in file is run once per process (a module of its own, named after its path); one that
fails (a syntax error, an exception, a name it registers already taken) is a ConfigError naming
its path and line, raised before anything runs. `origin(kind, name)` says where each environment
and algorithm came from ("built-in", a file's path, a module, an entry point).

A plugin module calls `esbench.envs.register(...)` and/or
`esbench.algorithms.register_algorithm(...)` when imported. Modules are looked
up on `sys.path` plus the current folder (and a sweep file's folder), as
`python -m` would. Ray workers call `load` with what the driver loaded before
they run a trial, since each worker starts with a fresh registry.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Iterable, NamedTuple

from esbench.validation import ConfigError, NameTakenError

ENTRY_POINT_GROUP = "esbench.plugins"
DROP_IN_FOLDERS = ("envs", "algorithms")  # looked for in the current folder by every command
BUILT_IN = "built-in"
_modules: list[str] = []  # imported by `load`, in order
_paths: list[str] = []  # folders `load` put on sys.path
_files: dict[str, str] = {}  # drop-in file path -> its source, run by `load_file`, in order
_origins: dict[tuple[str, str], str] = {}  # (kind, name) -> where it was registered from
_loading: list[str] = []  # the origins being loaded, innermost last
_entry_points_loaded = False


class Loaded(NamedTuple):
    """What this process has loaded: what a Ray worker replays (`replay`) to see the same registry."""

    modules: tuple[str, ...]
    paths: tuple[str, ...]
    files: tuple[tuple[str, str], ...]  # (path, source): workers need no shared disk


@contextlib.contextmanager
def _recording(origin: str):
    """Inside the block, what registers (`note_registration`) is recorded as coming from `origin`."""
    _loading.append(origin)
    try:
        yield
    finally:
        _loading.pop()


def note_registration(kind: str, name: str) -> None:
    """Called by the registries: remember where `name` came from when a plugin is loading."""
    if _loading:
        _origins[(kind, name)] = _loading[-1]


def origin(kind: str, name: str) -> str:
    """Where environment or algorithm `name` came from: a file path, "module X", "entry point X", else "built-in"
    (esbench's own, or registered by code that no plugin loader ran)."""
    return _origins.get((kind, name), BUILT_IN)


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
        with _recording(f"entry point {entry_point.name}"):
            try:
                loaded = entry_point.load()
            except Exception as err:
                raise ConfigError(
                    f"plugin {entry_point.name!r} ({entry_point.value}, entry point group "
                    f"{ENTRY_POINT_GROUP}) failed to load: {type(err).__name__}: {err}"
                ) from err
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
            with _recording(f"module {name}"):
                importlib.import_module(name)
        except ModuleNotFoundError as err:
            raise ConfigError(
                f"--import {name}: cannot import it ({err}); a plugin must be importable from the current "
                f"folder, the sweep file's folder or an installed package"
            ) from err
        except Exception as err:  # the plugin's own code failed: say which plugin
            raise ConfigError(f"--import {name}: importing it raised {type(err).__name__}: {err}") from err
        if name not in _modules:
            _modules.append(name)


def _module_name(path: Path) -> str:
    """A module name of its own per drop-in file (dataclasses and pickling look modules up by name)."""
    return "esbench_dropin." + re.sub(r"\W", "_", str(path.with_suffix("")).strip("/"))


def _line_in(path: str, err: BaseException) -> int | None:
    """The line of `path` the exception passed through last (where the file's own code failed)."""
    if isinstance(err, SyntaxError) and err.filename == path:
        return err.lineno
    lines = [frame.lineno for frame in traceback.extract_tb(err.__traceback__) if frame.filename == path]
    return lines[-1] if lines else None


def load_file(path: str | os.PathLike, source: str | None = None) -> None:
    """Run one drop-in file (once per process); ConfigError naming its path and line if it fails."""
    path = Path(path).resolve()
    key = str(path)
    if key in _files:
        return
    if source is None:
        try:
            source = path.read_text()
        except OSError as err:
            raise ConfigError(f"plugin file {key}: cannot read it ({err})") from err
    name = _module_name(path)
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None, origin=key))
    module.__file__ = key
    sys.modules[name] = module
    try:
        with _recording(key):
            exec(compile(source, key, "exec"), module.__dict__)
    except Exception as err:
        del sys.modules[name]
        where = f"{key}:{_line_in(key, err) or '?'}"
        if isinstance(err, NameTakenError):
            taken = origin(err.kind, err.name)
            owner = "esbench's built-in" if taken == BUILT_IN else f"{taken}'s"
            raise ConfigError(
                f"{where}: registers the {err.kind} {err.name!r}, a name already taken by {owner} "
                f"{err.name!r}; pick another name"
            ) from None
        if isinstance(err, SyntaxError):
            raise ConfigError(f"{where}: syntax error: {err.msg}") from None
        raise ConfigError(f"{where}: loading this plugin file raised {type(err).__name__}: {err}") from err
    _files[key] = source


def load_folder(folder: str | os.PathLike) -> None:
    """Every `*.py` file of `folder` (not `_*.py`), in name order; ConfigError if `folder` is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"plugin folder {folder} does not exist (or is not a folder)")
    for path in sorted(folder.glob("*.py")):
        if not path.name.startswith("_"):
            load_file(path)


def load_drop_ins(
    folders: Iterable[str | os.PathLike] = (),
    base: str | os.PathLike = ".",
    names: Iterable[str] | None = None,
) -> None:
    """The drop-in folders of `base` that exist (`names`, default DROP_IN_FOLDERS), then `folders` (which must
    exist)."""
    for name in DROP_IN_FOLDERS if names is None else names:
        if (Path(base) / name).is_dir():
            load_folder(Path(base) / name)
    for folder in folders:
        load_folder(folder)


def loaded() -> Loaded:
    """What `load` and `load_file` have taken so far: what a Ray worker must replay to see the same registry."""
    return Loaded(tuple(_modules), tuple(_paths), tuple(_files.items()))


def replay(what: Loaded) -> None:
    """Load what another process loaded (`loaded()` there), drop-in files from their shipped source."""
    load(what.modules, what.paths)
    for path, source in what.files:
        load_file(path, source)
