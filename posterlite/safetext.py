"""Text from a model or a file on its way out: escaped for the terminal, formula-safe in CSV.

Labels, model names and poster file names are data someone else chose. Two helpers keep
them data wherever posterlite shows or writes them:

- `display` for every human-readable line (terminal, stderr errors): control characters
  (C0, DEL, C1), bidi overrides/isolates/marks, line and paragraph separators and bytes
  that were not UTF-8 become visible escapes (`\\x1b`, `\\u202e`, `\\xff`), so a label or
  file name can neither send a terminal escape sequence (title, colours, hyperlinks),
  reorder the text around it, nor break one line into two.
- `csv_text` for every CSV report built from such text: a cell starting with a character
  spreadsheets read as a formula gets a leading `'` (OWASP's CSV-injection advice), and
  nothing else changes -- the file name in a cell stays exact.

Data files are written byte-exact (`write_data`): JSON is ASCII with escapes by
construction, CSV keeps every character; only when the stream is a terminal does data
get `display`ed, line by line. posterlite's own manifests (read back by posterlite) are
not reports and are not escaped.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence
from typing import BinaryIO

# C0 (incl. tab, newline), DEL, C1; Arabic letter mark, LRM/RLM, line/paragraph
# separators, bidi embeddings/overrides (202A-202E) and isolates (2066-2069); lone
# surrogates (a file name's non-UTF-8 bytes, decoded with surrogateescape).
_UNSAFE_FOR_DISPLAY = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)
# First characters a spreadsheet takes for a formula (OWASP, ASVS 1.2.10), plus line
# breaks, NUL and the fullwidth forms some spreadsheets normalize on input.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0", "＝", "＋", "－", "＠")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the original byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def display(text: str) -> str:
    """`text` for a terminal line: unsafe characters as visible escapes, all else kept."""
    return _UNSAFE_FOR_DISPLAY.sub(_escape, text)


def csv_cell(value: str) -> str:
    """`value` with a leading `'` when a spreadsheet would evaluate it as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """Rows as CSV (RFC 4180 quoting, `\\n` line ends), every cell through `csv_cell`."""
    buffer = io.StringIO()
    plain = csv.writer(buffer, lineterminator="\n")
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_ALL)
    for row in rows:
        cells = [csv_cell(cell) for cell in row]
        # `csv` quotes a cell for the line terminator's characters only: a bare \r inside a
        # cell would end the row for readers that take \r as a line break. Such rows are
        # quoted whole.
        (quoted if any("\r" in cell for cell in cells) else plain).writerow(cells)
    return buffer.getvalue()


def write_data(stream: BinaryIO, text: str) -> None:
    """Write a data document (CSV, JSON) to a binary stream, byte-exact.

    File names that were not UTF-8 go back out as their original bytes (surrogateescape),
    so a CSV row names the real file. A terminal gets `display`ed lines instead: data on
    screen is read by a person, and must not drive the terminal.
    """
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        text = "\n".join(display(line) for line in text.split("\n"))
    stream.write(text.encode("utf-8", "surrogateescape"))
    stream.flush()
