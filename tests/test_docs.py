"""The Python examples in the docs run as written (each in a fresh working directory)."""

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(python_blocks(DOCS / "architecture.md"))))
def test_architecture_examples_run(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = python_blocks(DOCS / "architecture.md")[index]
    exec(compile(code, f"architecture.md block {index}", "exec"), {"__name__": "__doc__"})
