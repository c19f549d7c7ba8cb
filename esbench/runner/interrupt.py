"""Graceful stop: SIGINT / SIGTERM finish the current chunk, save a checkpoint, then end the run.

    with graceful_stop() as stop:      # installs the handlers (main thread), restores them after
        ...                            # the trial loop checks `stop.requested` after every chunk

A second signal while stopping is not caught again: it interrupts at once.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading


class Interrupted(Exception):
    """A run stopped on request after saving its checkpoints; rerunning the same command resumes it."""


class StopRequest:
    def __init__(self):
        self.signal: int | None = None

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def _handle(self, signum, frame):
        self.signal = signum
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGTERM else signal.default_int_handler)
        print(
            f"\n{signal.Signals(signum).name}: stopping after the current chunk (a checkpoint is saved); "
            "signal again to stop at once",
            file=sys.stderr,
            flush=True,
        )


@contextlib.contextmanager
def graceful_stop():
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():  # handlers can only be set there
        yield stop
        return
    previous = {s: signal.signal(s, stop._handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
