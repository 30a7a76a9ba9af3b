"""posterlite.arm: LiteRT's ARM64 build under QEMU user mode, and `posterlite bench --target
arm64` (posterlite.bench.targets.arm64) on a tiny model.

Pure parts (profiles, the QEMU-version rule, kernel names, apt sources, parity) run
everywhere; runs through the emulator need `make arm-tools` and skip with its reason."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, make_poster
from tiny_models import SAMPLE_LABELS, session_tiny_run, write_sample

import posterlite
from posterlite.arm import build, kernels, profiles, symbols, tools
from posterlite.arm.compare import compare_outputs, profile_results, run_profiles, same_counts
from posterlite.arm.profiles import get_profile, parse_profiles, qemu_problem
from posterlite.arm.run import ArmRun, host_processors, run_arm
from posterlite.bench import BenchReport
from posterlite.cli import main
from posterlite.errors import PosterliteError
from posterlite.preprocess import load_poster
from posterlite.runtime import PosterModel

SHIPPED_INT8 = REPO / "models" / "mobilenet_v2" / "model.int8.tflite"
TOOLS_MISSING = tools.missing_reason()
needs_tools = pytest.mark.skipif(TOOLS_MISSING is not None, reason=str(TOOLS_MISSING))


# ------------------------------------------------------------------------ profiles
def test_default_profiles_are_the_three_phone_classes_and_sme_is_opt_in() -> None:
    assert [p.name for p in parse_profiles(None)] == ["a53", "a76", "a710"]
    assert [p.name for p in parse_profiles("a710, a53,a710")] == ["a710", "a53"]
    assert get_profile("sme").default is False
    with pytest.raises(PosterliteError, match="unknown ARM CPU 'a77'"):
        parse_profiles("a53,a77")
    with pytest.raises(PosterliteError, match="--arm-cpu"):
        parse_profiles("a53,,a76")


def test_cpuinfo_names_the_part_for_every_processor() -> None:
    text = get_profile("a76").cpuinfo(3)
    assert text.count("CPU part\t: 0xd0b\n") == 3
    assert [line for line in text.splitlines() if line.startswith("processor")] == [
        "processor\t: 0", "processor\t: 1", "processor\t: 2"]  # fmt: skip
    assert "asimddp" in text and "CPU implementer\t: 0x41" in text
    assert "i8mm" in get_profile("a710").cpuinfo() and "asimddp" not in get_profile("a53").cpuinfo()


def test_host_processors_reads_sysfs_ranges(tmp_path: Path) -> None:
    possible = tmp_path / "possible"
    possible.write_text("0-3,8-11\n")
    assert host_processors(possible) == 12
    possible.write_text("0\n")
    assert host_processors(possible) == 1


def test_sme_is_refused_on_the_qemu_known_to_compute_it_wrongly() -> None:
    sme = get_profile("sme")
    problem = qemu_problem(sme, (7, 2))
    assert problem is not None and "known bad" in problem and "\n" not in problem
    assert "not verified" in str(qemu_problem(sme, (8, 0)))
    assert qemu_problem(sme, (10, 0)) is None
    assert qemu_problem(get_profile("a76"), (7, 2)) is None


# ------------------------------------------------------------------------ tools
def test_missing_tools_folder_is_one_line_naming_make_arm_tools(tmp_path: Path) -> None:
    with pytest.raises(tools.ArmToolsMissing) as caught:
        tools.find_tools(tmp_path / "nothing-here")
    message = str(caught.value)
    assert "\n" not in message and message.endswith("run `make arm-tools`")


def test_missing_qemu_is_one_line_naming_make_arm_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no qemu-aarch64 on this PATH
    message = tools.missing_reason(tmp_path)
    assert message == "qemu-aarch64 not found (Debian package qemu-user): run `make arm-tools`"


def test_run_arm_refuses_before_running_when_tools_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not SHIPPED_INT8.is_file():
        pytest.skip(f"{SHIPPED_INT8} not present")
    monkeypatch.setenv(tools.TOOLS_ENV, str(tmp_path / "no-tools"))
    inputs = np.zeros((1, 224, 224, 3), np.uint8)
    with pytest.raises(tools.ArmToolsMissing, match=r"run `make arm-tools`$"):
        run_arm(SHIPPED_INT8, inputs, "a76")


def test_qemu_versions_are_read_from_debian_version_lines() -> None:
    line = "qemu-aarch64 version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright ..."
    assert tools.parse_qemu_version(line) == ((7, 2), "7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)")
    assert tools.parse_qemu_version("qemu-aarch64 version 10.0.2")[0] == (10, 0)
    with pytest.raises(tools.ArmToolsMissing):
        tools.parse_qemu_version("not qemu")


# ------------------------------------------------------------------------ build (pure parts)
def test_apt_sources_keep_debian_archives_only_and_ask_for_arm64() -> None:
    deb822 = (
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"
        "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n"
        "Components: main\n\n"
        "Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n\n"
        "Types: deb\nEnabled: no\nURIs: http://deb.debian.org/debian\nSuites: trixie\n"
    )
    found = [s for s in build.parse_deb822_sources(deb822) if build.is_debian_archive(s.uri)]
    assert found == [build.AptSource("http://deb.debian.org/debian", ("bookworm", "bookworm-updates"),
                                     ("main",), "/usr/share/keyrings/debian-archive-keyring.gpg")]  # fmt: skip
    assert "Architectures: arm64" in found[0].deb822("arm64")
    one_line = (
        "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main contrib\n"
        "deb-src http://deb.debian.org/debian bookworm main\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n"
    )
    parsed = build.parse_one_line_sources(one_line)
    assert parsed == [
        build.AptSource("http://mirror.example/debian", ("bookworm",), ("main", "contrib"), "/k.gpg"),
        build.AptSource("http://security.debian.org/debian-security", ("bookworm-security",), ("main",)),
    ]  # fmt: skip


def test_private_apt_configuration_stays_in_its_folder(tmp_path: Path) -> None:
    source = build.AptSource("http://deb.debian.org/debian", ("bookworm",), ("main",))
    conf = build.write_private_apt(tmp_path / "apt", [source]).read_text()
    assert 'APT::Architecture "arm64";' in conf
    for key in ("Dir::State", "Dir::Cache", "Dir::Etc::SourceParts"):
        line = next(line for line in conf.splitlines() if line.startswith(f"{key} "))
        assert str(tmp_path / "apt") in line
    assert f'Dir::Etc::SourceList "{tmp_path / "apt" / "empty.list"}";' in conf


# ------------------------------------------------------------------------ kernel names
@pytest.mark.parametrize(
    ("symbol", "family"),
    [
        ("xnn_qs8_qc8w_gemm_minmax_fp32_ukernel_4x16__asm_aarch64_neon_mlal_lane_cortex_a53_prfm", "neon"),
        ("xnn_qs8_qc8w_gemm_minmax_fp32_ukernel_4x16c4__asm_aarch64_neondot_ld128", "neondot"),
        ("xnn_qs8_qc8w_igemm_minmax_fp32_ukernel_4x16c8__neoni8mm", "i8mm"),
        ("kai_kernel_matmul_clamp_qai8_qai8p2vlx4_qsi8cxp2vlx4sb_2vlx2vl_sme_mopa", "sme"),
        ("xnn_f32_gemm_minmax_ukernel_6x8__asm_aarch64_neonfma_cortex_a53", "neonfma"),
        ("xnn_compute_gemm", "scalar"),
    ],
)  # fmt: skip
def test_kernel_family_comes_from_the_isa_suffix(symbol: str, family: str) -> None:
    assert kernels.kernel_family(symbol) == family


def test_expected_family_follows_the_kernels_kind_int8_or_float() -> None:
    """Float models run XNNPACK's FMA kernels on every class below SME: not a surprise."""
    integer = kernels.KernelCount("l", "xnn_qs8_qc8w_gemm_minmax_fp32_ukernel_4x16c8__neoni8mm", 1)
    float_ = kernels.KernelCount(
        "l", "xnn_f32_gemm_minmax_ukernel_6x8__asm_aarch64_neonfma_ld128", 1
    )
    sme_int8 = kernels.KernelCount(
        "l", "kai_kernel_matmul_clamp_qai8_qai8p2vlx4_qsi8cxp_sme_mopa", 1
    )
    assert integer.integer and sme_int8.integer and not float_.integer
    a710 = get_profile("a710")
    assert a710.expected(True) == "i8mm" == integer.family
    assert a710.expected(False) == "neonfma" == float_.family
    assert get_profile("sme").expected(False) == "sme"


def test_matmul_kernel_is_the_busiest_gemm_not_packing_or_depthwise() -> None:
    from collections import Counter

    totals = Counter({
        ("lib.so", "xnn_qs8_qc8w_dwconv_minmax_fp32_ukernel_9p16c__neonv8_mla8_ld64"): 900,
        ("lib.so", "xnn_pack_qs8_qc8w_gemm_goi_w"): 800,
        ("lib.so", "xnn_qs8_qc8w_igemm_minmax_fp32_ukernel_4x16c4__asm_aarch64_neondot_ld128"): 100,
        ("lib.so", "xnn_qs8_qc8w_gemm_minmax_fp32_ukernel_4x16c4__asm_aarch64_neondot_ld128"): 500,
    })  # fmt: skip
    main = kernels.main_matmul_kernel(totals)
    assert main is not None and main.instructions == 500 and main.family == "neondot"
    assert kernels.top_kernels(totals, 2)[0].instructions == 900


def test_blocks_map_to_symbols_through_load_segments(tmp_path: Path) -> None:
    table = symbols.SymbolTable(
        starts=(0x1000, 0x1100), ends=(0x1100, 0x1180), names=("f", "g"),
        segments=((0x0, 0x0, 0x800), (0x800, 0x1000, 0x400)),
    )  # fmt: skip
    assert table.vaddr_of(0x900) == 0x1100 and table.name_at(0x1100) == "g"
    assert table.name_at(0x1200) == symbols.UNKNOWN
    maps = "5500000000-5500001000 r-xp 00000800 fe:00 1 /lib/libx.so\n5500001000-5500002000 rw-p 0 0 0 [heap]\n"
    assert symbols.parse_maps(maps) == [
        symbols.Mapping(0x5500000000, 0x5500001000, 0x800, "/lib/libx.so")
    ]
    blocks = symbols.parse_blocks(["m 5", "tb 5500000010 4 10", "tb 10 2 3"])
    assert [b.instructions for b in blocks] == [40, 6]


# ------------------------------------------------------------------------ parity
def test_parity_counts_identical_rows_max_difference_and_changed_sets() -> None:
    host = np.array([[10, 200], [30, 40], [50, 60]], np.uint8)
    arm = host.copy()
    arm[1, 0] = 33  # changes the value, not the decision
    arm[2, 1] = 140  # crosses the threshold
    parity = compare_outputs(host, arm, lambda raw: raw >= 128)
    assert (parity.identical, parity.total) == (1, 3)
    assert (parity.max_abs_diff, parity.changed_sets) == (80.0, 1)
    assert not parity.exact and compare_outputs(host, host).exact
    with pytest.raises(PosterliteError, match="do not match"):
        compare_outputs(host, host.astype(np.float32))


# ------------------------------------------------------------------------ through the emulator
@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """The tiny int8 model, 4 prepared posters and the host's raw outputs on them."""
    tiny = session_tiny_run(tmp_path_factory)
    model = PosterModel.load(tiny["int8"])
    folder = tmp_path_factory.mktemp("arm-posters")
    pixels = np.stack([load_poster(make_poster(folder / f"p{i}.jpg", 40 + i), model.input_size)
                       for i in range(4)])  # fmt: skip
    inputs = model.prepare(pixels)
    return tiny["int8"], inputs, model.run(inputs)


@pytest.fixture(scope="module")
def tiny_a76_runs(tiny_inputs: tuple[Path, np.ndarray, np.ndarray]) -> list[ArmRun]:
    if TOOLS_MISSING is not None:
        pytest.skip(TOOLS_MISSING)
    path, inputs, _ = tiny_inputs
    return [run_arm(path, inputs, "a76") for _ in range(2)]


@needs_tools
def test_tiny_model_on_arm_matches_the_host_byte_for_byte(
    tiny_inputs: tuple[Path, np.ndarray, np.ndarray], tiny_a76_runs: list[ArmRun]
) -> None:
    _, inputs, host = tiny_inputs
    run = tiny_a76_runs[0]
    assert run.xnnpack
    assert run.output.dtype == host.dtype and run.output.shape == host.shape
    parity = compare_outputs(host, run.output)
    assert parity.exact, parity
    assert run.qemu_problem is None and run.profile.name == "a76"


@needs_tools
def test_tiny_model_instruction_counts_are_per_inference_and_repeat_exactly(
    tiny_inputs: tuple[Path, np.ndarray, np.ndarray], tiny_a76_runs: list[ArmRun]
) -> None:
    first, second = tiny_a76_runs
    assert len(first.instructions) == len(tiny_inputs[1])
    # One 32 px conv + dense: tens of thousands of instructions per invoke, far below the
    # start-up (Python, numpy, LiteRT), which the markers keep out of the count.
    assert all(20_000 < n < 5_000_000 for n in first.instructions), first.instructions
    assert first.startup_instructions is not None
    assert first.startup_instructions > 50 * max(first.instructions)
    assert same_counts(tiny_a76_runs) is True
    assert first.instructions == second.instructions
    assert first.kernels == second.kernels
    # The convolution kernel runs inside invokes only, so within the per-inference counts.
    assert first.matmul_kernel is not None
    assert 0 < first.matmul_kernel.instructions < sum(first.instructions)


@needs_tools
def test_uncounted_run_gives_the_same_outputs_without_counts(
    tiny_inputs: tuple[Path, np.ndarray, np.ndarray], tiny_a76_runs: list[ArmRun]
) -> None:
    path, inputs, host = tiny_inputs
    run = run_arm(path, inputs[:2], "a53", count_instructions=False)
    assert not run.counted and run.median_instructions is None and run.kernels == ()
    assert np.array_equal(run.output, host[:2])


@needs_tools
def test_known_bad_emulator_profile_is_refused_before_running(
    tiny_inputs: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    found = tools.find_tools()
    if qemu_problem(get_profile("sme"), found.qemu_version) is None:
        pytest.skip(f"QEMU {found.qemu_version_text} runs SME correctly")
    path, inputs, _ = tiny_inputs
    with pytest.raises(PosterliteError, match="ARM CPU sme on QEMU .*: (known bad|not verified)"):
        run_arm(path, inputs, "sme", tools=found)


@needs_tools
def test_known_bad_emulator_profile_computes_wrong_int8_outputs_when_forced(tmp_path: Path) -> None:
    """QEMU 7.2 + SME: the refusal is about a real fault. The shipped int8 MobileNetV2 on SME
    kernels gives outputs unlike x86's; the run carries the problem it was warned about."""
    found = tools.find_tools()
    if found.qemu_version not in get_profile("sme").known_bad_qemu:
        pytest.skip(f"QEMU {found.qemu_version_text} is not a known-bad version")
    if not SHIPPED_INT8.is_file():
        pytest.skip(f"{SHIPPED_INT8} not present")
    model = PosterModel.load(SHIPPED_INT8)
    pixels = np.stack([load_poster(make_poster(tmp_path / f"p{i}.jpg", i, (300, 450)), 224)
                       for i in range(2)])  # fmt: skip
    inputs = model.prepare(pixels)
    run = run_arm(SHIPPED_INT8, inputs, "sme", tools=found, allow_known_bad=True)
    assert run.qemu_problem is not None and "known bad" in run.qemu_problem
    assert run.kernel_family == "sme"
    assert compare_outputs(model.run(inputs), run.output).identical == 0


@needs_tools
def test_tools_record_pins_the_hosts_litert() -> None:
    found = tools.find_tools()
    assert found.litert_version == tools.host_version(tools.LITERT_DIST)
    assert found.python.is_file() and found.plugin.is_file()
    assert os.access(found.qemu, os.X_OK)
    assert profiles.PROFILE_NAMES[:3] == ("a53", "a76", "a710")


@needs_tools
def test_build_keeps_an_up_to_date_tools_folder(capsys: pytest.CaptureFixture[str]) -> None:
    root = tools.tools_dir()
    before = tools.read_record(root)
    sysroot_inode = (root / tools.SYSROOT_NAME).stat().st_ino
    assert build.build_tools(root) == before
    assert "up to date" in capsys.readouterr().out
    assert (root / tools.SYSROOT_NAME).stat().st_ino == sysroot_inode  # not rebuilt


@needs_tools
def test_profile_results_report_parity_and_repeat_determinism(
    tiny_inputs: tuple[Path, np.ndarray, np.ndarray], tiny_a76_runs: list[ArmRun]
) -> None:
    _, _, host = tiny_inputs
    (result,) = profile_results(host, [tiny_a76_runs])
    assert result.profile.name == "a76" and result.parity.exact
    assert result.deterministic is True and result.run is tiny_a76_runs[0]


@needs_tools
def test_run_profiles_refuses_a_known_bad_profile_before_running_any(
    tiny_inputs: tuple[Path, np.ndarray, np.ndarray],
) -> None:
    found = tools.find_tools()
    if qemu_problem(get_profile("sme"), found.qemu_version) is None:
        pytest.skip(f"QEMU {found.qemu_version_text} runs SME correctly")
    path, inputs, _ = tiny_inputs
    progress: list[int] = []
    with pytest.raises(PosterliteError, match="ARM CPU sme on QEMU"):
        run_profiles(path, inputs, parse_profiles("a76,sme"), tools=found, progress=progress.append)
    assert progress == []  # nothing was started


# ------------------------------------------------------------------------ through posterlite bench
ARM_BENCH_OPTIONS = {"runs": 2, "warmup": 0, "rounds": 1, "references": False}


@pytest.fixture(scope="module")
def arm_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("arm-sample") / "sample")


@pytest.fixture(scope="module")
def api_report(tmp_path_factory: pytest.TempPathFactory, arm_sample: Path) -> BenchReport:
    """`posterlite.bench(tiny int8, target="arm64", arm_cpu="a76")` on the 8-poster sample."""
    if TOOLS_MISSING is not None:
        pytest.skip(TOOLS_MISSING)
    tiny = session_tiny_run(tmp_path_factory)
    return posterlite.bench([tiny["int8"]], target="arm64", arm_cpu="a76", data=arm_sample,
                            **ARM_BENCH_OPTIONS)  # fmt: skip


@needs_tools
def test_bench_arm64_row_is_identical_to_the_host_and_counted(api_report: BenchReport) -> None:
    host, arm = api_report.rows
    assert (host.target, arm.target) == ("cpu", "arm64") and api_report.target == "arm64"
    assert arm.label == host.label == "tiny/int8" and arm.latency is None  # no emulated latency
    figures = arm.arm
    assert figures is not None and figures.cpu == "a76"
    assert (figures.identical, figures.posters) == (len(SAMPLE_LABELS), len(SAMPLE_LABELS))
    assert (
        figures.max_abs_diff == 0 and figures.changed_sets == 0 and figures.output_dtype == "uint8"
    )
    # Identical outputs: the ARM row's accuracy is the host row's, figure for figure.
    assert arm.accuracy == host.accuracy and arm.accuracy is not None
    assert 20_000 < figures.instructions_min <= figures.instructions_median
    assert figures.instructions_max < 5_000_000
    assert figures.repeat_same and len(figures.repeat_instructions) > 1
    assert figures.kernel_family == "neondot" and figures.family_as_expected
    assert api_report.settings.arm_cpu == ("a76",) and api_report.settings.limit == 50
    table = posterlite.bench.summary_table(api_report)
    assert (
        f"| tiny | int8 | a76 | 8/8 | 0 | 0 | {host.accuracy.mean_average_precision:.4f} |" in table
    )
    assert "not a phone's latency" in table


@needs_tools
def test_bench_arm64_report_round_trips_through_json(api_report: BenchReport) -> None:
    again = BenchReport.from_json(api_report.to_json())
    assert again.rows == api_report.rows and again.ratios == api_report.ratios
    assert again.settings == api_report.settings and again.target == "arm64"
    assert again.to_json() == api_report.to_json()


@needs_tools
def test_bench_arm64_cli_prints_the_rows_and_repeats_the_apis_counts(
    tmp_path_factory: pytest.TempPathFactory,
    arm_sample: Path,
    api_report: BenchReport,
    tmp_path: Path,
) -> None:
    """The CLI's run is a new pair of emulator processes: the same instructions per
    inference, poster for poster, as the API's run."""
    tiny = session_tiny_run(tmp_path_factory)
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(main, [
        "bench", str(tiny["int8"]), "--target", "arm64", "--arm-cpu", "a76", "--data",
        str(arm_sample), "--runs", "2", "--warmup", "0", "--rounds", "1", "--no-references",
        "--json", str(out), "--plot", str(tmp_path / "bench.png"),
    ])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "| tiny | int8 | a76 | 8/8 | 0 | 0 |" in result.stdout
    assert (tmp_path / "bench.png").stat().st_size > 0
    cli_arm = BenchReport.from_json(out.read_text()).rows[1].arm
    api_arm = api_report.rows[1].arm
    assert cli_arm is not None and api_arm is not None
    assert cli_arm.instructions_median == api_arm.instructions_median
    assert cli_arm.first_instructions == api_arm.first_instructions
    assert cli_arm.top_kernels == api_arm.top_kernels


def test_bench_arm64_without_tools_is_one_line_naming_make_arm_tools(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Refused before anything is measured: the (missing) model is never looked at."""
    monkeypatch.setenv(tools.TOOLS_ENV, str(tmp_path / "no-tools"))
    result = CliRunner().invoke(main, ["bench", "missing.tflite", "--target", "arm64"])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and line.endswith("run `make arm-tools`")
    with pytest.raises(tools.ArmToolsMissing) as refused:
        posterlite.bench(["missing.tflite"], target="arm64")
    assert f"error: {refused.value}" == line
