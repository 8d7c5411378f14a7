"""The shape of the code: the package's import graph points one way, actviz never imports Streamlit
nor the dashboard's pages, and the pages never import the dashboard's entry (app.py)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "actviz"
#: The dashboard's pages and the wiring they share, framed by app.py.
VIEWS = ROOT / "views"
#: Front ends: the command line and the notebook API sit on top; nothing in the package leans on them.
FRONT_ENDS = {"actviz.cli", "actviz.__main__", "actviz.api", "actviz.results"}


def import_graph() -> dict[str, set[str]]:
    """Module -> the actviz modules it imports (at any depth in the file: lazy imports count too)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = ".".join(parts[:-1])
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                names = [f"{base}.{alias.name}" for alias in node.names]
                edges |= {n for n in names if _is_module(n)} or {base}
            elif isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names}
        graph[module] = {e for e in edges if e.startswith("actviz") and e != module and e != "actviz"}
    return graph


def _is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def test_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, str] = {}

    def visit(module, trail):
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join(trail + [module])}"
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            visit(target, trail + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])


def test_front_ends_are_on_top():
    graph = import_graph()
    for module, targets in graph.items():
        if module in FRONT_ENDS or module == "actviz":
            continue
        assert not targets & FRONT_ENDS, f"{module} imports a front end: {sorted(targets & FRONT_ENDS)}"


def test_the_package_never_imports_streamlit():
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(name.split(".")[0] == "streamlit" for name in names), path
    code = "import sys, actviz, actviz.cli, actviz.api; print('streamlit' in sys.modules, 'tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.stdout.strip() == "False False", done.stderr


def _absolute_imports(path: Path) -> set[str]:
    """The top-level names of the modules a file imports by absolute name (relative imports stay in their package)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_pages_import_nothing_from_the_entry():
    """app.py runs the pages; what they share is views/common.py, never the entry."""
    pages = sorted(VIEWS.rglob("*.py"))
    assert len(pages) >= 9, pages  # eight pages and the wiring they share
    for path in pages:
        assert "app" not in _absolute_imports(path), f"{path} imports app.py: move what it needs to views/common.py"


def test_the_package_never_imports_the_pages():
    for path in PACKAGE.rglob("*.py"):
        assert "views" not in _absolute_imports(path), f"{path} imports the dashboard's pages"


def test_docstring_examples_run():
    """The >>> examples of the modules that need no model are run (the others are marked +SKIP)."""
    import doctest
    import importlib

    for name in ("actviz.draw.grids", "actviz.draw.resample", "actviz.draw.stats", "actviz.core.predictions", "actviz.text", "actviz.serve.stores", "actviz.explainers.registry", "actviz.explainers.occlusion", "actviz.dataset.views", "actviz.settings", "actviz.serve.server",
                 "actviz.explainers.checks", "actviz.draw.rounding", "actviz.draw.tables", "actviz.core.batches", "actviz.concepts.crops", "actviz.concepts.factorise", "actviz.concepts.shortcuts", "actviz.concepts.tcav"):
        module = importlib.import_module(name)
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.failed == 0 and result.attempted > 0, (name, result)
