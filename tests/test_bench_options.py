"""posterlite.bench.options and the targets' option rules: the CLI and `posterlite.bench(...)`
refuse the same combinations, with the same one-line message, before anything runs (the
arm64 target's classes too: unknown names, and SME on a QEMU known to compute it wrongly).

Each case runs through both: `posterlite bench missing.tflite <args>` (one `error:` line,
exit status 1) and `posterlite.bench(["missing.tflite"], **kwargs)` (PosterliteError). The
model does not exist, so a refusal that came late would read "model not found" instead.
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import posterlite
from posterlite.arm.profiles import get_profile, qemu_problem
from posterlite.arm.tools import find_qemu, qemu_version
from posterlite.bench import BenchOptions, check_options
from posterlite.bench.options import APP_RUNTIMES, ARM_DEFAULT_POSTERS, TARGET_CHOICES
from posterlite.cli import main
from posterlite.errors import PosterliteError

MISSING = "missing.tflite"
NEED_BROWSER = "--browser-runtime/--browser-threads/--chromium/--cpu-throttle need --target browser"
NEED_ANDROID = "--serial/--benchmark-binary/--use-gpu/--use-nnapi need --target android"
ROUNDS = "--runs and --rounds must be >= 1 and --warmup >= 0"

# (CLI arguments, the same as posterlite.bench keywords, the message both give)
REFUSALS = [
    (["--runtime", "mediapipe", "--target", "android"],
     {"app_runtime": "mediapipe", "target": "android"}, "--runtime mediapipe needs --target cpu"),
    (["--runtime", "mediapipe", "--target", "browser"],
     {"app_runtime": "mediapipe", "target": "browser"}, "--runtime mediapipe needs --target cpu"),
    (["--browser-threads", "2"], {"browser_threads": 2}, NEED_BROWSER),
    (["--browser-runtime", "litert"], {"browser_runtimes": "litert"}, NEED_BROWSER),
    (["--chromium", "/usr/bin/chromium"], {"chromium": "/usr/bin/chromium"}, NEED_BROWSER),
    (["--cpu-throttle", "4"], {"cpu_throttle": "4"}, NEED_BROWSER),
    (["--target", "android", "--browser-threads", "2"],
     {"target": "android", "browser_threads": 2}, NEED_BROWSER),
    (["--serial", "emulator-5554"], {"serial": "emulator-5554"}, NEED_ANDROID),
    (["--use-gpu"], {"use_gpu": True}, NEED_ANDROID),
    (["--use-nnapi"], {"use_nnapi": True}, NEED_ANDROID),
    (["--benchmark-binary", "benchmark_model"], {"benchmark_binary": "benchmark_model"},
     NEED_ANDROID),
    (["--target", "browser", "--serial", "emulator-5554"],
     {"target": "browser", "serial": "emulator-5554"}, NEED_ANDROID),
    (["--target", "browser", "--browser-threads", "0"],
     {"target": "browser", "browser_threads": 0}, "--browser-threads must be >= 1 (got 0)"),
    (["--rounds", "0"], {"rounds": 0}, ROUNDS),
    (["--runs", "0"], {"runs": 0}, ROUNDS),
    (["--warmup", "-1"], {"warmup": -1}, ROUNDS),
    (["--threads", "0"], {"threads": "0"}, "--threads must be positive integers (got '0')"),
    (["--target", "browser", "--cpu-throttle", "0"], {"target": "browser", "cpu_throttle": "0"},
     "--cpu-throttle rates must be >= 1 (got '0')"),
    (["--formats", "int4"], {"formats": "int4"},
     "unknown format(s) ['int4']: choose from fp32, fp16, dynamic, int8 or all"),
    (["--arm-cpu", "a53"], {"arm_cpu": "a53"}, "--arm-cpu needs --target arm64"),
    (["--target", "browser", "--arm-cpu", "a76"], {"target": "browser", "arm_cpu": ("a76",)},
     "--arm-cpu needs --target arm64"),
    (["--target", "arm64", "--arm-cpu", "a53,a77"], {"target": "arm64", "arm_cpu": "a53,a77"},
     "unknown ARM CPU 'a77': choose from a53, a76, a710, sme"),
    (["--target", "arm64", "--arm-cpu", "a53,,a76"], {"target": "arm64", "arm_cpu": "a53,,a76"},
     "--arm-cpu takes names separated by commas, like a53,a76 (got 'a53,,a76')"),
    (["--target", "arm64", "--runtime", "mediapipe"], {"target": "arm64", "app_runtime": "mediapipe"},
     "--runtime mediapipe needs --target cpu"),
    (["--limit", "0"], {"limit": 0}, "--limit must be >= 1 (got 0)"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "kwargs", "message"), REFUSALS)
def test_cli_and_api_refuse_the_same_options(args, kwargs, message) -> None:
    result = CliRunner().invoke(main, ["bench", MISSING, *args])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [f"error: {message}"]
    with pytest.raises(PosterliteError) as refused:
        posterlite.bench([MISSING], **kwargs)
    assert str(refused.value) == message


def test_sme_on_a_qemu_known_to_compute_it_wrongly_is_refused_by_both() -> None:
    """QEMU 7.2 computes XNNPACK's int8 SME kernels wrongly: `--arm-cpu sme` is refused
    there, naming the fault, before the tools or the model are looked at."""
    qemu = find_qemu()
    if qemu is None:
        pytest.skip("no qemu-aarch64: the refusal needs the QEMU's version")
    version, text = qemu_version(qemu)
    message = qemu_problem(get_profile("sme"), version)
    if message is None:
        pytest.skip(f"QEMU {text} runs SME correctly")
    assert "known bad" in message or "not verified" in message
    test_cli_and_api_refuse_the_same_options(
        ["--target", "arm64", "--arm-cpu", "a76,sme"], {"target": "arm64", "arm_cpu": "a76,sme"},
        message,
    )  # fmt: skip


def test_arm64_scores_50_posters_unless_limit_says_otherwise() -> None:
    assert BenchOptions(target="arm64").poster_limit == ARM_DEFAULT_POSTERS == 50
    assert BenchOptions(target="arm64", limit=200).poster_limit == 200
    assert BenchOptions().poster_limit is None and BenchOptions(limit=7).poster_limit == 7
    options = BenchOptions.from_api([MISSING], target="arm64", arm_cpu="a53, a710")
    assert options.arm_cpu == ("a53", "a710")
    check_options(options)  # valid classes: nothing refused


def test_accepted_options_reach_the_models() -> None:
    """Without a refusal both go on to the models (and find none here)."""
    result = CliRunner().invoke(main, ["bench", MISSING, "--target", "browser"])
    assert result.stderr.splitlines() == [f"error: model not found: {MISSING}"]
    with pytest.raises(PosterliteError, match="model not found"):
        posterlite.bench([MISSING], target="browser", cpu_throttle=(1,), browser_threads=2)


def test_api_only_refusals_and_unknown_keywords() -> None:
    """What click's choices stop on the command line, the API refuses itself."""
    with pytest.raises(PosterliteError, match="unknown target 'phone'"):
        check_options(BenchOptions(target="phone"))  # type: ignore[arg-type]
    with pytest.raises(PosterliteError, match="unknown runtime 'tflite'"):
        check_options(BenchOptions(app_runtime="tflite"))  # type: ignore[arg-type]
    with pytest.raises(PosterliteError, match="unknown browser runtime 'webgpu'"):
        check_options(BenchOptions(target="browser", browser_runtimes=("webgpu",)))
    with pytest.raises(TypeError, match="unknown option"):
        posterlite.bench([MISSING], round=3)


def test_cli_choices_are_the_option_literals() -> None:
    command = main.get_command(click.Context(main), "bench")  # loaded on first use
    assert command is not None
    choices = {p.name: p.type for p in command.params if isinstance(p.type, click.Choice)}
    assert tuple(choices["target"].choices) == TARGET_CHOICES
    assert tuple(choices["app_runtime"].choices) == APP_RUNTIMES


def test_from_api_parses_the_clis_text() -> None:
    options = BenchOptions.from_api(
        [Path("a.tflite")], formats="all", threads="1,2", cpu_throttle=4, data="d", target="browser"
    )
    assert options.models == ("a.tflite",) and options.formats == (
        "fp32",
        "fp16",
        "dynamic",
        "int8",
    )
    assert options.threads == (1, 2) and options.cpu_throttle == (4,)
    assert options.data == Path("d") and options.native_threads == (1, 2)
    assert BenchOptions(target="browser", browser_threads=4).native_threads == (1, 4)
    assert BenchOptions(browser_threads=4).native_threads == (1,)
