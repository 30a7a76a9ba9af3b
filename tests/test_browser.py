"""posterlite.browser: the static page and the browser bench, in real headless Chromium.

Chromium (Debian's), node and posterlite/web/node_modules come from `make browser-tools`;
tests that need them skip with the reason when they are absent. Pages are served from
127.0.0.1 by a real HTTP server. A tiny converted model keeps the default suite fast;
the shipped int8 MobileNetV2 on a real poster is the `shared` test.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, make_poster
from tiny_models import THRESHOLDS, session_tiny_run

from posterlite import browser
from posterlite.bench import options as bench_options
from posterlite.bench.browser_ratio import verdict
from posterlite.bench.targets import browser as browser_target
from posterlite.cli import main
from posterlite.errors import PosterliteError
from posterlite.metadata import read_metadata
from posterlite.runtime import PosterModel

TOOLS = browser.find_tools()
NO_MODULES = not (TOOLS.modules / "@litertjs" / "core").is_dir()
NO_BROWSER = NO_MODULES or TOOLS.chromium is None or TOOLS.node is None
needs_modules = pytest.mark.skipif(
    NO_MODULES, reason=f"no npm runtimes in {TOOLS.modules}: run `make browser-tools`"
)
needs_browser = pytest.mark.skipif(
    NO_BROWSER,
    reason="needs Chromium + node + posterlite/web/node_modules: run `make browser-tools`",
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return session_tiny_run(tmp_path_factory)


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[-1]


# ------------------------------------------------------------------ no browser needed
def test_static_batch_model_changes_only_the_signature(tiny: dict[str, Path]) -> None:
    original = tiny["int8"].read_bytes()
    patched = browser.static_batch_model(original)
    assert len(patched) == len(original)
    changed = np.flatnonzero(np.frombuffer(original, np.uint8) != np.frombuffer(patched, np.uint8))
    assert 0 < changed.size < 64  # a few int32 slots: -1 (0xffffffff) -> 1
    out = tiny["root"] / "patched.tflite"
    out.write_bytes(patched)
    from ai_edge_litert.interpreter import Interpreter

    signature = Interpreter(model_path=str(out)).get_input_details()[0]["shape_signature"]
    assert list(signature)[0] == 1
    pixels = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    before = PosterModel.load(tiny["int8"]).predict_pixels(pixels)
    after = PosterModel.load(out).predict_pixels(pixels)
    np.testing.assert_array_equal(before, after)
    assert read_metadata(out).genres == read_metadata(tiny["int8"]).genres


def test_static_batch_model_rejects_junk() -> None:
    with pytest.raises(PosterliteError, match="not a TFLite flatbuffer"):
        browser.static_batch_model(b"\x00\x01junk" * 3)


def test_model_config_carries_metadata_and_the_hosts_quantization(tiny: dict[str, Path]) -> None:
    config = browser.model_config(tiny["int8"], "mediapipe", {"mediapipe": "1", "litert": "2"})
    host = PosterModel.load(tiny["int8"])
    assert config["genres"] == list(host.genres)
    assert config["thresholds"] == pytest.approx(THRESHOLDS)
    assert config["name"] == "tiny" and config["version"] == "7"
    assert config["input_dtype"] == "uint8" and config["size"] == 32
    # The page's pixel -> input table is the host runtime's own preprocessing.
    levels = np.resize(np.arange(256, dtype=np.uint8), (32, 32, 3))
    assert config["input_lut"] == host.prepare(levels).reshape(-1)[:256].tolist()
    float_config = browser.model_config(tiny["fp32"], "litert", {})
    assert float_config["input_dtype"] == "float32"
    assert float_config["input_lut"][0] == pytest.approx(-1.0)
    assert float_config["input_lut"][255] == pytest.approx(1.0)


def test_parse_options() -> None:
    assert bench_options.parse_throttles("1,4") == (1, 4)
    assert bench_options.parse_runtimes(None) == (browser.DEFAULT_RUNTIME,)
    assert set(bench_options.parse_runtimes("both")) == set(browser.RUNTIMES)
    for bad in ("0", "x", ""):
        with pytest.raises(PosterliteError):
            bench_options.parse_throttles(bad)


def test_server_serves_wasm_and_modules_with_browser_types(tmp_path: Path) -> None:
    (tmp_path / "a.wasm").write_bytes(b"\0asm")
    (tmp_path / "b.mjs").write_text("export {};")
    with browser.serve(tmp_path) as base:
        assert base.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(base + "a.wasm") as response:
            assert response.headers["Content-Type"] == "application/wasm"
        with urllib.request.urlopen(base + "b.mjs") as response:
            assert response.headers["Content-Type"].startswith("text/javascript")


def test_server_sends_cross_origin_isolation_headers_unless_asked_not_to(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<p>hi</p>")
    with browser.serve(tmp_path) as base, urllib.request.urlopen(base + "index.html") as response:
        assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    with (
        browser.serve(tmp_path, isolated=False) as base,
        urllib.request.urlopen(base + "index.html") as response,
    ):
        assert response.headers["Cross-Origin-Opener-Policy"] is None
        assert response.headers["Cross-Origin-Embedder-Policy"] is None


def test_ratio_to_native_on_both_sides_of_the_target() -> None:
    # median of per-round ratios: rounds 3.0, 3.9, 5.0 -> 3.9 (met); 4.1, 4.2, 3.0 -> 4.1
    met = verdict([6.0, 7.8, 10.0], [2.0, 2.0, 2.0], 4.0)
    assert met.ratio == pytest.approx(3.9) and met.met is True
    assert met.per_round == pytest.approx((3.0, 3.9, 5.0))
    missed = verdict([8.2, 8.4, 6.0], [2.0, 2.0, 2.0], 4.0)
    assert missed.ratio == pytest.approx(4.1) and missed.met is False
    assert verdict([8.0], [2.0], 4.0).met is True  # exactly 4x is within
    assert verdict([8.0], [2.0], target=3.0).met is False
    for bad in (([1.0], []), ([], []), ([1.0], [0.0])):
        with pytest.raises(ValueError):
            verdict(*bad, 4.0)


def test_browser_ratio_renders_the_verdict_from_the_data() -> None:
    """benchmarks/browser_ratio.py: each row's ratio is to native at the threads the page
    used; "met"/"missed" and the loaded-machine warning follow the JSON."""
    import importlib
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    script = importlib.import_module("browser_ratio")

    def entry(runtime: str, asked: int, used: int, p50: list[float]) -> dict:
        rounds = [{"threads": str(used), "wasm_variant": f"{runtime}.wasm (x)",
                   "cross_origin_isolated": "true"} for _ in p50]  # fmt: skip
        return {"runtime": runtime, "threads_requested": asked, "p50_ms": p50,
                "load_ms": [500.0] * len(p50), "rounds": rounds}  # fmt: skip

    payload = {
        "command": "python benchmarks/browser_ratio.py",
        "environment": {"cpu": "X", "load_average_1min_at_start": 0.2},
        "load_average_1min_at_end": 0.4, "model": "m.tflite", "model_sha256": "abc",
        "poster": "p.jpg", "chromium": "156", "cpu_throttle": 1, "rounds": 2,
        "runs_per_round": 5, "warmup": 1, "target_ratio": 4.0,
        "native_p50_ms": {"1": [4.0, 4.0], "2": [2.0, 2.0]},
        "browser": [entry("mediapipe", 1, 1, [18.0, 19.0]), entry("litert", 2, 2, [7.0, 7.5])],
    }  # fmt: skip
    text = script.render(payload)
    assert "| 1 / 1 | true | 18.50 | 4.00 | 4.62x | 4.62x | 4.50, 4.75 | missed |" in text
    assert "| 2 / 2 | true | 7.25 | 2.00 | 3.62x | 3.62x | 3.50, 3.75 | met |" in text
    assert "Overall (int8): **met** by LiteRT.js at 2 thread(s)" in text
    assert "not quiet" not in text and "not run: MediaPipe web at 2 threads" in text
    payload["browser"][1]["p50_ms"] = [9.0, 8.5]  # 4.5x, 4.25x: both rows miss now
    payload["load_average_1min_at_end"] = 3.5  # the run's own load: still a record
    assert "not quiet" not in script.render(payload)
    payload["environment"]["load_average_1min_at_start"] = 3.5
    text = script.render(payload)
    assert "| 2 / 2 | true | 8.75 | 2.00 | 4.38x | 4.38x | 4.50, 4.25 | missed |" in text
    assert "Overall (int8): **missed**: the best is LiteRT.js at 2 thread(s), 4.38x" in text
    assert "**Not a record: the machine was not quiet** (1-min load average at start: 3.5;" \
        in text  # fmt: skip


def test_browser_threads_need_the_browser_target(tiny: dict[str, Path]) -> None:
    result = CliRunner().invoke(main, ["bench", str(tiny["int8"]), "--browser-threads", "2"])
    assert "--browser-threads" in _one_line_error(result)
    import posterlite  # the Python API takes it as a BenchOptions field, checked alike

    for bad, message in ((2, "need --target browser"), (0, "must be >= 1")):
        with pytest.raises(PosterliteError, match=message):
            posterlite.bench([tiny["int8"]], browser_threads=bad, references=False)


def _wasm_facts(path: Path) -> tuple[bool, int]:
    """(shared memory, functions declaring v128 locals) of a .wasm: threads and SIMD128."""
    data = path.read_bytes()

    def leb(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value, pos

    pos, shared, v128 = 8, False, 0
    while pos < len(data):
        section, (size, body) = data[pos], leb(pos + 1)
        if section == 2:  # imports: a memory import's limits flags (bit 1 = shared)
            count, q = leb(body)
            for _ in range(count):
                for _ in range(2):  # module and field names
                    length, q = leb(q)
                    q += length
                kind, q = data[q], q + 1
                if kind == 0:
                    _, q = leb(q)
                elif kind == 1:  # table: element type, limits
                    flags, q = data[q + 1], q + 2
                    _, q = leb(q)
                    if flags & 1:
                        _, q = leb(q)
                elif kind == 2:
                    flags, q = data[q], q + 1
                    shared |= bool(flags & 2)
                    _, q = leb(q)
                    if flags & 1:
                        _, q = leb(q)
                else:  # global: value type, mutability
                    q += 2
        elif section == 5:  # memories
            shared |= bool(data[leb(body)[1]] & 2)
        elif section == 10:  # code: each body starts with its local declarations
            count, q = leb(body)
            for _ in range(count):
                length, q = leb(q)
                end = q + length
                groups, r = leb(q)
                for _ in range(groups):
                    _, r = leb(r)
                    v128 += data[r] == 0x7B
                    r += 1
                q = end
        pos = body + size
    return shared, v128


def _relaxed_simd(paths: list[Path]) -> dict[str, bool]:
    """Which .wasm files use a relaxed-SIMD instruction, by web/no_relaxed_simd.js's decoder
    (in node: the decoder the Chromium tests switch relaxed SIMD off with)."""
    import subprocess

    script = (
        'const fs = require("node:fs"); globalThis.self = globalThis;'
        f"eval(fs.readFileSync({json.dumps(str(browser.NO_RELAXED_SIMD))}, 'utf8'));"
        "const out = {}; for (const f of JSON.parse(process.argv[1]))"
        " out[f] = self.plNoRelaxedSimd(fs.readFileSync(f));"
        "console.log(JSON.stringify(out));"
    )
    done = subprocess.run([str(TOOLS.node), "-e", script, json.dumps([str(p) for p in paths])],
                          capture_output=True, text=True, check=True, timeout=300)  # fmt: skip
    return {Path(k).name: v for k, v in json.loads(done.stdout).items()}


@needs_modules
def test_wasm_variant_table_matches_the_vendored_files() -> None:
    folders = [TOOLS.modules / "@litertjs" / "core" / "wasm",
               TOOLS.modules / "@mediapipe" / "tasks-vision" / "wasm"]  # fmt: skip
    files = {p.name: p for folder in folders for p in folder.glob("*.wasm")}
    assert set(files) == set(browser.WASM_VARIANTS)
    for name, description in browser.WASM_VARIANTS.items():
        shared, v128 = _wasm_facts(files[name])
        assert shared == ("+ threads" in description), name
        assert (v128 > 0) == ("no SIMD" not in description), name
    if TOOLS.node is None:
        pytest.skip("no node: the relaxed-SIMD column is not checked")
    relaxed = _relaxed_simd(list(files.values()))
    for name, description in browser.WASM_VARIANTS.items():
        assert relaxed[name] == description.startswith("relaxed SIMD"), name


def test_missing_chromium_is_one_clean_line(tiny: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["bench", str(tiny["int8"]), "--target", "browser", "--chromium", str(tmp_path / "nope")],
    )
    line = _one_line_error(result)
    assert "Chromium not found" in line or "browser runtimes not installed" in line


def test_web_rejects_a_file_that_is_not_a_model(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer" * 10)
    result = CliRunner().invoke(main, ["web", str(junk), "--out", str(tmp_path / "page")])
    assert "junk.tflite" in _one_line_error(result)
    assert not (tmp_path / "page").exists()


# ------------------------------------------------------------ hostile input, no browser
HTML_SINKS = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|srcdoc|\beval\(|new Function|"
    r"setAttribute\(|createContextualFragment|DOMParser"
)


def test_page_files_carry_the_csp_and_build_no_markup_from_strings() -> None:
    """index.html and bench.html carry browser.CONTENT_SECURITY_POLICY in a <meta> tag and
    hold no inline script, style or event handler; no page script has an HTML sink (every
    text reaches the page through textContent)."""
    meta = (
        f'<meta http-equiv="Content-Security-Policy" content="{browser.CONTENT_SECURITY_POLICY}">'
    )
    for name in ("index.html", "bench.html"):
        html = (browser.WEB_DIR / name).read_text()
        assert meta in html, name
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", html), name  # inline script
        assert "<style" not in html and not re.search(r"\son\w+\s*=", html), name
        assert "style=" not in html, name
    for name in ("app.js", "posterlite.js", "bench.js"):
        code = re.sub(r"//.*", "", (browser.WEB_DIR / name).read_text())  # code, not comments
        assert not HTML_SINKS.search(code), (name, HTML_SINKS.search(code))
    assert "script-src 'self' 'wasm-unsafe-eval'" in browser.CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in browser.CONTENT_SECURITY_POLICY
    assert "'unsafe-eval'" not in browser.CONTENT_SECURITY_POLICY.replace("wasm-unsafe-eval", "")


def _raw_status(base: str, request: bytes) -> int:
    """Send one raw request line (bytes http.client would refuse) and read the status."""
    host, port = base.removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/"), reply[:80]
    return int(reply.split(b" ", 2)[1])


def test_server_answers_bad_paths_with_400_or_404_and_no_traceback(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "model.json").write_text("{}")
    (tmp_path / browser.PAGE_MARKER).write_text(browser.PAGE_MARKER_TEXT)
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / "a.js").write_text("export {};")
    cases = {
        b"/model.json%00.html": 400,
        b"/model.json\x00.html": 400,
        b"/%00": 400,
        b"/model.json%0a": 400,
        b"/%ff%fe": 400,  # not UTF-8
        b"/%c0%ae%c0%ae/etc/passwd": 400,  # overlong UTF-8 dots
        b"/..%5c..%5cetc%5cpasswd": 400,  # backslashes
        b"model.json": 400,  # not absolute
        b"/../../../../etc/passwd": 404,
        b"/%2e%2e/%2e%2e/etc/passwd": 404,
        b"/vendor/../../etc/passwd": 404,
        b"/" + browser.PAGE_MARKER.encode(): 404,
        b"/vendor/": 404,  # no directory listing
        b"/model.json": 200,
        b"/vendor/a.js?x=%00": 200,  # the query is not a path
    }
    with browser.serve(tmp_path) as base:
        for path, status in cases.items():
            for method in (b"GET", b"HEAD"):
                got = _raw_status(base, method + b" " + path + b" HTTP/1.0\r\n\r\n")
                assert got == status, (method, path, got)
        with urllib.request.urlopen(base + "model.json") as response:
            assert response.headers["Content-Security-Policy"].startswith(
                browser.CONTENT_SECURITY_POLICY
            )
            assert response.headers["X-Content-Type-Options"] == "nosniff"
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Error" not in err, err


def test_server_closes_idle_connections_within_its_timeout(tmp_path: Path) -> None:
    """Idle and half-sent connections each hold a thread; the socket timeout closes them
    and frees the threads in about REQUEST_TIMEOUT_S, and the server still answers."""
    (tmp_path / "index.html").write_text("<p>hi</p>")
    assert browser.REQUEST_TIMEOUT_S <= 10
    before = threading.active_count()
    with browser.serve(tmp_path) as base:
        host, port = base.removeprefix("http://").rstrip("/").split(":")
        sockets = [socket.create_connection((host, int(port)), timeout=30) for _ in range(6)]
        for sock in sockets[::2]:
            sock.sendall(b"GET /index.html HTTP/1.1\r\nHost: x\r\n")  # never finished
        start = time.monotonic()
        deadline = start + 5
        while threading.active_count() < before + 1 + len(sockets) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() >= before + 1 + len(sockets)  # one thread each
        for sock in sockets:
            assert sock.recv(1024) == b""  # closed by the server, no response
            sock.close()
        waited = time.monotonic() - start
        assert browser.REQUEST_TIMEOUT_S - 0.5 <= waited <= browser.REQUEST_TIMEOUT_S + 3
        deadline = time.monotonic() + 5
        while threading.active_count() > before + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() == before + 1  # only the server's own thread
        with urllib.request.urlopen(base + "index.html", timeout=10) as response:
            assert response.status == 200


def _one_line_refusal(result, folder: Path) -> str:
    line = _one_line_error(result)
    assert str(folder) in line, line
    return line


def test_web_never_replaces_a_folder_it_did_not_write(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """A TF.js model folder (it has a model.json too), a page folder holding the input model,
    the model's own folder, a symlink: each refused in one line naming the folder, with
    every file left as it was."""
    tfjs = tmp_path / "tfjs"
    tfjs.mkdir()
    files = {"model.json": '{"format": "layers-model"}', "group1-shard1of1.bin": "weights",
             "notes.txt": "mine"}  # fmt: skip
    for name, text in files.items():
        (tfjs / name).write_text(text)
    result = CliRunner().invoke(main, ["web", str(tiny["int8"]), "--out", str(tfjs)])
    assert "not a posterlite page" in _one_line_refusal(result, tfjs)
    assert {p.name: p.read_text() for p in tfjs.iterdir()} == files
    # A posterlite page that holds the model (also one folder down): never replaced.
    page = tmp_path / "page"
    (page / "sub").mkdir(parents=True)
    (page / browser.PAGE_MARKER).write_text(browser.PAGE_MARKER_TEXT)
    data = tiny["int8"].read_bytes()
    for model in (page / "model.tflite", page / "sub" / "m.tflite"):
        model.write_bytes(data)
        result = CliRunner().invoke(main, ["web", str(model), "--out", str(page)])
        assert "would delete the model" in _one_line_refusal(result, page)
        assert model.read_bytes() == data
    # The model's own folder, named through a symlink to it.
    link = tmp_path / "link"
    link.symlink_to(page, target_is_directory=True)
    result = CliRunner().invoke(main, ["web", str(page / "model.tflite"), "--out", str(link)])
    assert "symbolic link" in _one_line_refusal(result, link)
    result = CliRunner().invoke(main, ["web", str(link / "model.tflite"), "--out", str(page)])
    assert "would delete the model" in _one_line_refusal(result, page)
    assert (page / "model.tflite").read_bytes() == data
    plain = tmp_path / "models"
    plain.mkdir()
    (plain / "m.tflite").write_bytes(data)
    result = CliRunner().invoke(main, ["web", str(plain / "m.tflite"), "--out", str(plain)])
    _one_line_refusal(result, plain)
    assert (plain / "m.tflite").read_bytes() == data


@needs_modules
def test_web_replaces_its_own_page_and_a_failed_run_keeps_it(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "page"
    browser.write_page(tiny["int8"], out, "litert")
    assert (out / browser.PAGE_MARKER).read_text().startswith("posterlite web page")
    (out / "stale.txt").write_text("from an earlier run")
    browser.write_page(tiny["fp32"], out, "litert")  # its own page: replaced whole
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "model.json").read_text())["input_dtype"] == "float32"
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")}
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"not a model" * 50)
    with pytest.raises(PosterliteError):
        browser.write_page(junk, out, "litert")
    assert {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.tflite", "page"]  # no leftovers


@needs_modules
def test_page_folder_is_public_whatever_the_umask(tiny: dict[str, Path], tmp_path: Path) -> None:
    """Folders 0755, files 0644 (mkdtemp makes 0700): a web server running as another user
    reads the page."""
    old = os.umask(0o077)
    try:
        browser.write_page(tiny["int8"], tmp_path / "page", "litert")
    finally:
        os.umask(old)
    root = tmp_path / "page"
    modes = {p: p.stat().st_mode & 0o777 for p in [root, *root.rglob("*")]}
    assert modes[root] == 0o755
    assert {m for p, m in modes.items() if p.is_dir()} == {0o755}
    assert {m for p, m in modes.items() if p.is_file()} == {0o644}
    assert len(modes) > 10 and not any(p.is_symlink() for p in modes)


@needs_modules
def test_page_is_self_contained(tiny: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "page"
    site = browser.write_page(tiny["int8"], out, "litert")
    for name in ("index.html", "app.js", "posterlite.js", "model.json", "model.tflite"):
        assert (out / name).is_file(), name
    vendor = out / "vendor" / "litert"
    for build in ("litert_wasm_internal", "litert_wasm_threaded_internal",
                  "litert_wasm_compat_internal"):  # fmt: skip
        assert (vendor / f"{build}.wasm").stat().st_size > 1e6
        assert (vendor / f"{build}.js").is_file()
    assert not list(vendor.glob("*jspi*"))  # the page never asks for JSPI
    # How to get threads from a static host: the two headers, in the README and _headers.
    for name in ("README.md", "_headers"):
        text = (out / name).read_text()
        assert "Cross-Origin-Opener-Policy: same-origin" in text, name
        assert "Cross-Origin-Embedder-Policy: require-corp" in text, name
    headers = (out / "_headers").read_text()
    for name, value in browser.SECURITY_HEADERS.items():
        assert f"  {name}: {value}\n" in headers
    # The README says what the compat build adds to the page, measured on this folder.
    compat = sum(f.stat().st_size for f in vendor.glob("litert_wasm_compat_internal.*"))
    written = ("README.md", "_headers", browser.PAGE_MARKER)  # written after the sizes
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.name not in written)
    readme = " ".join((out / "README.md").read_text().split())
    assert f"The compat build adds {compat / 1e6:.1f} MB to this folder" in readme
    assert f"({total / 1e6:.1f} MB in all)" in readme
    assert not (out / "vendor" / "mediapipe").exists()  # only the page's runtime ships
    code = "".join((out / n).read_text() for n in browser.PAGE_FILES)
    assert "cdn" not in code.lower() and "https://" not in code
    assert '"@litertjs/wasm-utils"' not in (out / "vendor" / "litert" / "index.js").read_text()
    assert json.loads((out / "model.json").read_text())["runtime"] == "litert"
    assert site.config["genres"] == list(read_metadata(tiny["int8"]).genres)
    # An unrelated non-empty folder is never replaced.
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(PosterliteError, match="not a posterlite page"):
        browser.write_page(tiny["int8"], other)
    assert (other / "keep.txt").read_text() == "mine"


# ------------------------------------------------------------------- in real Chromium
@needs_browser
def test_page_predicts_the_hosts_genres(tiny: dict[str, Path], tmp_path: Path) -> None:
    poster = make_poster(tmp_path / "poster.jpg", seed=3, size=(120, 180))
    out = tmp_path / "page"
    shot = tmp_path / "page.png"
    result = CliRunner().invoke(
        main,
        ["web", str(tiny["int8"]), "--out", str(out), "--check", str(poster), "--screenshot",
         str(shot)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    host = PosterModel.load(tiny["int8"])
    expected = host.predict_files([poster])[0]
    tuned = host.decide(expected.probabilities, "tuned")
    assert tuned  # the tiny model's biases put some genres above their thresholds
    assert f"{poster}: {', '.join(tuned)} (tuned thresholds" in result.output
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert json.loads((out / "model.json").read_text())["runtime"] == browser.PAGE_RUNTIME


@needs_browser
def test_page_uses_threads_only_when_cross_origin_isolated(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """Served with COOP/COEP the page is cross-origin isolated and LiteRT.js loads its
    threaded build (its pthread workers start); served without, it loads the one-thread
    build and still shows the host's genres."""
    poster = make_poster(tmp_path / "poster.jpg", seed=3, size=(120, 180))
    site = browser.write_page(tiny["int8"], tmp_path / "page", "litert")
    host = PosterModel.load(tiny["int8"])
    tuned = list(host.decide(host.predict_files([poster])[0].probabilities, "tuned"))
    isolated = browser.check_page(site.root, poster, visits=1)
    info = isolated.runtime
    assert info["cross_origin_isolated"] is True and info["threads_supported"] is True
    cores = info["hardware_concurrency"]
    assert info["threads_requested"] == min(4, cores)
    if cores > 1:  # one core: the page rightly asks for one thread
        assert info["wasm_files"] == ["litert_wasm_threaded_internal.wasm"]
        assert info["runtime_thread_count"] >= 2 and info["why_not_threaded"] is None
    assert isolated.last["genres"] == tuned
    plain = browser.check_page(site.root, poster, visits=1, isolated=False)
    info = plain.runtime
    assert info["cross_origin_isolated"] is False and info["threads_supported"] is False
    assert info["threads"] == 1
    assert info["wasm_files"] == ["litert_wasm_internal.wasm"]
    if cores > 1:
        assert "cross-origin isolated" in info["why_not_threaded"]
    assert plain.last["genres"] == tuned


@needs_browser
def test_page_loads_the_compat_build_without_relaxed_simd(
    tiny: dict[str, Path], tmp_path: Path
) -> None:
    """In Chromium with relaxed SIMD switched off in the page (web/no_relaxed_simd.js; V8 has
    no flag for it), LiteRT.js's loader fetches its compat (SIMD128) build, on one thread even
    where the page is cross-origin isolated, and the page shows the host's genres; the bench
    row records that build."""
    poster = make_poster(tmp_path / "poster.jpg", seed=3, size=(120, 180))
    site = browser.write_page(tiny["int8"], tmp_path / "page", "litert")
    host = PosterModel.load(tiny["int8"])
    expected = host.predict_files([poster])[0].probabilities
    tuned = list(host.decide(expected, "tuned"))
    for isolated in (True, False):
        check = browser.check_page(site.root, poster, visits=1, isolated=isolated,
                                   init_script=browser.NO_RELAXED_SIMD)  # fmt: skip
        info = check.runtime
        # WebAssembly.validate of a relaxed-SIMD probe is false in the page; SIMD128 is not
        assert info["relaxed_simd"] is False and info["simd"] is True
        assert info["wasm_files"] == ["litert_wasm_compat_internal.wasm"]
        assert info["threads"] == 1 and info["cross_origin_isolated"] is isolated
        if isolated and info["threads_requested"] > 1:
            assert info["why_not_threaded"] == "no relaxed SIMD in this browser"
        assert check.last["genres"] == tuned
        np.testing.assert_allclose(check.last["scores"], expected, atol=1e-6)
    (m,) = browser_target.measure(tiny["int8"], [poster], throttles=(1,), runtimes=("litert",),
                                  runs=2, warmup=1, init_script=browser.NO_RELAXED_SIMD)  # fmt: skip
    record = browser_target.bench_row([m], None, "tiny", "int8").device
    assert record["wasm_variant"] == (
        "litert_wasm_compat_internal.wasm (SIMD128 (no relaxed SIMD), no threads)"
    )
    assert "relaxed_simd" not in record["wasm_features_in_page"].split(",")
    assert "simd" in record["wasm_features_in_page"].split(",")


@needs_browser
def test_bench_browser_rows_parse(tiny: dict[str, Path], tmp_path: Path) -> None:
    data = tmp_path / "data"
    for index, genre in enumerate(["Action", "Drama", "Comedy", "Action", "Romance", "Crime"]):
        make_poster(data / genre / f"p{index}.jpg", seed=index, size=(64, 96))
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(
        main,
        ["bench", str(tiny["int8"]), "--target", "browser", "--browser-runtime", "both",
         "--browser-threads", "2",
         "--cpu-throttle", "1", "--data", str(data), "--runs", "3", "--rounds", "2",
         "--warmup", "1", "--no-references", "--no-keras", "--json", str(out),
         "--plot", str(tmp_path / "bench.png")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    rows = [r for r in report["rows"] if r["target"] == "browser"]
    assert {r["device"]["runtime"] for r in rows} == set(browser.RUNTIMES)
    assert any(r["target"] == "cpu" for r in report["rows"])  # native LiteRT, same run
    for row in rows:
        device = row["device"]
        assert device["emulated_device"] == browser.DEVICE and device["cpu_throttle"] == "1"
        assert device["browser"].startswith("Chromium ") and device["mobile"] == "true"
        assert device["runtime_package"].split("@")[-1][0].isdigit()
        assert row["latency"]["count"] == 6 and row["latency"]["rounds"] == 2
        assert row["load_ms"] > 0 and row["end_to_end_ms"] > 0
        assert row["accuracy"]["n_samples"] == 6
        # read from the page: the .wasm it fetched, isolation, threads asked and used
        assert device["cross_origin_isolated"] == "true" and device["threads_requested"] == "2"
        assert "relaxed_simd" in device["wasm_features_in_page"]
        assert device["threads"] == str(row["threads"])
        assert row["end_to_end_p50_ms"] > 0 and row["model_fetch_ms"] >= 0  # numbers
        # the ratio is to native LiteRT at the browser row's own thread count, same rounds
        same = next(
            r for r in report["rows"] if r["target"] == "cpu" and r["threads"] == row["threads"]
        )
        (ratio,) = [
            r for r in report["ratios"]
            if r["name"] == f"browser ({device['model']}) / native LiteRT"
        ]  # fmt: skip
        page, native = row["latency"]["round_p50_ms"], same["latency"]["round_p50_ms"]
        per_round = [a / b for a, b in zip(page, native, strict=True)]
        assert len(per_round) == 2 and ratio["per_round"] == pytest.approx(per_round)
        assert ratio["value"] == pytest.approx(float(np.median(per_round)))
    by_runtime = {r["device"]["runtime"]: r for r in rows}
    threaded = by_runtime["litert"]["device"]
    assert threaded["wasm_variant"].startswith("litert_wasm_threaded_internal.wasm (relaxed SIMD")
    assert by_runtime["litert"]["threads"] == 2 and threaded["workers_started"] != "0"
    single = by_runtime["mediapipe"]["device"]
    assert single["wasm_variant"].startswith("vision_wasm_internal.wasm (SIMD128")
    assert (
        by_runtime["mediapipe"]["threads"] == 1
        and "no threaded build" in single["why_not_threaded"]
    )
    assert {r["threads"] for r in report["rows"] if r["target"] == "cpu"} == {1, 2}
    # The page decodes and resizes as the host does: the same scores, so the same accuracy.
    native = next(r for r in report["rows"] if r["target"] == "cpu")
    for row in rows:
        assert row["accuracy"]["mean_average_precision"] == pytest.approx(
            native["accuracy"]["mean_average_precision"], abs=1e-9
        )
    assert "browser (Pixel 7 emulated, CPU 1x" in result.output
    assert report["settings"]["cpu_throttle"] == [1]
    assert report["settings"]["browser_threads"] == 2 and report["settings"]["threads"] == [1, 2]
    # Each browser ratio is to native LiteRT at the browser row's own thread count.
    ratios = [r for r in report["ratios"] if r["name"].startswith("browser")]
    assert sorted(r["threads"] for r in ratios) == sorted(r["threads"] for r in rows)
    for ratio in ratios:
        assert f"{ratio['threads']} thread(s)" in ratio["note"]


@needs_browser
def test_page_resizes_bit_exactly_like_the_host(tmp_path: Path) -> None:
    """PNG decodes exactly everywhere, so the page's pixels must equal `load_poster`'s:
    down- and up-scaling, odd sizes, a 1-pixel image, alpha composited on white."""
    from PIL import Image

    from posterlite.preprocess import load_poster

    rng = np.random.default_rng(7)
    paths = []
    for index, (width, height) in enumerate([(224, 331), (182, 268), (37, 500), (301, 97), (1, 1)]):
        path = tmp_path / f"noise{index}.png"
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    opaque = rng.integers(0, 256, (50, 40, 4), dtype=np.uint8)
    opaque[..., 3] = 255
    Image.fromarray(opaque, "RGBA").save(tmp_path / "rgba.png")
    paths.append(tmp_path / "rgba.png")
    got = browser.page_pixels(paths, 224)
    np.testing.assert_array_equal(got, np.stack([load_poster(p, 224) for p in paths]))


@needs_browser
def test_page_error_is_one_clean_line(tiny: dict[str, Path], tmp_path: Path) -> None:
    """A model the web runtime rejects (here: a page whose model file is junk)."""
    out = tmp_path / "page"
    browser.write_page(tiny["int8"], out, "mediapipe")
    (out / "model.tflite").write_bytes(b"not a model at all" * 64)
    poster = make_poster(tmp_path / "p.jpg", seed=1)
    with pytest.raises(PosterliteError) as info:
        browser.check_page(out, poster, visits=1)
    message = str(info.value)
    assert "\n" not in message and "Cannot load the model" in message


@pytest.mark.shared
@needs_browser
def test_shipped_int8_on_a_real_poster(tmp_path: Path) -> None:
    model = REPO / "models" / "mobilenet_v2" / "model.int8.tflite"
    if not model.is_file():
        pytest.skip(f"{model} not built (benchmarks/export_int8.py writes it)")
    # The first poster of the bundled sample, whatever make_sample.py drew.
    poster = min((REPO / "benchmarks" / "sample" / "Images").glob("*.jpg"))
    out = tmp_path / "page"
    browser.write_page(model, out)
    check = browser.check_page(out, poster, visits=1, screenshot=tmp_path / "shot.png")
    host = PosterModel.load(model)
    expected = host.predict_files([poster])[0]
    assert tuple(check.last["genres"]) == host.decide(expected.probabilities, "tuned")
    # Same decoded pixels (libjpeg-turbo in both), same resize, same model: same scores.
    np.testing.assert_allclose(check.last["scores"], expected.probabilities, atol=1e-6)


@needs_modules
def test_installed_runtimes_are_the_locked_versions() -> None:
    lock = json.loads((browser.WEB_DIR / "package-lock.json").read_text())
    installed = browser.runtime_versions(TOOLS.modules)
    for key, package in browser.RUNTIME_PACKAGES.items():
        assert lock["packages"][f"node_modules/{package}"]["version"] == installed[key]


# ------------------------------------------------------------ hostile input, in Chromium
# Each payload, if it ever ran, would set window.plPwned to say which one.
HOSTILE_LABELS = (
    "<img src=x onerror=\"window.plPwned='img'\">",
    "<script>window.plPwned='script'</script>",
    '"><svg onload="window.plPwned=\'svg\'">',
    "javascript:window.plPwned='url'",
    "<iframe srcdoc=\"<script>parent.plPwned='iframe'</script>\"></iframe>",
    "&lt;b&gt; {{constructor.constructor('window.plPwned=1')()}}",
)
HOSTILE_NAME = "</title><script>window.plPwned='name'</script>"
HOSTILE_VERSION = '1"><img src=x onerror="window.plPwned=\'version\'">'
HOSTILE_FILE = '"><svg onload=window.plPwned=1>.tflite'  # a legal file name on Linux


def _inspect(root: Path, pages: list[dict], isolated: bool = True) -> dict[str, dict]:
    """The driver's `inspect` job on pages under `root` (one Chromium, one phone context,
    visited in turn): what each page shows and did, by page path."""
    job = {"kind": "inspect", "throttle": 1, "pages": pages}
    with browser.serve(root, isolated=isolated) as base:
        (result,) = browser.run_driver(TOOLS, base, [job])["results"]
    assert result["ok"], result
    return {page["path"]: page for page in result["pages"]}


def _nothing_ran(result: dict) -> None:
    """No payload ran, no markup was parsed, the page asked for nothing but its own files."""
    assert result["pwned"] is None
    assert result["unexpected"] == [], result["unexpected"]
    assert result["violations"] == []  # CSP never had to stop anything: nothing tried
    assert result["foreign_requests"] == []
    assert not [p for p in result["problems"] if p.startswith("page error")], result["problems"]


@needs_browser
def test_page_shows_hostile_metadata_as_text(tiny: dict[str, Path], tmp_path: Path) -> None:
    """A model whose labels, name, version and file name are HTML/script payloads, through
    the real path (metadata -> posterlite web -> the page), in LiteRT.js (threaded and not)
    and MediaPipe web: the labels are shown exactly as text, nothing runs; inline script
    that does get into the page is refused by its CSP."""
    from posterlite.metadata import MetadataSpec, embed_metadata

    spec = MetadataSpec(name=HOSTILE_NAME, version=HOSTILE_VERSION, genres=HOSTILE_LABELS,
                        thresholds=tuple(THRESHOLDS), input_size=32,
                        description="<script>window.plPwned='description'</script>")  # fmt: skip
    model = tmp_path / HOSTILE_FILE
    model.write_bytes(embed_metadata(tiny["int8"].read_bytes(), spec))
    assert PosterModel.load(model).genres == HOSTILE_LABELS
    poster = make_poster(tmp_path / "poster.jpg", seed=3, size=(120, 180))
    root = tmp_path / "site"
    for runtime in browser.RUNTIMES:
        browser.write_page(model, root / runtime, runtime)
    jobs = [{"path": f"{r}/index.html", "poster": str(poster), "probe_csp": True}
            for r in browser.RUNTIMES]  # fmt: skip
    host = PosterModel.load(model)
    tuned = list(host.decide(host.predict_files([poster])[0].probabilities, "tuned"))
    assert tuned
    isolated = _inspect(root, jobs)
    plain = _inspect(root, jobs[:1], isolated=False)
    for result in [*isolated.values(), *plain.values()]:
        assert result["state"] == "shown", result["texts"]
        assert result["genres"] == list(HOSTILE_LABELS)  # the raw labels, as text
        assert result["verdict_labels"] == tuned
        assert (
            result["texts"]["model"] == f"{HOSTILE_NAME} v{HOSTILE_VERSION} · 6 genres · 32px input"
        )
        assert f"Model {HOSTILE_FILE} (sha256 " in result["texts"]["versions"]
        _nothing_ran(result)
        # Inline script put into the page anyway (an event-handler attribute, a <script>
        # element) is refused by the page's CSP, and reported.
        probe = result["probe"]
        assert probe["pwned"] is None
        assert {v.split()[0] for v in probe["violations"]} == {"script-src-attr", "script-src-elem"}
    threads = isolated["litert/index.html"]["runtime"]
    if threads["hardware_concurrency"] > 1:
        assert threads["threads"] > 1  # the threaded build loads under the CSP
    assert plain["litert/index.html"]["runtime"]["threads"] == 1


def _hostile_configs(base: dict) -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """model.json files written straight into a page (no Python checks on the way): name ->
    (bytes, the status lines the page may show after "Cannot load the model: "; empty: the
    page must classify and show the labels)."""

    def config(**changes: object) -> bytes:
        return json.dumps({**base, **changes}).encode()

    def refused(*why: str) -> tuple[str, ...]:
        return tuple(f"model.json: {w}" for w in why)

    genres, thresholds = list(base["genres"]), list(base["thresholds"])
    render = [
        "a\x00b",
        "\u202egnp.exe",
        "🎬 <b>Drama</b>",
        "__proto__",
        "constructor",
        "<b>" * 85 + "x",
    ]  # fmt: skip  (the last is 256 characters: the limit)
    not_a_file = refused("model is not a .tflite file name beside model.json")
    not_finite = refused("threshold 1 is not a finite number")
    return {
        "render": (config(genres=render), ()),
        "genre_number": (config(genres=[1, 2, 3, 4, 5, 6]), refused("genre 1 is not text")),
        "genre_object": (
            config(genres=[{"toString": HOSTILE_LABELS[0]}, *genres[1:]]),
            refused("genre 1 is not text"),
        ),
        "genre_nested": (
            config(genres=[[["Action"]], *genres[1:]]),
            refused("genre 1 is not text"),
        ),
        "genre_blank": (
            config(genres=[*genres[:2], " \t", *genres[3:]]),
            refused("genre 3 is empty"),
        ),
        "genre_repeat": (
            config(genres=[*genres[:5], genres[0]]),
            refused("genre 6 repeats an earlier genre"),
        ),
        "genre_long": (
            config(genres=["<script>" * 40, *genres[1:]]),
            refused("genre 1 is longer than 256 characters"),
        ),
        "genres_many": (
            config(genres=[f"g{i}" for i in range(10_001)], thresholds=[0.5] * 10_001),
            refused("genres has 10001 entries (1 to 10000 expected)"),
        ),
        "genres_missing": (
            json.dumps({k: v for k, v in base.items() if k != "genres"}).encode(),
            refused("genres is not a list"),
        ),
        "proto_genres": (  # an own "__proto__" key: never the object's prototype
            json.dumps({"__proto__": base}).encode(),
            refused("genres is not a list"),
        ),
        "threshold_infinite": (
            config(thresholds=[9.5, *thresholds[1:]]).replace(b"9.5", b"1e999"),
            not_finite,
        ),
        "threshold_negative": (
            config(thresholds=[0.5, -0.1, *thresholds[2:]]),
            refused("threshold 2 is outside [0, 1]"),
        ),
        "threshold_above_one": (
            config(thresholds=[*thresholds[:5], 1.5]),
            refused("threshold 6 is outside [0, 1]"),
        ),
        "threshold_string": (config(thresholds=["0.5", *thresholds[1:]]), not_finite),
        "threshold_null": (config(thresholds=[None, *thresholds[1:]]), not_finite),
        "threshold_nested": (config(thresholds=[[0.5], *thresholds[1:]]), not_finite),
        "thresholds_short": (
            config(thresholds=thresholds[:5]),
            refused("thresholds has 5 entries (6 expected)"),
        ),
        "name_object": (config(name={"<b>": 1}), refused("name is not text")),
        "model_url": (config(model="https://example.invalid/m.tflite"), not_a_file),
        "model_script": (config(model="javascript:window.plPwned='model'"), not_a_file),
        "model_parent": (config(model="../model.tflite"), not_a_file),
        "runtime_markup": (
            config(runtime=HOSTILE_LABELS[0]),
            refused("runtime is not one of litert, mediapipe"),
        ),
        "size_huge": (config(size=10**9), refused("size is outside [1, 1024]")),
        "not_object": (b"[]", refused("not a JSON object")),
        "not_json": (b"<script>window.plPwned='json'</script>", refused("not valid JSON")),
        "not_utf8": (config(name="x").replace(b'"x"', b'"\xff\xfe"'), refused("not UTF-8 text")),
        "utf16": (json.dumps(base).encode("utf-16"), refused("not UTF-8 text")),
        # 100 000 levels: V8 parses it (an array, so refused); an engine that cannot says so
        "deep": (b"[" * 100_000 + b"]" * 100_000, refused("not a JSON object", "not valid JSON")),
        "oversized": (
            b'{"pad": "' + b"x" * (5 << 20) + b'"}',
            ("model.json is larger than 4194304 bytes",),  # refused before it is parsed
        ),
    }


@needs_browser
def test_page_loader_treats_hostile_configs_as_data(tiny: dict[str, Path], tmp_path: Path) -> None:
    """model.json files written straight into a page, bypassing posterlite's checks: hostile
    strings, types, sizes, encodings and nesting for labels and thresholds (and the fields
    around them). Each page either shows its labels exactly as text or says in one line
    of text what is wrong; nothing runs and nothing is fetched from elsewhere. One
    Chromium, one phone context for every case."""
    page = tmp_path / "page"
    browser.write_page(tiny["int8"], page, "litert")
    base = json.loads((page / "model.json").read_text())
    cases = _hostile_configs(base)
    root = tmp_path / "cases"
    for name, (data, _) in cases.items():
        folder = root / name
        folder.mkdir(parents=True)
        for entry in page.iterdir():
            if entry.name != "model.json" and not entry.name.startswith("."):
                (folder / entry.name).symlink_to(entry)
        (folder / "model.json").write_bytes(data)
    poster = make_poster(tmp_path / "poster.jpg", seed=3, size=(120, 180))
    results = _inspect(root, [{"path": f"{name}/index.html", "poster": str(poster)}
                              for name in cases])  # fmt: skip
    for name, (data, statuses) in cases.items():
        result = results[f"{name}/index.html"]
        _nothing_ran(result)
        if not statuses:
            assert result["state"] == "shown", (name, result["texts"])
            assert result["genres"] == json.loads(data)["genres"], name
        else:
            assert result["state"] == "error", (name, result["texts"])
            shown = result["texts"]["status"].removeprefix("Cannot load the model: ")
            assert shown in statuses, (name, result["texts"]["status"])
            assert result["genres"] == [], name
