"""The package's shape: no module imports one that imports it back, even lazily."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(path: Path, package: str) -> set[str]:
    """The package's modules that a module imports anywhere in it (top level or in a function)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == package:
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(f"{package}."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith(f"{package}.")}
    return names - {path.stem}


def circles(package: str) -> list[str]:
    folder = ROOT / package
    modules = {p.stem for p in folder.glob("*.py")}
    graph = {p.stem: imports_of(p, package) & modules for p in folder.glob("*.py")}

    def reaches(start: str, goal: str, seen: frozenset) -> bool:
        return any(d == goal or (d not in seen and reaches(d, goal, seen | {d})) for d in graph[start])

    return sorted(m for m in graph if reaches(m, m, frozenset()))


def test_casestudy_has_no_import_circle():
    assert circles("casestudy") == []


def test_autograder_has_no_import_circle():
    assert circles("autograder") == []


def test_the_circle_check_sees_a_lazy_circle(tmp_path, monkeypatch):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "a.py").write_text("def f():\n    from pkg import b\n")
    (package / "b.py").write_text("from pkg.a import f\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", tmp_path)
    assert circles("pkg") == ["a", "b"]
