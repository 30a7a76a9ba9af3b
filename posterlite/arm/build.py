"""Builds the ARM tools folder (`make arm-tools`): Debian's arm64 packages, PyPI's aarch64
wheels and our TCG plugin, into the folder `tools.find_tools` validates.

    python -m posterlite.arm.build [FOLDER]

Idempotent: when FOLDER's tools.json records the same recipe (package list, wheel versions
pinned from the host, plugin source) and nothing is missing, it does nothing. Otherwise it
builds a fresh `FOLDER.partial` and swaps it in whole, so a failed build leaves the old
folder (or none), never half of one.

The system is left alone: the arm64 package lists come from a PRIVATE apt configuration
(its own state, cache and sources under the staging folder, `APT::Architecture "arm64"`),
with sources copied from the system's Debian entries, so no `dpkg --add-architecture` and
no root is needed for this step. QEMU (`qemu-user`) and a C compiler are Debian packages
that the Makefile installs when it runs as root.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from posterlite.arm.tools import (
    GUEST_PYTHON,
    LITERT_DIST,
    PLUGIN_NAME,
    RECORD_NAME,
    SITE_NAME,
    SYSROOT_NAME,
    ArmToolsMissing,
    ToolsRecord,
    find_qemu,
    host_version,
    missing_part,
    read_record,
    record_json,
    tools_dir,
)
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_text, replace_dir

HERE = Path(__file__).resolve().parent
PLUGIN_SOURCE = HERE / "plugin.c"
# python3.11 and every shared library it, numpy and LiteRT load (Debian 12, arm64).
SYSROOT_PACKAGES: tuple[str, ...] = (
    f"python{GUEST_PYTHON}-minimal",
    f"libpython{GUEST_PYTHON}-minimal",
    f"libpython{GUEST_PYTHON}-stdlib",
    "libc6",
    "libstdc++6",
    "libgcc-s1",
    "zlib1g",
    "libexpat1",
    "libffi8",
    "libbz2-1.0",
    "liblzma5",
    "libssl3",
    "libsqlite3-0",
    "libuuid1",
    "libcrypt1",
    "libncursesw6",
    "libtinfo6",
    "libreadline8",
    "libnsl2",
    "libtirpc3",
    "libdb5.3",
)
# All the aarch64 interpreter needs to load; each pinned to the host's installed version.
WHEELS: tuple[str, ...] = (LITERT_DIST, "numpy", "flatbuffers")
# ai-edge-litert's aarch64 wheel is tagged manylinux_2_27 (manylinux2014 alone finds nothing).
WHEEL_PLATFORMS: tuple[str, ...] = ("manylinux_2_27_aarch64", "manylinux_2_28_aarch64")
# Imported once at build time with bytecode writing on, so runs skip compiling them under
# emulation (measured: guest import of numpy + LiteRT 5.4 s -> 1.8 s).
PRECOMPILE_IMPORTS = "import numpy, ai_edge_litert.interpreter"
DEBIAN_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
SYSTEM_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
PLUGIN_CFLAGS = ("-O2", "-Wall", "-shared", "-fPIC", "-fvisibility=hidden")
BUILD_VERSION = "1"  # bump when the build's steps change what lands in the folder


@dataclass(frozen=True)
class AptSource:
    """One Debian archive entry (deb822 fields)."""

    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str = ""

    def deb822(self, arch: str) -> str:
        lines = [
            "Types: deb",
            f"URIs: {self.uri}",
            f"Suites: {' '.join(self.suites)}",
            f"Components: {' '.join(self.components)}",
            f"Architectures: {arch}",
        ]
        if self.signed_by:
            lines.append(f"Signed-By: {self.signed_by}")
        return "\n".join(lines) + "\n"


def is_debian_archive(uri: str) -> bool:
    """Debian's own archive (any mirror): the path ends in /debian or /debian-security."""
    return uri.rstrip("/").rsplit("/", 1)[-1] in ("debian", "debian-security")


def parse_one_line_sources(text: str) -> list[AptSource]:
    """`deb [opts] URI SUITE COMPONENT...` lines (sources.list format)."""
    sources = []
    for raw in text.splitlines():
        words = raw.split("#", 1)[0].split()
        if len(words) < 3 or words[0] != "deb":
            continue
        words = words[1:]
        options: list[str] = []
        if words[0].startswith("["):
            while words:
                word = words.pop(0)
                options.append(word.strip("[]"))
                if word.endswith("]"):
                    break
        signed_by = next((o.split("=", 1)[1] for o in options if o.startswith("signed-by=")), "")
        if len(words) < 2:
            continue
        sources.append(AptSource(words[0], (words[1],), tuple(words[2:]) or ("main",), signed_by))
    return sources


def parse_deb822_sources(text: str) -> list[AptSource]:
    """Stanzas of a `.sources` file (Types/URIs/Suites/Components/Signed-By/Enabled)."""
    sources = []
    for stanza in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = tuple(fields.get("suites", "").split())
        components = tuple(fields.get("components", "main").split())
        for uri in fields.get("uris", "").split():
            sources.append(AptSource(uri, suites, components, fields.get("signed-by", "")))
    return sources


def system_debian_sources() -> list[AptSource]:
    """The Debian archive entries of the system's apt configuration."""
    found: list[AptSource] = []
    files: list[Path] = []
    for place in SYSTEM_SOURCES:
        if place.is_file():
            files.append(place)
        elif place.is_dir():
            files.extend(sorted(place.glob("*.list")) + sorted(place.glob("*.sources")))
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        parse = parse_deb822_sources if path.suffix == ".sources" else parse_one_line_sources
        found.extend(s for s in parse(text) if is_debian_archive(s.uri))
    return found


def write_private_apt(apt_dir: Path, sources: list[AptSource]) -> Path:
    """An apt configuration of its own (state, cache, sources) for arm64; its apt.conf path."""
    for sub in ("state/lists/partial", "cache/archives/partial", "sources.list.d", "empty"):
        (apt_dir / sub).mkdir(parents=True, exist_ok=True)
    for empty_file in ("state/status", "empty.list", "empty.pref"):
        (apt_dir / empty_file).write_text("")
    (apt_dir / "sources.list.d" / "debian-arm64.sources").write_text(
        "\n".join(s.deb822("arm64") for s in sources)
    )
    settings = {
        "Dir::State": apt_dir / "state",
        "Dir::State::status": apt_dir / "state" / "status",
        "Dir::Cache": apt_dir / "cache",
        "Dir::Etc::SourceList": apt_dir / "empty.list",
        "Dir::Etc::SourceParts": apt_dir / "sources.list.d",
        "Dir::Etc::Preferences": apt_dir / "empty.pref",
        "Dir::Etc::PreferencesParts": apt_dir / "empty",
        "Dir::Etc::Parts": apt_dir / "empty",
        "APT::Architecture": "arm64",
        "Acquire::Languages": "none",
    }
    lines = [f'{key} "{value}";' for key, value in settings.items()]
    lines.append('APT::Architectures { "arm64"; };')
    if os.geteuid() == 0:
        # Root: skip apt's drop to the _apt user, who cannot write into this private folder.
        lines.append('APT::Sandbox::User "root";')
    conf = apt_dir / "apt.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def run_step(what: str, command: list[str], **kwargs) -> subprocess.CompletedProcess:  # noqa: ANN003
    try:
        result = subprocess.run(command, capture_output=True, text=True, **kwargs)
    except OSError as exc:
        raise PosterliteError(f"{what}: {command[0]} cannot run ({exc})") from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise PosterliteError(f"{what} failed ({result.returncode}): {' | '.join(tail)}")
    return result


def download_debs(apt_conf: Path, into: Path) -> dict[str, str]:
    """`apt-get download` of SYSROOT_PACKAGES (arm64) into `into`: package -> version."""
    env = {**os.environ, "APT_CONFIG": str(apt_conf), "DEBIAN_FRONTEND": "noninteractive"}
    run_step("apt-get update (private arm64 lists)", ["apt-get", "-q", "update"], env=env)
    into.mkdir(parents=True, exist_ok=True)
    run_step(
        "apt-get download (arm64 sysroot packages)",
        ["apt-get", "-q", "download", *SYSROOT_PACKAGES],
        env=env,
        cwd=into,
    )
    versions = {}
    for deb in sorted(into.glob("*.deb")):
        name, version = deb.name.split("_")[:2]
        versions[name] = version.replace("%3a", ":")
    missing = set(SYSROOT_PACKAGES) - set(versions)
    if missing:
        raise PosterliteError(f"apt-get download fetched no {', '.join(sorted(missing))}")
    return versions


def unpack_debs(debs: Path, sysroot: Path) -> None:
    sysroot.mkdir(parents=True, exist_ok=True)
    for deb in sorted(debs.glob("*.deb")):
        run_step(f"dpkg -x {deb.name}", ["dpkg", "-x", str(deb), str(sysroot)])


def wheel_pins() -> dict[str, str]:
    """Each wheel at the host's installed version (LiteRT must match the x86 one)."""
    pins = {}
    for dist in WHEELS:
        version = host_version(dist)
        if version is None:
            raise PosterliteError(f"{dist} is not installed on the host: install posterlite first")
        pins[dist] = version
    return pins


def download_wheels(pins: dict[str, str], into: Path) -> None:
    platforms = [arg for p in WHEEL_PLATFORMS for arg in ("--platform", p)]
    run_step(
        "pip download (aarch64 wheels)",
        [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
         "--only-binary=:all:", *platforms, "--python-version", GUEST_PYTHON, "--no-deps",
         "--dest", str(into), *(f"{d}=={v}" for d, v in pins.items())],
    )  # fmt: skip


def unpack_wheels(wheels: Path, site: Path) -> None:
    site.mkdir(parents=True, exist_ok=True)
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)


def build_plugin(source: Path, target: Path) -> None:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise PosterliteError(
            "no C compiler (cc) to build the counting plugin: apt-get install gcc"
        )
    run_step("cc plugin.c", [compiler, *PLUGIN_CFLAGS, "-o", str(target), str(source)])


def precompile(qemu: Path, sysroot: Path, site: Path) -> None:
    """Import numpy and LiteRT once in the guest, writing their bytecode beside them."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(site), PYTHONNOUSERSITE="1", OPENBLAS_NUM_THREADS="1")
    python = sysroot / "usr" / "bin" / f"python{GUEST_PYTHON}"
    run_step(
        "guest python (import numpy + ai_edge_litert)",
        [
            str(qemu),
            "-L",
            str(sysroot),
            "-cpu",
            "cortex-a53",
            str(python),
            "-c",
            PRECOMPILE_IMPORTS,
        ],
        env=env,
        timeout=600,
    )


def recipe_digest(pins: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for part in (BUILD_VERSION, GUEST_PYTHON, *SYSROOT_PACKAGES, *WHEEL_PLATFORMS):
        digest.update(part.encode() + b"\0")
    for dist, version in sorted(pins.items()):
        digest.update(f"{dist}=={version}".encode() + b"\0")
    digest.update(PLUGIN_SOURCE.read_bytes())
    return digest.hexdigest()[:16]


def up_to_date(root: Path, recipe: str) -> bool:
    record = read_record(root)
    return record is not None and record.recipe == recipe and missing_part(root) is None


def say(message: str) -> None:
    print(f"arm-tools: {message}", flush=True)


def build_tools(root: Path, force: bool = False) -> ToolsRecord:
    """Build (or keep) the tools folder at `root`; its record."""
    root = Path(root).resolve()  # apt resolves relative Dir:: paths against its own root
    pins = wheel_pins()
    recipe = recipe_digest(pins)
    if not force and up_to_date(root, recipe):
        record = read_record(root)
        assert record is not None
        os.utime(root / RECORD_NAME)  # Make's stamp: newer than its prerequisites again
        say(f"up to date in {root}")
        return record
    qemu = find_qemu()
    if qemu is None:
        raise ArmToolsMissing("qemu-aarch64 not found: apt-get install qemu-user (as root)")
    start = time.monotonic()
    staging = root.with_name(root.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    sources = system_debian_sources()
    if not sources:
        raise PosterliteError("no Debian archive in /etc/apt sources to fetch arm64 packages from")
    say(f"arm64 packages from {', '.join(sorted({s.uri for s in sources}))} (private apt lists)")
    apt_conf = write_private_apt(staging / "apt", sources)
    packages = download_debs(apt_conf, staging / "debs")
    unpack_debs(staging / "debs", staging / SYSROOT_NAME)
    say(f"sysroot: {len(packages)} packages unpacked")
    download_wheels(pins, staging / "wheels")
    unpack_wheels(staging / "wheels", staging / SITE_NAME)
    say("wheels: " + ", ".join(f"{d} {v}" for d, v in pins.items()) + " (aarch64)")
    build_plugin(PLUGIN_SOURCE, staging / PLUGIN_NAME)
    say(f"plugin: {PLUGIN_NAME} built")
    precompile(qemu, staging / SYSROOT_NAME, staging / SITE_NAME)
    for scratch in ("apt", "debs", "wheels"):
        shutil.rmtree(staging / scratch)
    record = ToolsRecord(
        wheels=pins,
        packages=packages,
        plugin_sha256=hashlib.sha256(PLUGIN_SOURCE.read_bytes()).hexdigest(),
        recipe=recipe,
        build_seconds=round(time.monotonic() - start, 1),
    )
    atomic_write_text(staging / RECORD_NAME, record_json(record))
    replace_dir(staging, root)
    say(f"built {root} in {record.build_seconds:.0f} s")
    return record


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--force"]
    if len(args) > 1 or any(a.startswith("-") for a in args):
        print("usage: python -m posterlite.arm.build [--force] [FOLDER]", file=sys.stderr)
        return 2
    root = Path(args[0]) if args else tools_dir()
    try:
        build_tools(root, force="--force" in argv)
    except PosterliteError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
