"""A quiet CLI: the known third-party import noise is silenced, real warnings still pass."""

import logging
import os
import subprocess
import sys
import warnings

import esbench  # noqa: F401  (installs the filters)
from esbench import quiet


def test_esbench_envs_first_line_is_esbench_s():
    # brax (warp, the maintenance warning) and jumanji/craftax (grain's absl warning) are imported by the listing
    # as a user runs it: without the test session's compilation cache (XLA logs its own lines on loading)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    proc = subprocess.run(
        [sys.executable, "-m", "esbench.cli", "envs"], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    output = proc.stderr + proc.stdout  # anything on stderr would come first on a terminal
    first = output.lstrip().splitlines()[0]
    assert "Registered environments" in first, output[:2000]
    for noise in (
        "Failed to import warp",
        "Failed to import mujoco_warp",
        "not actively being maintained",
        "Grain multiprocess worker profiling",
    ):
        assert noise not in output


def test_only_the_named_noise_is_silenced(capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        quiet.install()  # idempotent, and `simplefilter` above must not be what lets the real one through
        warnings.filterwarnings("ignore", message=quiet.BRAX_MAINTENANCE, category=UserWarning)
        warnings.warn(
            "Brax System, piplines and environments are not actively being maintained. Please see MJX"
        )
        warnings.warn("a real warning from a user's env")
    assert [str(w.message) for w in caught] == ["a real warning from a user's env"]

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    absl = logging.getLogger("absl")
    absl.addHandler(handler)
    try:
        absl.warning("Grain multiprocess worker profiling requires jaxlib extension version 448 or later")
        absl.warning("a real absl warning")
    finally:
        absl.removeHandler(handler)
    assert [r.getMessage() for r in records] == ["a real absl warning"]

    stream = quiet._DropLines(sys.stdout, quiet.WARP_LINES)
    print("Failed to import warp:", "No module named 'warp'", file=stream)
    print("a real line", file=stream)
    stream.close_pending()
    assert capsys.readouterr().out == "a real line\n"
