"""safetext: display escaping, formula-safe CSV cells, byte-exact data writes."""

from __future__ import annotations

import csv
import io
import os
import pty

import pytest

from posterlite.safetext import FORMULA_STARTS, csv_cell, csv_text, display, write_data

# Every character `display` must never let through, by class.
UNSAFE = (
    [chr(c) for c in range(0x20)]  # C0, including tab, newline, carriage return, ESC
    + ["\x7f"]  # DEL
    + [chr(c) for c in range(0x80, 0xA0)]  # C1, including CSI (0x9b) and OSC (0x9d)
    + ["\u061c", "\u200e", "\u200f", "\u2028", "\u2029"]
    + [chr(c) for c in range(0x202A, 0x202F)]  # bidi embeddings and overrides
    + [chr(c) for c in range(0x2066, 0x206A)]  # bidi isolates
    + ["\ud800", "\udfff", "\udcff"]  # lone surrogates (undecodable file-name bytes)
)


@pytest.mark.parametrize("char", UNSAFE, ids=lambda c: f"U+{ord(c):04X}")
def test_display_escapes_every_unsafe_character(char: str) -> None:
    shown = display(f"a{char}b")
    assert char not in shown and shown.startswith("a\\") and shown.endswith("b")
    assert shown.isprintable()  # nothing invisible, nothing that moves the cursor
    shown.encode("utf-8")  # no lone surrogate left to break the terminal's encoder


def test_display_escapes_are_readable_and_keep_the_rest() -> None:
    assert display("\x1b]0;pwned\x07title") == "\\x1b]0;pwned\\x07title"
    assert display("poster\nline.jpg") == "poster\\x0aline.jpg"
    assert display("\u202egpj.exe") == "\\u202egpj.exe"
    assert display("\x9b31m") == "\\x9b31m"
    assert display(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"  # the original byte
    kept = "Drame, Science-Fiction & \u00e9t\u00e9 \u65e5\u672c \U0001f3ac <b>'\"=+-@"
    assert display(kept) == kept


@pytest.mark.parametrize("start", FORMULA_STARTS)
def test_csv_cell_defuses_formula_starts(start: str) -> None:
    value = f'{start}HYPERLINK("http://127.0.0.1")'
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["Drama", "'already", "a=b", " =1+1", "", "0.123456", "x-y"])
def test_csv_cell_leaves_plain_text(value: str) -> None:
    assert csv_cell(value) == value


def test_csv_text_rows_read_back_exactly_but_defused() -> None:
    rows = [
        ["path", "=cmd|' /C calc'!A0", 'quote"comma,', "new\nline"],
        ["@SUM(A1)", "\x1b]0;t\x07", "\tTab", "-2+3"],
        ["mid\rreturn.jpg", "\rlead", "tail\r", "plain"],
    ]
    text = csv_text(rows)
    back = list(csv.reader(io.StringIO(text)))
    assert back == [[csv_cell(cell) for cell in row] for row in rows]
    assert all(not cell.startswith(FORMULA_STARTS) for row in back for cell in row)
    assert back[1][1] == "\x1b]0;t\x07"  # data stays data: only formula starts change


def test_write_data_is_byte_exact_off_a_terminal() -> None:
    name = os.fsdecode(b"\xff\x1b[31m.jpg")
    stream = io.BytesIO()
    write_data(stream, f"path\n{name}\n")
    assert stream.getvalue() == b"path\n\xff\x1b[31m.jpg\n"


def test_write_data_on_a_terminal_is_displayed() -> None:
    leader, follower = pty.openpty()
    try:
        with os.fdopen(follower, "wb", closefd=False) as terminal:
            write_data(terminal, "path\n\x1b]0;pwned\x07.jpg\n")
        seen = os.read(leader, 1024)
    finally:
        os.close(leader)
        os.close(follower)
    assert b"\x1b" not in seen and b"\x07" not in seen
    assert b"\\x1b]0;pwned\\x07.jpg" in seen
