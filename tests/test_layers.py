"""The shape of the code: layers that hold (no module imports one above its layer, no import cycles), files small
enough to read in one sitting, and no code outside a modality plugin that tests a modality's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from genlab import registry

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 400

# bottom to top: a module may import its own layer and the ones below, never one above (most specific prefix wins)
LAYERS: list[tuple[str, ...]] = [
    ("genlab.errors", "genlab.files", "genlab.version", "genlab.numbers", "genlab.registry", "genlab.config",
     "genlab.runfiles", "genlab.settings", "genlab.progress", "genlab.usage", "genlab.memory", "genlab.lock"),
    ("genlab.nets", "genlab.data", "genlab.sample", "genlab.evaluate", "genlab.train", "genlab.responsible"),
    ("genlab.modalities",),
    ("genlab.models",),
    ("genlab.responsible.release", "genlab.responsible.audit", "genlab.responsible.card",
     "genlab.responsible.card_sections", "genlab.responsible.energy_record"),
    ("genlab.runs",),
    ("genlab.api", "genlab.responsible.verify"),
    ("genlab", "genlab.demo"),
    ("genlab.serve",),
    ("genlab.cli", "genlab.__main__"),
]


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / "genlab").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Every genlab module ``path`` imports, at module level or inside functions."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "genlab"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "genlab":
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                out.add(sub if sub in known else node.module)
    return {m for m in out if m in known}


def layer(module: str) -> int:
    best = max((p for group in LAYERS for p in group if module == p or module.startswith(p + ".")), key=len,
               default=None)
    assert best is not None, f"{module} has no layer: add it to LAYERS in {Path(__file__).name}"
    return next(i for i, group in enumerate(LAYERS) if best in group)


def test_no_module_imports_one_above_its_layer():
    known = modules()
    upward = [f"{m} (layer {layer(m)}) imports {i} (layer {layer(i)})"
              for m, path in known.items() for i in sorted(imports(path, known)) if layer(i) > layer(m)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    known = modules()
    graph = {m: imports(p, known) - {m} for m, p in known.items()}
    cycles = [c for c in _strongly_connected(graph) if len(c) > 1]
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(sorted(c)) for c in cycles)


def test_source_files_are_small_enough_to_read():
    long = {str(p.relative_to(SRC)): n for p in (SRC / "genlab").rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_only_plugins_and_the_registry_test_a_modality_by_name():
    names = set(registry.MODALITIES)
    offenders = []
    for path in (SRC / "genlab").rglob("*.py"):
        rel = path.relative_to(SRC / "genlab").as_posix()
        if rel.startswith("modalities/") or rel == "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                for side in (node.left, *node.comparators):
                    if _names(side) & names:
                        offenders.append(f"{rel}:{node.lineno} compares with {sorted(_names(side) & names)}")
            elif isinstance(node, ast.Dict) and len(_names(*[k for k in node.keys if k is not None]) & names) >= 2:
                offenders.append(f"{rel}:{node.lineno} a table keyed by modality names")
    assert not offenders, "\n".join(offenders)


def _names(*nodes: ast.AST) -> set[str]:
    """String constants in ``nodes`` (directly, or inside a tuple, list or set literal)."""
    out = set()
    for node in nodes:
        elts = node.elts if isinstance(node, (ast.Tuple, ast.List, ast.Set)) else [node]
        out |= {e.value for e in elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return out


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iteratively."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[set[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                out.append(component)
    return out


@pytest.mark.parametrize("rule", [test_no_module_imports_one_above_its_layer, test_no_import_cycles])
def test_the_checks_catch_what_they_should(rule, tmp_path, monkeypatch):
    # Setup: a tiny tree where errors.py imports the CLI (upward) and the CLI imports errors (a cycle)
    pkg = tmp_path / "genlab"
    (pkg / "cli").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("from genlab.cli import main\n")
    (pkg / "cli" / "__init__.py").write_text("from genlab.errors import X\n\ndef main():\n    pass\n")
    monkeypatch.setattr(__import__(__name__), "SRC", tmp_path)
    # Run / Assert
    with pytest.raises(AssertionError):
        rule()
