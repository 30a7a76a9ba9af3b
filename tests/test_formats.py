"""posterlite.formats: the one registry of `.tflite` formats, and the places that read it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from click.testing import CliRunner

from posterlite.cli import main
from posterlite.errors import PosterliteError
from posterlite.formats import (
    ALL,
    FLOAT_FORMAT,
    FORMAT_CHOICES,
    FORMAT_NAMES,
    FORMAT_SPECS,
    SHIPPED_FORMAT,
    format_spec,
    is_format,
)

PACKAGE = Path(__file__).resolve().parents[1] / "posterlite"


def test_specs_are_unique_and_the_float_format_comes_first() -> None:
    assert FORMAT_NAMES == ("fp32", "fp16", "dynamic", "int8")
    assert len({spec.marker for spec in FORMAT_SPECS}) == len(FORMAT_SPECS)
    # convert_model measures every size against the float file, so it is converted first
    assert FORMAT_NAMES[0] == FLOAT_FORMAT
    assert SHIPPED_FORMAT in FORMAT_NAMES
    assert FORMAT_CHOICES == (*FORMAT_NAMES, ALL)


def test_what_the_converter_is_told() -> None:
    fp32, fp16, dynamic, int8 = (format_spec(name) for name in FORMAT_NAMES)
    assert not fp32.optimize and not fp32.calibrated and fp32.io_type is None
    assert fp16.optimize and fp16.supported_types == ("float16",)
    assert dynamic.optimize and not dynamic.supported_types and not dynamic.calibrated
    assert int8.calibrated and int8.io_type == "uint8"
    assert int8.supported_ops == ("TFLITE_BUILTINS_INT8",)
    # only full-integer int8 needs calibration posters
    assert [s.name for s in FORMAT_SPECS if s.calibrated] == ["int8"]


def test_file_names_and_lookups() -> None:
    assert format_spec("int8").file_name("cnn") == "cnn.int8.tflite"
    assert format_spec("fp16").suffix == ".fp16.tflite"
    assert is_format("dynamic") and not is_format("all") and not is_format("tflite")
    with pytest.raises(PosterliteError, match=r"unknown format 'fp8' \(choose fp32, .*, all\)"):
        format_spec("fp8")


def test_the_cli_reads_the_registry() -> None:
    result = CliRunner().invoke(main, ["convert", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for spec in FORMAT_SPECS:
        assert spec.name in text
        assert " ".join(spec.description.split()) in text
    bad = CliRunner().invoke(main, ["convert", "x", "--format", "fp8"])
    assert bad.exit_code == 2 and "fp8" in bad.output


def _string_constants(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_no_other_module_lists_the_formats() -> None:
    """The names of the formats other than the shipped one appear as string constants only
    in the registry (`int8` is also a dtype name and a record's key, so it is not counted)."""
    others = {name for name in FORMAT_NAMES if name != SHIPPED_FORMAT}
    found = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if "node_modules" not in path.parts and others & _string_constants(path)
    }
    assert found == {"formats.py"}
