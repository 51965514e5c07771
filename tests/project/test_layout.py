"""The layout's rules, read from the source with ``ast``: imports run one way (no circle among
the project's modules, function-level imports included), and every module stays readable
(at most 300 lines)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("freezeout", "analysis", "hydra_plugins")
MAX_LINES = 300


def module_name(path: Path) -> str:
    """The installed name: ``analysis/`` installs as ``freezeout.analysis`` (setup.py)."""
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[0] == "analysis":
        parts = ["freezeout", *parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}


def imported_modules(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Every project module ``path`` imports, at any depth of its code, with the packages Python
    runs on the way (importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                # a module's own packages have run before it: importing them is no edge
                if candidate in modules and candidate != name and not name.startswith(candidate + "."):
                    found.add(candidate)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {name: imported_modules(path, name, modules) for name, path in modules.items()}


def test_no_import_circle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_find_cycle_sees_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def test_freezeout_imports_nothing_of_analysis():
    graph = import_graph()
    upward = sorted(f"{m} -> {t}" for m, ts in graph.items()
                    if m.startswith("freezeout") and not m.startswith("freezeout.analysis")
                    for t in ts if t.startswith("freezeout.analysis"))
    assert not upward


def test_config_is_the_schema_alone():
    """config.py imports nothing of the project but errors, the run's identity keys and FreezeOut's
    settings (leaves), so every package may import the schema; registering it loads the freezing
    rules, whose schemas are theirs (torch-free declarations, which never import config)."""
    graph = import_graph()
    assert graph["freezeout.config"] <= {"freezeout", "freezeout.errors", "freezeout.rundir",
                                         "freezeout.rundir.identity", "freezeout.freezing",
                                         "freezeout.freezing.schedule", "freezeout.freezing.rules"}
    assert graph["freezeout.rundir.identity"] <= {"freezeout", "freezeout.rundir"}
    assert graph["freezeout.freezing.schedule"] <= {"freezeout", "freezeout.freezing"}


def test_rundir_is_torch_free_at_import():
    """analysis imports the run directory's records without paying for torch."""
    for path in (REPO / "freezeout" / "rundir").rglob("*.py"):
        top = [n for n in ast.parse(path.read_text()).body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in top if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(n == "torch" or n.startswith("torch.") for n in names), path


def test_top_level_of_freezeout_is_small():
    allowed = {"__init__.py", "__main__.py", "config.py", "errors.py"}
    assert {p.name for p in (REPO / "freezeout").glob("*.py")} <= allowed


@pytest.mark.parametrize("path", sorted(p.relative_to(REPO).as_posix() for pkg in PACKAGES
                                        for p in (REPO / pkg).rglob("*.py")))
def test_module_at_most_300_lines(path):
    lines = len((REPO / path).read_text().splitlines())
    assert lines <= MAX_LINES, f"{path} has {lines} lines (at most {MAX_LINES})"


def test_no_text_cites_a_file_the_project_does_not_have():
    """Docstrings, comments and configs name files of this repository only, and ones that exist."""
    texts = [p for pkg in (*PACKAGES, "tests", "conf", "sweeps") for p in (REPO / pkg).rglob("*")
             if p.suffix in (".py", ".yaml") and p.name not in ("test_layout.py", "test_docs.py")]  # (examples)
    missing = sorted({f"{p.relative_to(REPO)}: {m}" for p in texts
                      for m in re.findall(r"(?<![\w/.])(?:freezeout|analysis|hydra_plugins)/[\w/]+\.py", p.read_text())
                      if not (REPO / m).exists()})
    assert not missing, missing
    assert not [p for p in texts if "DESIGN" in p.read_text()]
