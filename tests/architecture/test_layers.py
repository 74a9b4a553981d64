"""The package is a stack of layers: each part imports only from its own layer or the ones below,
and no two parts import each other (directly or around a circle). Read from the source with ``ast``,
every import counted, those inside functions too, so a lazy import cannot hide an upward edge."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "src" / "lstmkit"

# Bottom to top; README's layout section describes the same stack.
LAYERS: list[set[str]] = [
    {"_fileio", "_rounding", "nn"},  # layers; float32 rounding bounds
    {"stream", "formats", "data", "metrics", "__init__"},  # streaming, weight storage, data, metrics
    {"train"},  # training loop, losses, config
    {"models"},  # models built on the layers
    {"tasks"},  # end-to-end jobs, run directories, the runner
    {"compress", "export", "diagnostics"},  # run-level commands
    {"cli"},
    {"__main__"},
]
LEVEL = {part: i for i, parts in enumerate(LAYERS) for part in parts}


def _part(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _module(path: Path) -> list[str]:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ["lstmkit", *parts]


def import_edges() -> set[tuple[str, str, str]]:
    """(importing part, imported part, file) for every import of lstmkit code in the package."""
    edges = set()
    for path in ROOT.rglob("*.py"):
        here = _module(path)
        package = here if path.name == "__init__.py" else here[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[list[str]] = []
            if isinstance(node, ast.Import):
                targets = [a.name.split(".") for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = (package[: len(package) - node.level + 1] if node.level else []) + (
                    node.module.split(".") if node.module else []
                )
                # `from lstmkit import compress` imports the part named by the alias
                targets = [[*base, a.name] if base == ["lstmkit"] else base for a in node.names]
            for t in targets:
                if len(t) >= 2 and t[0] == "lstmkit" and _part(path) != t[1]:
                    edges.add((_part(path), t[1], str(path.relative_to(ROOT))))
    return edges


def test_every_part_has_a_layer():
    parts = {_part(p) for p in ROOT.rglob("*.py")}
    assert parts <= set(LEVEL), f"parts without a layer in LAYERS: {sorted(parts - set(LEVEL))}"


def test_no_import_from_a_lower_layer_to_a_higher_one():
    upward = sorted(f"{f}: {a} (layer {LEVEL[a]}) imports {b} (layer {LEVEL[b]})"
                    for a, b, f in import_edges() if b in LEVEL and LEVEL[b] > LEVEL[a])  # fmt: skip
    assert not upward, "\n".join(upward)


def test_no_cycle_between_parts():
    graph: dict[str, set[str]] = {}
    for a, b, _ in import_edges():
        graph.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            n = todo.pop()
            if n == goal:
                return True
            if n not in seen:
                seen.add(n)
                todo.extend(graph.get(n, ()))
        return False

    cycles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not cycles, f"parts that import each other: {cycles}"


def test_the_checker_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """The check itself can fail: a function-level upward import and a relative one are edges."""
    fake = tmp_path / "lstmkit"
    (fake / "nn").mkdir(parents=True)
    (fake / "nn" / "__init__.py").write_text("def f():\n    from lstmkit.tasks import runner\n")
    (fake / "nn" / "a.py").write_text("from ..train import fit\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake)
    assert import_edges() == {("nn", "tasks", "nn/__init__.py"), ("nn", "train", "nn/a.py")}


def test_import_lstmkit_loads_the_layers_only():
    """In a fresh process: the layers, cells, param_count and Stream, and no application code."""
    code = (
        "import sys, lstmkit\n"
        "assert all(hasattr(lstmkit, n) for n in ('LSTM', 'LSTMCell', 'GRU', 'RNN', 'param_count', 'Stream'))\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('lstmkit') or m.split('.')[0] in "
        "('matplotlib', 'scipy', 'PIL', 'onnx', 'onnxruntime', 'typer', 'safetensors', 'sktime', 'statsmodels'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    allowed = {"lstmkit", "lstmkit.stream"}
    extra = [m for m in out if m not in allowed and not m.startswith("lstmkit.nn")]
    assert not extra, f"import lstmkit loaded {extra}"


@pytest.mark.parametrize("part", ["tasks", "compress", "export", "models", "train", "formats"])
def test_each_part_imports_on_its_own(part):
    """A part imports in a fresh process without needing a higher one to have been imported first."""
    subprocess.run([sys.executable, "-c", f"import lstmkit.{part}"], check=True, capture_output=True)
