"""Faults of the machine (disk, file system, memory, workers), as opposed to bad input (validation.py).

A `MachineFault` carries a message that already says, in one line, what failed, why in plain
words, what was kept and how to go on; the CLI prints it and exits with EXIT_MACHINE_FAULT.
The other machine faults arrive as the library's own errors (an OSError from a write, a
UnicodeDecodeError from a file that is not text, XLA's RESOURCE_EXHAUSTED); `fault_line` words
them the same way, and anything else is not a machine fault (a bug keeps its traceback).
"""

from __future__ import annotations

import errno

RESUME = "then rerun the same command to resume"

# errno -> (the cause in plain words, what to do about it)
_OS_CAUSES = {
    errno.ENOSPC: ("no space left on the device", "free space"),
    errno.EDQUOT: ("the disk quota is used up", "free space or raise the quota"),
    errno.EACCES: ("permission denied", "make the folder writable or choose another one"),
    errno.EPERM: ("operation not permitted", "make the folder writable or choose another one"),
    errno.EROFS: ("the file system is read-only", "choose a folder on a writable file system"),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "move that file or choose another path"),
    errno.EISDIR: ("it is a folder, not a file", "choose a file's path"),
    errno.ENAMETOOLONG: ("the path is too long for the file system", "choose a shorter path"),
    errno.ENOENT: ("no such file or folder (removed while the command ran?)", "check the path"),
    errno.EIO: ("the device reported an input/output error", "check the disk (dmesg) or use another one"),
    errno.EMFILE: ("too many open files in this process", "raise the limit (ulimit -n)"),
    errno.ENFILE: ("too many open files on this machine", "close other programs' files"),
    errno.ENOMEM: ("out of memory", "free memory"),
}
_XLA_OOM = ("the accelerator ran out of memory", "use a smaller population, fewer seeds or --no-vectorize")
_MAX_DETAIL = 200  # characters of a library's own message quoted in the line


class MachineFault(Exception):
    """A fault of the machine, described in one line (what, why, what was kept, how to go on)."""


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= _MAX_DETAIL else line[:_MAX_DETAIL] + "..."


def _is_xla_oom(err: BaseException) -> bool:
    try:
        from jax.errors import JaxRuntimeError  # XlaRuntimeError is the same class
    except ImportError:
        return False
    return isinstance(err, JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(err)


def explain(err: BaseException) -> tuple[str, str] | None:
    """(what failed and why, in plain words; how to go on) of a machine fault, or None when `err` is not one."""
    if isinstance(err, OSError):
        cause, remedy = _OS_CAUSES.get(
            err.errno, (_first_line(err.strerror or str(err)) or type(err).__name__, "fix the cause")
        )
        code = f" ({errno.errorcode[err.errno]})" if err.errno in errno.errorcode else ""
        paths = [p for p in (err.filename, err.filename2) if p is not None]
        if paths:
            return f"{' -> '.join(map(str, paths))}: {cause}{code}", remedy
        detail = _first_line(str(err))  # pyarrow's errors name the file in the message, not in .filename
        return f"{cause}{code}" + (f" ({detail})" if detail and detail != cause else ""), remedy
    if isinstance(err, UnicodeDecodeError):
        return (
            f"not a text file ({err.encoding} cannot decode byte {err.object[err.start : err.start + 1]!r} "
            f"at position {err.start})"
        ), "check the file's path and encoding"
    if isinstance(err, MemoryError):
        return "the host ran out of memory", "free memory or run fewer trials at once"
    if _is_xla_oom(err):
        return f"{_XLA_OOM[0]} ({_first_line(str(err))})", _XLA_OOM[1]
    return None


def is_machine_fault(err: BaseException) -> bool:
    return isinstance(err, MachineFault) or explain(err) is not None


def fault_line(err: BaseException, kept: str | None = None, then: str = RESUME) -> str | None:
    """The one line that reports machine fault `err` ("what: why; kept; how to go on"), or None for any other error.

    kept: what is safe (e.g. "3 of 6 trials finished and stored in out/"); a MachineFault's own line says it already.
    then: what to do once the cause is fixed.
    """
    if isinstance(err, MachineFault):
        return str(err)
    explained = explain(err)
    if explained is None:
        return None
    what, remedy = explained
    return "; ".join(part for part in (what, kept, f"{remedy}, {then}") if part)
