"""The CPU classes phones have, as QEMU user-mode profiles: the one registry.

XNNPACK (LiteRT's CPU backend) picks its ARM64 kernels at run time from the CPU it finds:
the ISA features from the kernel's HWCAPs (QEMU derives them from `-cpu`) and, for the
in-order Cortex-A53/A55 class, the core's part number from `/proc/cpuinfo` (its
A53-scheduled assembly kernels). QEMU 7.2 passes the host's x86 `/proc/cpuinfo` through,
which crashes LiteRT's CPU detection, so each profile also carries the ARM `/proc/cpuinfo`
that `run.py` places under the emulator's `-L` root (QEMU redirects the guest's open to it).

`expected_family` is the kernel family XNNPACK is expected to pick for int8 convolutions on
that class (`expected_float_family` for float ones: FMA everywhere below SME) (measured in /work/shared/notes/arm-measured.md and by `run.py`'s per-symbol
counts); a run that names another family is flagged, not hidden.

QEMU versions matter: QEMU 7.2 with SME on (`-cpu max`) computes XNNPACK's int8 SME
(KleidiAI) kernels WRONGLY (0 of 50 posters identical to x86, 49 with a changed genre set;
fp32 agreed), while QEMU 10.0 runs the same kernels exactly. A profile lists the QEMU
versions known to be wrong for it and the oldest version it was verified on; `check_profile`
refuses the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from posterlite.errors import PosterliteError

QemuVersion = tuple[int, int]

ARM_IMPLEMENTER = "0x41"  # MIDR implementer code of Arm Ltd's own cores


@dataclass(frozen=True)
class CpuProfile:
    """One CPU class: how QEMU emulates it and what LiteRT's CPU detection reads about it."""

    name: str  # what `--arm-cpu` takes
    title: str  # the phone cores it stands for
    qemu_cpu: str  # QEMU's `-cpu` argument
    part: str  # MIDR part number in /proc/cpuinfo ("CPU part")
    variant: str  # MIDR variant ("CPU variant")
    revision: int  # MIDR revision ("CPU revision")
    features: str  # the "Features" line Linux prints for such a core (HWCAP names)
    expected_family: str  # XNNPACK kernel family for int8 convolutions (kernels.FAMILIES)
    known_bad_qemu: tuple[QemuVersion, ...] = ()  # QEMU versions that compute it wrongly
    verified_qemu: QemuVersion | None = None  # oldest QEMU it was checked exact on (None: any)
    bad_reason: str = ""  # what goes wrong on a known-bad QEMU (one line)
    default: bool = True  # part of the default `--arm-cpu` set
    expected_float_family: str = "neonfma"  # ... for fp32 convolutions (fp16 files run fp32)

    def expected(self, integer: bool) -> str:
        """The family expected for integer (int8) or float convolutions."""
        return self.expected_family if integer else self.expected_float_family

    def cpuinfo(self, processors: int = 1) -> str:
        """The /proc/cpuinfo an aarch64 Linux prints for `processors` such cores.

        List as many as the host's sysfs says are possible: QEMU passes /sys through, and
        LiteRT's CPU detection (pytorch/cpuinfo) crashed on a 2-CPU host when /proc/cpuinfo
        described only processor 0 of an A710 (measured; the A53/A76 parts happened not to)."""
        block = (
            "BogoMIPS\t: 50.00\n"
            f"Features\t: {self.features}\n"
            f"CPU implementer\t: {ARM_IMPLEMENTER}\n"
            "CPU architecture: 8\n"
            f"CPU variant\t: {self.variant}\n"
            f"CPU part\t: {self.part}\n"
            f"CPU revision\t: {self.revision}\n\n"
        )
        return "".join(f"processor\t: {index}\n{block}" for index in range(processors))


_V80 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
_V82 = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc "
    "dcpop asimddp ssbs"
)
_V9 = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt "
    "fcma lrcpc dcpop sha3 sm3 sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs "
    "sb paca pacg dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint "
    "svei8mm svebf16 i8mm bf16 dgh bti"
)

PROFILES: tuple[CpuProfile, ...] = (
    CpuProfile(
        name="a53",
        title="Cortex-A53/A55 (in-order; budget phones, little cores)",
        qemu_cpu="cortex-a53",
        part="0xd03",
        variant="0x0",
        revision=4,
        features=_V80,
        expected_family="neon",
    ),
    CpuProfile(
        name="a76",
        title="Cortex-A76/A78 class (Armv8.2 dot product; mid-range big cores)",
        qemu_cpu="cortex-a76",
        part="0xd0b",
        variant="0x4",
        revision=1,
        features=_V82,
        expected_family="neondot",
    ),
    CpuProfile(
        name="a710",
        title="Cortex-A710 and newer (Armv9 int8 matrix multiply, i8mm)",
        # QEMU 7.2 has no cortex-a710 model; `max` without SME has the same int8 ISA
        # (dot product + i8mm) and steers XNNPACK the same way with the A710's part number.
        qemu_cpu="max,sme=off",
        part="0xd47",
        variant="0x2",
        revision=0,
        features=_V9,
        expected_family="i8mm",
    ),
    CpuProfile(
        name="sme",
        title="SME2 cores (newest flagships; KleidiAI matrix kernels)",
        qemu_cpu="max",
        # XNNPACK chooses SME from the HWCAP2 bits, not from the part number.
        part="0xd47",
        variant="0x2",
        revision=0,
        features=_V9 + " sme",
        expected_family="sme",
        known_bad_qemu=((7, 2),),
        verified_qemu=(10, 0),
        bad_reason="its int8 SME kernels give wrong outputs (0 of 50 posters identical to x86)",
        default=False,
        expected_float_family="sme",
    ),
)

PROFILE_NAMES: tuple[str, ...] = tuple(p.name for p in PROFILES)
DEFAULT_PROFILES: tuple[str, ...] = tuple(p.name for p in PROFILES if p.default)


def get_profile(name: str) -> CpuProfile:
    for profile in PROFILES:
        if profile.name == name:
            return profile
    raise PosterliteError(f"unknown ARM CPU {name!r}: choose from {', '.join(PROFILE_NAMES)}")


def parse_profiles(text: str | Sequence[str] | None) -> tuple[CpuProfile, ...]:
    """`--arm-cpu a53,a76` (or a list of names; None = the default set) -> profiles, in order,
    each once."""
    if text is None:
        names: Sequence[str] = DEFAULT_PROFILES
    elif isinstance(text, str):
        names = [part.strip() for part in text.split(",")]
    else:
        names = list(text)
    if not names or any(not n for n in names):
        raise PosterliteError(f"--arm-cpu takes names separated by commas, got {text!r}")
    profiles = [get_profile(n) for n in names]
    return tuple(dict.fromkeys(profiles))


def qemu_problem(profile: CpuProfile, qemu: QemuVersion) -> str | None:
    """Why `profile` must not run on QEMU `qemu` (one line), or None when it may."""
    shown = ".".join(map(str, qemu))
    if qemu in profile.known_bad_qemu:
        return f"ARM CPU {profile.name} on QEMU {shown}: known bad, {profile.bad_reason}"
    if profile.verified_qemu is not None and qemu < profile.verified_qemu:
        first = ".".join(map(str, profile.verified_qemu))
        return (
            f"ARM CPU {profile.name} on QEMU {shown}: not verified (checked exact on QEMU "
            f">= {first} only)"
        )
    return None


def check_profile(profile: CpuProfile, qemu: QemuVersion) -> None:
    """Refuse a profile the installed QEMU is known (or not shown) to emulate correctly."""
    problem = qemu_problem(profile, qemu)
    if problem is not None:
        raise PosterliteError(problem)
