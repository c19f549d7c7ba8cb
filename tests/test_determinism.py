"""--deterministic: the XLA flag set before the backend starts, one line on a CPU, the switch in summaries."""

import os
import subprocess
import sys
from pathlib import Path

from esbench.runner import determinism

ROOT = Path(__file__).resolve().parents[1]

PROGRAM = """
import os
from esbench.runner import determinism
print("before:", determinism.is_on())
determinism.enable()
determinism.enable()  # a second call adds nothing
print("flags:", os.environ["XLA_FLAGS"])
print("after:", determinism.is_on())
"""


def test_the_switch_sets_the_flag_once_and_says_on_a_cpu_that_it_does_nothing():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert lines[0] == "before: False" and lines[-1] == "after: True"
    assert f"flags: --xla_force_host_platform_device_count=2 {determinism.FLAG}" in lines
    assert lines.count(determinism.CPU_NOTE) == 2  # once per call: the CLI calls it once per process


def test_a_summary_records_the_switch_and_the_layout(tmp_path, monkeypatch):
    from conftest import tiny_spec

    from esbench.results import ResultStore, load_summaries
    from esbench.runner import run_trials

    monkeypatch.setenv("XLA_FLAGS", f"{os.environ.get('XLA_FLAGS', '')} {determinism.FLAG}")
    run_trials([tiny_spec("ppo")], ResultStore(tmp_path), progress=False)
    summary = load_summaries(tmp_path).to_dict("records")[0]
    assert summary["deterministic"] is True
    assert summary["layout"]["device_count"] == 1 and summary["layout"]["sharded"] == {}
