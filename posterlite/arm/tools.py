"""The ARM tools folder: where it is, what it must hold, and the one-line refusal.

`make arm-tools` (posterlite.arm.build) fills an ignored folder, by default
`<repo>/.cache/arm-tools` (or $POSTERLITE_ARM_TOOLS), with:

- `sysroot/`: an arm64 Debian 12 root (python3.11 and the libraries it loads), unpacked from
  Debian's packages with `dpkg -x` (nothing arm64 is installed on the host);
- `site/`: the aarch64 wheels of ai-edge-litert (the host's version), numpy, flatbuffers;
- `libcount.so`: the instruction-counting TCG plugin built from `plugin.c`;
- `tools.json`: what was built from what (`ToolsRecord`), written last.

QEMU itself is Debian's `qemu-user` package (`qemu-aarch64`, the dynamically linked build:
the static one has no plugin support), found on PATH.

`find_tools` checks all of that and raises `ArmToolsMissing`, one line ending in
"run `make arm-tools`", for the first thing missing; tests use `missing_reason` to skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from posterlite.errors import PosterliteError

REPO = Path(__file__).resolve().parents[2]
TOOLS_ENV = "POSTERLITE_ARM_TOOLS"
DEFAULT_TOOLS_DIR = REPO / ".cache" / "arm-tools"
MAKE_HINT = "run `make arm-tools`"
QEMU_BINARY = "qemu-aarch64"  # Debian's qemu-user; qemu-aarch64-static refuses -plugin
GUEST_PYTHON = "3.11"  # Debian 12's python3 (the sysroot's interpreter)
RECORD_NAME = "tools.json"
SYSROOT_NAME = "sysroot"
SITE_NAME = "site"
PLUGIN_NAME = "libcount.so"
# ai-edge-litert must be the host's version: ARM outputs are compared with the host's.
LITERT_DIST = "ai-edge-litert"


class ArmToolsMissing(PosterliteError):
    """The ARM target cannot run here; the message names what is missing and the fix."""


@dataclass(frozen=True)
class ToolsRecord:
    """tools.json: what `make arm-tools` built (versions pinned from the host)."""

    wheels: dict[str, str]  # distribution -> version, as unpacked into site/
    packages: dict[str, str]  # Debian arm64 package -> version, as unpacked into sysroot/
    plugin_sha256: str  # of plugin.c the plugin was built from
    recipe: str  # build.recipe_digest(): inputs that, when changed, call for a rebuild
    build_seconds: float


@dataclass(frozen=True)
class ArmTools:
    """A validated tools folder and the QEMU that runs it."""

    root: Path
    qemu: Path
    qemu_version: tuple[int, int]
    qemu_version_text: str  # e.g. "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"
    record: ToolsRecord

    @property
    def sysroot(self) -> Path:
        return self.root / SYSROOT_NAME

    @property
    def site(self) -> Path:
        return self.root / SITE_NAME

    @property
    def plugin(self) -> Path:
        return self.root / PLUGIN_NAME

    @property
    def python(self) -> Path:
        return self.sysroot / "usr" / "bin" / f"python{GUEST_PYTHON}"

    @property
    def litert_version(self) -> str:
        return self.record.wheels.get(LITERT_DIST, "")


def tools_dir() -> Path:
    return Path(os.environ.get(TOOLS_ENV) or DEFAULT_TOOLS_DIR)


def read_record(root: Path) -> ToolsRecord | None:
    try:
        data = json.loads((root / RECORD_NAME).read_text(encoding="utf-8"))
        return ToolsRecord(**data)
    except (OSError, ValueError, TypeError):
        return None


def record_json(record: ToolsRecord) -> str:
    return json.dumps(asdict(record), indent=2, sort_keys=True) + "\n"


def host_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def find_qemu() -> Path | None:
    found = shutil.which(QEMU_BINARY)
    return Path(found) if found else None


_VERSION = re.compile(r"version (\d+)\.(\d+)(\S*(?: \([^)]*\))?)")


def parse_qemu_version(text: str) -> tuple[tuple[int, int], str]:
    """`qemu-aarch64 --version` output -> ((major, minor), "7.2.22 (Debian ...)")."""
    match = _VERSION.search(text)
    if not match:
        raise ArmToolsMissing(f"cannot read the QEMU version from {text.strip()[:60]!r}")
    major, minor = int(match.group(1)), int(match.group(2))
    return (major, minor), f"{major}.{minor}{match.group(3)}"


def qemu_version(qemu: Path) -> tuple[tuple[int, int], str]:
    try:
        result = subprocess.run(
            [str(qemu), "--version"], capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ArmToolsMissing(f"{qemu} does not run ({exc}): {MAKE_HINT}") from exc
    return parse_qemu_version(result.stdout)


def missing_part(root: Path) -> str | None:
    """The first part of the tools folder that is absent or stale, as a phrase, or None."""
    if not root.is_dir():
        return f"no ARM tools at {root}"
    record = read_record(root)
    if record is None:
        return f"{root / RECORD_NAME} missing or unreadable (tools not built)"
    python = root / SYSROOT_NAME / "usr" / "bin" / f"python{GUEST_PYTHON}"
    for path in (python, root / SITE_NAME / "ai_edge_litert", root / PLUGIN_NAME):
        if not path.exists():
            return f"{path} missing"
    host_litert = host_version(LITERT_DIST)
    built = record.wheels.get(LITERT_DIST)
    if host_litert is not None and built != host_litert:
        return f"ARM tools hold {LITERT_DIST} {built}, the host has {host_litert}"
    return None


def find_tools(root: Path | None = None) -> ArmTools:
    """The validated tools folder, or `ArmToolsMissing` naming the gap and `make arm-tools`."""
    root = Path(root) if root is not None else tools_dir()
    qemu = find_qemu()
    if qemu is None:
        raise ArmToolsMissing(f"{QEMU_BINARY} not found (Debian package qemu-user): {MAKE_HINT}")
    problem = missing_part(root)
    if problem is not None:
        raise ArmToolsMissing(f"{problem}: {MAKE_HINT}")
    version, text = qemu_version(qemu)
    record = read_record(root)
    assert record is not None  # missing_part checked it
    return ArmTools(
        root=root, qemu=qemu, qemu_version=version, qemu_version_text=text, record=record
    )


def missing_reason(root: Path | None = None) -> str | None:
    """None when the ARM target can run, else the one-line refusal (for test skips)."""
    try:
        find_tools(root)
    except ArmToolsMissing as exc:
        return str(exc)
    return None
