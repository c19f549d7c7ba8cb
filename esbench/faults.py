"""Faults of the machine (disk, file system, memory, workers), as opposed to bad input (validation.py).

A `MachineFault` carries a message that already says, in one line, what failed, why in plain
words, what was kept and how to go on; the CLI prints it and exits with EXIT_MACHINE_FAULT.
"""

from __future__ import annotations


class MachineFault(Exception):
    """A fault of the machine, described in one line (what, why, what was kept, how to go on)."""
