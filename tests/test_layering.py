"""Data flows one way (the project design's layers): no module of a lower layer imports a higher one, lazily or not."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "esbench"
# Bottom to top. The helpers below the layers (quiet, validation, faults, provenance, plugins, the package's own
# __init__) import no layer; the paper's tables sit just above envs (they map the paper's ids to esbench's).
LAYERS = [
    "",
    "quiet",
    "validation",
    "faults",
    "provenance",
    "plugins",
    "envs",
    "paper",
    "algorithms",
    "results",
    "runner",
    "report",
    "video",
    "bench",
    "cli",
]
HELPERS = {"", "quiet", "validation", "faults", "provenance", "plugins"}


def layer_of(module: str) -> str:
    """'esbench.runner.trial' -> 'runner'; 'esbench' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def esbench_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules |= {a.name for a in node.names if a.name.split(".")[0] == "esbench"}
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and (node.module or "").split(".")[0] == "esbench"
        ):
            modules.add(node.module)
    return modules


def test_every_module_belongs_to_a_layer():
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("esbench", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        assert layer_of(module) in LAYERS, module


def test_no_layer_imports_a_layer_above_it():
    offences = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(("esbench", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        own = layer_of(module)
        for imported in esbench_imports(path):
            target = layer_of(imported)
            if target == own or target == "":
                continue
            if target not in HELPERS and (own in HELPERS or LAYERS.index(target) > LAYERS.index(own)):
                offences.append(f"{module} imports {imported}")
    assert not offences, offences
