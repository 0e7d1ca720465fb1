"""The package layering that docs/architecture.md describes, checked on the source: each
package of astroloom imports only the packages below it (lazy imports inside functions
count too), so that the map in the docs stays true."""

import ast
from pathlib import Path

import astroloom

ROOT = Path(astroloom.__file__).parent

# package → the astroloom packages it may import (besides itself).
ALLOWED = {
    "config": set(),
    "paths": set(),
    "data": {"config", "paths"},
    "tokenize": {"data"},
    "model": {"config", "data", "tokenize", "paths"},
    "train": {"config", "data", "tokenize", "model", "paths"},
    "discover": {"data"},
    "report": {"data"},
    "interpret": {"data", "tokenize", "model", "report", "paths"},
    "evaluate": {
        "config", "data", "tokenize", "model", "train", "discover", "interpret", "paths"
    },
    "explore": {
        "data", "tokenize", "model", "evaluate", "discover", "interpret", "report", "generate",
        "paths",
    },
    "scaling": {"config", "model", "train"},
    "generate": {"config", "data", "tokenize", "model", "evaluate", "report", "paths"},
    "demo": {
        "config", "data", "tokenize", "model", "train", "evaluate", "discover", "report",
        "generate", "interpret", "paths",
    },
}


def package_of(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[0].removesuffix(".py")


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "astroloom" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_package_imports_only_the_layers_below_it():
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        package = package_of(path)
        if package in ("__init__", "cli", "__main__"):
            continue  # the command line composes everything
        assert package in ALLOWED, f"{package} is missing from the layer map"
        for used in imported_packages(path) - {package}:
            if used not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)} imports astroloom.{used}")
    assert not wrong, "imports against the layering in docs/architecture.md:\n" + "\n".join(wrong)


def test_the_checker_sees_lazy_imports(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("def f():\n    from astroloom.train.loop import train\n")
    assert imported_packages(source) == {"train"}
