"""What every benchmark kind does the same way: a compiled program's memory, why a configuration failed, list rules."""

from __future__ import annotations

import jax

from esbench.validation import rule


def memory_report(compiled) -> dict:
    """The compiled program's buffer sizes (all platforms) and the device's peak so far (where reported).

    JAX cannot reset a device's peak counter, so `device_peak_bytes_in_use` is
    the process's high-water mark up to this measurement, not this program's own.
    """
    report = {
        "temp_bytes": None,
        "argument_bytes": None,
        "output_bytes": None,
        "device_peak_bytes_in_use": None,
    }
    try:
        stats = compiled.memory_analysis()
    except Exception:  # not every backend implements it
        stats = None
    if stats is not None:
        report["temp_bytes"] = int(stats.temp_size_in_bytes)
        report["argument_bytes"] = int(stats.argument_size_in_bytes)
        report["output_bytes"] = int(stats.output_size_in_bytes)
    device_stats = jax.devices()[0].memory_stats()  # None on CPU
    if device_stats and "peak_bytes_in_use" in device_stats:
        report["device_peak_bytes_in_use"] = int(device_stats["peak_bytes_in_use"])
    return report


def failure_reason(err: Exception) -> str:
    """'<ExceptionType>: <first line>': a failed configuration's record says why, in one short line."""
    first_line = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return f"{type(err).__name__}: {first_line[:300]}"


AT_LEAST_ONE = rule(lambda v: v >= 1, "an integer >= 1")


def distinct(values) -> bool:
    """A settings list's rule: at least one value, none repeated."""
    return len(values) > 0 and len(set(values)) == len(values)
