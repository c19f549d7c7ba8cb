"""The `cuda` extra: jax[cuda12] and every wheel it pulls, pinned, and the pins resolve together.

The resolution test asks the package index (a pip dry run: wheel metadata, no install); it is skipped,
saying why, where the index cannot be reached or this is not Linux (the nvidia-* wheels are Linux only).
"""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\[\]-]+)==([^;\s]+)")


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", requirement.split("[")[0]).lower()


def cuda_pins() -> dict[str, str]:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["cuda"]
    pins = {}
    for requirement in extra:
        match = PIN.match(requirement)
        assert match, f"the cuda extra's {requirement!r} is not pinned with =="
        pins[_name(match[1])] = match[2]
    return pins


def constraints() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {_name(m[1]): m[2] for m in map(PIN.match, lines) if m}


def test_every_cuda_pin_is_the_constraints_pin():
    pins, constrained = cuda_pins(), constraints()
    assert {"jax", "jax-cuda12-plugin", "jax-cuda12-pjrt"} <= set(pins)
    assert any(name.startswith("nvidia-") for name in pins)
    assert {name: constrained.get(name) for name in pins} == pins


def _pip(*args, timeout=90):
    return subprocess.run(
        [sys.executable, "-m", "pip", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the nvidia-* wheels are Linux only")
def test_the_cuda_extra_resolves_to_exactly_its_pins(tmp_path):
    try:
        probe = _pip("index", "versions", "jax-cuda12-pjrt", timeout=30)
    except subprocess.TimeoutExpired:
        pytest.skip("the package index did not answer within 30 s: cannot resolve the cuda extra")
    if probe.returncode != 0 or "0.9.0" not in probe.stdout:
        pytest.skip(f"the package index has no jax-cuda12-pjrt 0.9.0: {probe.stderr.strip()[-300:]}")
    pins = cuda_pins()
    requirements = tmp_path / "cuda.txt"
    requirements.write_text("".join(f"{name}=={version}\n" for name, version in pins.items()))
    report = tmp_path / "report.json"
    done = _pip(
        "install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
        "-c", "constraints.txt", "-r", str(requirements),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    installs = json.loads(report.read_text())["install"]
    resolved = {_name(i["metadata"]["name"]): i["metadata"]["version"] for i in installs}
    assert {name: resolved.get(name) for name in pins} == pins
    # whatever else it pulls (numpy, scipy, ...) is what constraints.txt pins: one environment
    constrained = constraints()
    assert {name: constrained.get(name) for name in resolved} == resolved
