"""The code reads top-down in short pieces: no function of the package, the tools or the
benchmarks is longer than 70 lines (docstring included)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 70


def long_functions(paths, root: Path = ROOT) -> list[str]:
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > LIMIT:
                    found.append(f"{path.relative_to(root)}: {node.name} ({length} lines)")
    return found


def test_no_function_is_longer_than_70_lines():
    paths = [p for folder in ("resnet_nb", "tools", "benchmarks")
             for p in sorted((ROOT / folder).glob("*.py"))]
    assert len(paths) > 30
    assert long_functions(paths) == []


def test_a_long_function_is_found(tmp_path):
    (tmp_path / "x.py").write_text("class A:\n    def f(self):\n" + "        x = 1\n" * LIMIT)
    assert long_functions([tmp_path / "x.py"], tmp_path) == ["x.py: f (71 lines)"]
