"""Naming the XNNPACK kernels a run used, from instruction counts per symbol.

XNNPACK's micro-kernel names end in the ISA they were written for
(`..._ukernel_4x16c4__asm_aarch64_neondot_ld128`, `..._4x16c8__neoni8mm`,
`..._4x16__asm_aarch64_neon_mlal_lane_cortex_a53`); KleidiAI's SME matrix kernels (called by
XNNPACK on SME cores) carry `sme` in theirs. A run's convolution family is the family of the
matrix-multiply kernel (GEMM / IGEMM / matmul: the 1x1 and full convolutions) that executed
the most instructions.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

# Checked in this order: a name carrying several tokens ("neoni8mm") gets the first match.
FAMILY_TOKENS: tuple[tuple[str, str], ...] = (
    ("sme", "sme"),
    ("i8mm", "i8mm"),
    ("neondot", "neondot"),
    ("dotprod", "neondot"),
    ("fp16arith", "neonfp16arith"),
    ("neonfma", "neonfma"),
    ("neon", "neon"),
)
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(f for _, f in FAMILY_TOKENS)) + ("scalar",)
# GEMM-shaped kernels: XNNPACK's gemm/igemm micro-kernels and KleidiAI's matmul kernels;
# packing routines ("pack") move weights, they do not multiply.
_MATMUL = re.compile(r"(^xnn_.*_(i?gemm)_.*ukernel|^kai_.*matmul)")
_PACK = re.compile(r"pack", re.IGNORECASE)
# Integer kernels: XNNPACK's quantized ones (qs8, qu8, qd8 ...) and KleidiAI's on int8/int4
# operands (`_qai8`, `_qsi8cx`, `_qsi4cx`); the rest are float (f32, f16).
_INTEGER = re.compile(r"^xnn_q|^kai_.*_q[a-z]*i[48]")


@dataclass(frozen=True)
class KernelCount:
    """Instructions executed in one function of one library."""

    library: str
    symbol: str
    instructions: int

    @property
    def family(self) -> str:
        return kernel_family(self.symbol)

    @property
    def integer(self) -> bool:
        """An integer (quantized) kernel, not a float one."""
        return bool(_INTEGER.search(self.symbol))


def kernel_family(symbol: str) -> str:
    """The ISA family a kernel name says it was written for ("scalar" if none)."""
    tail = symbol.split("__", 1)[-1].lower() if "__" in symbol else symbol.lower()
    for token, family in FAMILY_TOKENS:
        if token in tail:
            return family
    return "scalar"


def is_matmul_kernel(symbol: str) -> bool:
    return bool(_MATMUL.search(symbol)) and not _PACK.search(symbol)


def top_kernels(totals: Counter[tuple[str, str]], count: int = 12) -> tuple[KernelCount, ...]:
    """The `count` functions with the most instructions, most first."""
    return tuple(
        KernelCount(library, symbol, n) for (library, symbol), n in totals.most_common(count)
    )


def main_matmul_kernel(totals: Counter[tuple[str, str]]) -> KernelCount | None:
    """The matrix-multiply kernel with the most instructions (None if none ran)."""
    for (library, symbol), n in totals.most_common():
        if is_matmul_kernel(symbol):
            return KernelCount(library, symbol, n)
    return None
