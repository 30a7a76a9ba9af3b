"""Every module, public class and public function (methods included) of the bench, cli and
data packages, the registries, the layered packages, the runtime and training modules has a docstring (read with `ast`; what it says,
what it returns and raises, is reviewed, not tested)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "posterlite"
# The training modules mypy checks (pyproject [tool.mypy] files), by name.
TRAIN_MODULES = (
    "__init__",
    "blocks",
    "config",
    "dataset",
    "distill",
    "finetune",
    "grid",
    "heads",
    "models",
    "reports",
    "run",
)
PACKAGES = ("bench", "cli", "data", "metadata", "backbones", "browser")
MODULES = (
    "archs",
    "formats",
    "tflite_file",
    "interpreter",
    "convert",
    "convert_report",
    "apprun",
    "runtime",
    "preprocess",
    "posterfiles",
    "fileio",
    "safetext",
    "genres",
    "errors",
    "card",
    "metrics",
    "smote",
    "manifest",
    *(f"train/{name}" for name in TRAIN_MODULES),
)
CHECKED = [
    *(path for name in PACKAGES for path in sorted((PACKAGE / name).rglob("*.py"))),
    *(PACKAGE / f"{name}.py" for name in MODULES),
]


def _is_overload(node: ast.AST) -> bool:
    """True for a function decorated `@overload` / `@typing.overload`."""
    decorators = getattr(node, "decorator_list", [])
    return any(ast.unparse(d).split(".")[-1] == "overload" for d in decorators)


def undocumented(path: Path) -> list[str]:
    """`path`'s module, public classes and public functions without a docstring."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    missing = [] if ast.get_docstring(tree) else ["module"]

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if _is_overload(child):
                    continue  # an @overload signature: the implementation carries the docstring
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


def test_overload_signatures_need_no_docstring_but_the_implementation_does(
    tmp_path: Path,
) -> None:
    module = tmp_path / "m.py"
    module.write_text(
        '"""doc"""\nfrom typing import overload\n\n\n@overload\ndef f(x: int) -> int: ...\n'
        "@overload\ndef f(x: str) -> str: ...\ndef f(x):\n    return x\n"
    )
    assert undocumented(module) == ["f (line 9)"]
