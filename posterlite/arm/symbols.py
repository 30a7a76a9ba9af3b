"""Which functions the guest's instructions were spent in: counted blocks -> ELF symbols.

The counting plugin reports translation blocks by guest address; the guest script reports
its /proc/self/maps lines for shared objects. An address inside an executable mapping of
a file is turned into that file's ELF virtual address (through its PT_LOAD segments) and
then into the function symbol covering it (`.symtab`, else `.dynsym`). The aarch64
`libpywrap_litert_common.so` in LiteRT's wheel is not stripped, so XNNPACK's micro-kernels
appear by name (e.g. `xnn_qs8_qc8w_gemm_minmax_fp32_ukernel_4x16c4__asm_aarch64_neondot_ld128`).

Only the standard library is used: a little-endian ELF64 reader of program headers and
symbol tables, enough for the aarch64 libraries here.
"""

from __future__ import annotations

import bisect
import functools
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_ELF_MAGIC = b"\x7fELF"
_PT_LOAD = 1
_SHT_SYMTAB = 2
_SHT_DYNSYM = 11
_STT_FUNC = 2
_STT_GNU_IFUNC = 10  # glibc's memcpy & co. are resolved at load time
UNKNOWN = "?"


@dataclass(frozen=True)
class Block:
    """One counted translation block: start address, instructions, executions."""

    vaddr: int
    insns: int
    execs: int

    @property
    def instructions(self) -> int:
        return self.insns * self.execs


@dataclass(frozen=True)
class Mapping:
    """One executable mapping from /proc/self/maps."""

    start: int
    end: int
    offset: int
    path: str


@dataclass(frozen=True)
class SymbolTable:
    """Function symbols of one ELF file, sorted by address, and its loadable segments."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    names: tuple[str, ...]
    segments: tuple[tuple[int, int, int], ...]  # (file offset, vaddr, file size) per PT_LOAD

    def vaddr_of(self, file_offset: int) -> int | None:
        for seg_offset, seg_vaddr, size in self.segments:
            if seg_offset <= file_offset < seg_offset + size:
                return seg_vaddr + file_offset - seg_offset
        return None

    def name_at(self, vaddr: int) -> str:
        index = bisect.bisect_right(self.starts, vaddr) - 1
        if index >= 0 and vaddr < max(self.ends[index], self.starts[index] + 1):
            return self.names[index]
        return UNKNOWN


def parse_maps(text: str) -> list[Mapping]:
    """Executable, file-backed lines of /proc/self/maps."""
    mappings = []
    for line in text.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or "x" not in parts[1]:
            continue
        start, end = (int(v, 16) for v in parts[0].split("-"))
        mappings.append(Mapping(start, end, int(parts[2], 16), parts[5].strip()))
    return mappings


def parse_blocks(lines: Iterable[str]) -> list[Block]:
    """The plugin's `tb VADDR_HEX INSNS EXECS` lines."""
    blocks = []
    for line in lines:
        if line.startswith("tb "):
            _, vaddr, insns, execs = line.split()
            blocks.append(Block(int(vaddr, 16), int(insns), int(execs)))
    return blocks


def _sections(data: bytes) -> list[tuple[int, int, int, int, int]]:
    """(type, offset, size, link, entsize) of every section header."""
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    headers = []
    for i in range(shnum):
        base = shoff + i * shentsize
        _, sh_type, _, _, offset, size, link, _, _, entsize = struct.unpack_from(
            "<IIQQQQIIQQ", data, base
        )
        headers.append((sh_type, offset, size, link, entsize))
    return headers


def _segments(data: bytes) -> tuple[tuple[int, int, int], ...]:
    (phoff,) = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    segments = []
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize
        )
        if p_type == _PT_LOAD:
            segments.append((p_offset, p_vaddr, p_filesz))
    return tuple(segments)


@functools.lru_cache(maxsize=32)
def read_symbols(path: str) -> SymbolTable:
    """Function symbols of the ELF64 little-endian file at `path` (empty if unreadable)."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return SymbolTable((), (), (), ())
    if data[:4] != _ELF_MAGIC or data[4] != 2 or data[5] != 1:
        return SymbolTable((), (), (), ())
    sections = _sections(data)
    wanted = [s for s in sections if s[0] == _SHT_SYMTAB] or [
        s for s in sections if s[0] == _SHT_DYNSYM
    ]
    symbols: dict[int, tuple[int, str]] = {}
    for _, offset, size, link, entsize in wanted:
        strtab_offset = sections[link][1]
        for base in range(offset, offset + size, entsize or 24):
            st_name, st_info, _, _, st_value, st_size = struct.unpack_from("<IBBHQQ", data, base)
            if st_info & 0xF not in (_STT_FUNC, _STT_GNU_IFUNC) or st_value == 0:
                continue
            end = data.index(b"\0", strtab_offset + st_name)
            name = data[strtab_offset + st_name : end].decode("utf-8", "replace")
            # Keep the longest name at an address: aliases are usually shorter wrappers.
            if st_value not in symbols or st_size > symbols[st_value][0]:
                symbols[st_value] = (st_size, name)
    ordered = sorted(symbols.items())
    return SymbolTable(
        starts=tuple(a for a, _ in ordered),
        ends=tuple(a + size for a, (size, _) in ordered),
        names=tuple(name for _, (_, name) in ordered),
        segments=_segments(data),
    )


def symbol_of(vaddr: int, mappings: list[Mapping], starts: list[int]) -> tuple[str, str]:
    """(file name, function) holding guest address `vaddr`; ("?", "?") outside any file."""
    index = bisect.bisect_right(starts, vaddr) - 1
    if index < 0 or vaddr >= mappings[index].end:
        return UNKNOWN, UNKNOWN
    mapping = mappings[index]
    table = read_symbols(mapping.path)
    file_vaddr = table.vaddr_of(vaddr - mapping.start + mapping.offset)
    name = table.name_at(file_vaddr) if file_vaddr is not None else UNKNOWN
    return Path(mapping.path).name, name


def instructions_by_symbol(
    blocks: list[Block], mappings: list[Mapping]
) -> Counter[tuple[str, str]]:
    """Executed instructions per (file name, function), over all counted blocks."""
    mappings = sorted(mappings, key=lambda m: m.start)
    starts = [m.start for m in mappings]
    totals: Counter[tuple[str, str]] = Counter()
    for block in blocks:
        totals[symbol_of(block.vaddr, mappings, starts)] += block.instructions
    return totals
