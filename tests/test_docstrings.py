"""Every module, public class and public function (methods included) of the bench, cli and
data packages, the registries and the layered packages has a docstring (read with `ast`; what it says,
what it returns and raises, is reviewed, not tested)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "posterlite"
PACKAGES = ("bench", "cli", "data", "metadata", "backbones", "browser")
MODULES = ("archs", "formats", "tflite_file", "interpreter", "convert", "convert_report")
CHECKED = [
    *(path for name in PACKAGES for path in sorted((PACKAGE / name).rglob("*.py"))),
    *(PACKAGE / f"{name}.py" for name in MODULES),
]


def undocumented(path: Path) -> list[str]:
    """`path`'s module, public classes and public functions without a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    missing = [] if ast.get_docstring(tree) else ["module"]

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if not child.name.startswith("_") and not ast.get_docstring(child):
                    missing.append(f"{prefix}{child.name} (line {child.lineno})")
                if isinstance(child, ast.ClassDef):
                    visit(child, f"{child.name}.")

    visit(tree, "")
    return missing


def test_layered_modules_document_every_public_name() -> None:
    missing = {str(p.relative_to(PACKAGE)): undocumented(p) for p in CHECKED}
    assert {k: v for k, v in missing.items() if v} == {}


def test_the_check_finds_a_missing_docstring(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""doc"""\n\n\nclass A:\n    def run(self):\n        pass\n')
    assert undocumented(module) == ["A (line 4)", "A.run (line 5)"]
