"""The memory guard: a group's compiled chunk program against what the device has, before it runs.

    needs = program_memory(programs.compiled_chunk)      # XLA's memory analysis: arguments, outputs, temporaries
    check_fits(trials, needs, limit=None)                # MemoryRefused (a MachineFault) when it cannot fit

One measurement, two clients: `run_group` (through fitting.py, which splits a
group until its programs fit) and `esbench plan`, which flags (and does not
time) a program that cannot fit. What a device may hold is one function,
`memory_limit`: `--memory-limit 40GB` where given (taken as is), else what the
device has less HEADROOM_BYTES. What the device has: its allocator's limit less
what is in use (jax's `memory_stats`, GPUs), else the host's available memory
(CPU); for a plan's accelerator, its memory times JAX's default allocator
fraction (ALLOCATOR_FRACTION). `--no-memory-guard` turns the check off.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import jax

from esbench.faults import MachineFault
from esbench.validation import ConfigError

_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
# Kept free beside a program: the evaluation program's buffers, cuBLAS/cuDNN workspaces, the runtime's own.
HEADROOM_BYTES = 10**9
# the share of a GPU's memory JAX preallocates for its allocator (XLA_PYTHON_CLIENT_MEM_FRACTION's default)
ALLOCATOR_FRACTION = 0.75
# what shrinks a program, by the Config fields that set its batch
_SHRINKING_FIELDS = ("pop_size", "n_parallel_evaluations", "num_envs", "num_steps", "layer_size")


class MemoryRefused(MachineFault):
    """A group's compiled program needs more memory than the device has; refused before it runs."""


@dataclass(frozen=True)
class ProgramMemory:
    """XLA's memory analysis of one compiled program, in bytes."""

    argument_bytes: int
    output_bytes: int
    temp_bytes: int
    alias_bytes: int  # outputs written into donated arguments: counted once

    @property
    def peak_bytes(self) -> int:
        return self.argument_bytes + self.output_bytes + self.temp_bytes - self.alias_bytes


def program_memory(compiled) -> ProgramMemory | None:
    """The compiled program's buffers (None where the backend gives no memory analysis)."""
    try:
        stats = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        return None
    if stats is None:
        return None
    return ProgramMemory(
        int(stats.argument_size_in_bytes),
        int(stats.output_size_in_bytes),
        int(stats.temp_size_in_bytes),
        int(stats.alias_size_in_bytes),
    )


def available_memory() -> tuple[int | None, str]:
    """(bytes a new program may use, where the figure comes from) on the default device."""
    device = jax.local_devices()[0]
    try:
        stats = device.memory_stats()
    except Exception:
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(
            stats.get("bytes_in_use", 0)
        ), f"{device.device_kind} memory_stats"
    try:
        with open("/proc/meminfo") as f:
            meminfo = dict(line.split(":", 1) for line in f)
        return int(meminfo["MemAvailable"].split()[0]) * 1024, "host MemAvailable"
    except (OSError, KeyError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "host free pages"
    except (ValueError, OSError, AttributeError):
        return None, "unknown"


def memory_limit(limit: int | None = None) -> tuple[int | None, str]:
    """(bytes a group's program may use, where the figure comes from): `limit` as given (--memory-limit),
    else what the default device has less HEADROOM_BYTES (None: the device reports nothing)."""
    if limit is not None:
        return limit, "--memory-limit"
    available, source = available_memory()
    if available is None:
        return None, source
    return max(available - HEADROOM_BYTES, 0), f"{source} less {gb(HEADROOM_BYTES)} headroom"


def accelerator_limit(memory_gb: float) -> int:
    """What a program may use on an accelerator of `memory_gb` GB: JAX's allocator share less the headroom."""
    return int(memory_gb * 1e9 * ALLOCATOR_FRACTION) - HEADROOM_BYTES


def parse_size(text: str, option: str = "--memory-limit") -> int:
    """'40GB', '512MiB', '1.5TB', '123456' (bytes) -> bytes; ConfigError naming the allowed forms."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", str(text))
    unit = match.group(2).upper() if match else ""
    if not match or unit not in {*_UNITS, ""} or float(match.group(1)) <= 0:
        raise ConfigError(
            f"{option} {text!r}: expected a size > 0 with a unit, e.g. 40GB, 512MiB, 1.5TB "
            f"(units: {', '.join(u if u == 'B' else u.replace('I', 'i') for u in _UNITS)})"
        )
    return int(float(match.group(1)) * _UNITS[unit or "B"])


def gb(n: float | None) -> str:
    """A size in the unit that reads best: 812 B, 22.5 kB, 310.0 MB, 41.20 GB."""
    if n is None:
        return "?"
    for unit, scale, digits in (("GB", 1e9, 2), ("MB", 1e6, 1), ("kB", 1e3, 1)):
        if n >= scale:
            return f"{n / scale:.{digits}f} {unit}"
    return f"{n:.0f} B"


def shrink_hint(trials) -> str:
    """The settings that shrink a group's program, with their values."""
    cfg, spec = trials[0].cfg, trials[0].spec
    fields = [f"{name} (now {getattr(cfg, name)})" for name in _SHRINKING_FIELDS if hasattr(cfg, name)]
    fields += [
        f"seeds per program (now {len(spec.seeds)})",
        f"points per program (now {len(trials)}; --no-vectorize runs them one by one)",
        f"devices (now {jax.local_device_count()}: more split the batch)",
    ]
    return ", ".join(fields)


def check_fits(trials, needs: ProgramMemory | None, limit: int | None = None) -> str:
    """A one-line verdict when the group fits (or cannot be checked); MemoryRefused when it cannot fit.

    limit: bytes the program may use (None: what the device has, memory_limit())."""
    if needs is None:
        return "memory not checked: the backend gives no memory analysis"
    limit, source = memory_limit(limit)
    if limit is None:
        return "memory not checked: the device reports no available memory"
    spec = trials[0].spec
    what = f"{spec.env} x {spec.algo} ({len(trials)} point(s) x {len(spec.seeds)} seed(s))"
    if needs.peak_bytes > limit:
        raise MemoryRefused(
            f"memory: the program of {what} needs {gb(needs.peak_bytes)} (arguments {gb(needs.argument_bytes)}, "
            f"outputs {gb(needs.output_bytes)}, temporaries {gb(needs.temp_bytes)}) but {gb(limit)} is available "
            f"({source}); nothing of it ran. Shrink {shrink_hint(trials)}; or override with --memory-limit SIZE "
            f"or --no-memory-guard"
        )
    return f"memory: {what} needs {gb(needs.peak_bytes)} of {gb(limit)} ({source})"
