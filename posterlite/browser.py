"""The model in a mobile browser engine: the static web page, its local server and the
headless Chromium driver.

This module owns `posterlite web` (a self-contained static page: the `.tflite`, its labels,
tuned thresholds, name and version from its metadata, and the JS/WASM runtime vendored
from `posterlite/web/node_modules`, no CDN), the server and the driver. The browser
benchmark (`posterlite bench --target browser`: measuring in the page, rows, ratios) is
`posterlite.bench.targets.browser`, built on them.

The benchmark serves that same page's code (plus `bench.html`) from a local HTTP server on
127.0.0.1 and drives Debian's headless Chromium through playwright-core
(`posterlite/web/driver.mjs`; no browser download) in a phone-sized context (Playwright's
"Pixel 7": metrics, touch, mobile UA) with the DevTools CPU throttling rate set
(`Emulation.setCPUThrottlingRate`; Lighthouse's mobile profile uses 4x). In the page it
measures model load, per-poster latency with decode excluded (warm runs on one poster)
and included (every labelled poster from its file bytes), and the scores that accuracy is
computed from. Runtimes: LiteRT.js (`@litertjs/core`, XNNPACK in WebAssembly: its
relaxed-SIMD build on one thread, its threaded build with `--browser-threads N`, or in a
browser without relaxed SIMD its compat (SIMD128) build on one thread) and
MediaPipe Tasks for Web (`@mediapipe/tasks-vision`, the web build of MediaPipe's C++
ImageClassifier, which reads the TFLite metadata; SIMD build, one thread: it ships no
threaded build). Which `.wasm` each runtime fetched, the browser's WebAssembly features and
the threads used are read from the page and recorded in every row.

WebAssembly threads need a cross-origin isolated page: the local server (bench and
`posterlite web --serve`) sends `Cross-Origin-Opener-Policy: same-origin` and
`Cross-Origin-Embedder-Policy: require-corp`. A static host without those headers still
gets a working page, on one thread.

What this measures is a browser engine on this machine's CPU, slowed by Chromium's
throttling; not a phone's NPU/GPU, its memory bandwidth or its thermal limits.

Hostile input: whatever a model's metadata says is data. The page checks model.json
(types, ranges, sizes; web/posterlite.js) and shows every label, name and version as text,
under a Content-Security-Policy that refuses inline script (CONTENT_SECURITY_POLICY). A
page folder is public (PAGE_DIR_MODE, PAGE_FILE_MODE) and carries PAGE_MARKER: only such a
folder is ever replaced, never one that holds the input model. The local server refuses
bad paths (400/404) and closes idle connections (REQUEST_TIMEOUT_S).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_bytes, atomic_write_text, replace_dir, sha256_file

WEB_DIR = Path(__file__).resolve().parent / "web"
DEVICE = "Pixel 7"
THROTTLES: tuple[int, ...] = (1, 4)
RUNTIMES: tuple[str, ...] = ("litert", "mediapipe")
# Measured in `benchmarks/results/browser_parity.md` (both selectable everywhere):
# MediaPipe web is the faster per poster (warm and end-to-end p50, 1x and 4x), so the bench
# defaults to it; LiteRT.js loads about twice as fast and has no slow first call, so a page
# that a person opens to classify one poster shows genres sooner with it.
DEFAULT_RUNTIME = "mediapipe"  # posterlite bench --target browser
PAGE_RUNTIME = "litert"  # posterlite web
RUNTIME_PACKAGES = {"litert": "@litertjs/core", "mediapipe": "@mediapipe/tasks-vision"}
RUNTIME_LABELS = {"litert": "LiteRT.js", "mediapipe": "MediaPipe web"}
# Headless Chromium on a closed network: without the background-networking flags its
# own connections (updates, sync, safe browsing) are refused many at a time.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
PAGE_FILES: tuple[str, ...] = ("index.html", "style.css", "app.js", "posterlite.js")
# Cross-origin isolation (SharedArrayBuffer, so WebAssembly threads) needs both headers.
ISOLATION_HEADERS: dict[str, str] = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
}
# The pages' Content-Security-Policy: scripts, workers, styles and fetches from the page's
# own origin only, so no inline script, event-handler attribute, javascript: URL or eval
# runs, whatever text a model carries. 'wasm-unsafe-eval' is what both runtimes need to
# compile their WebAssembly; images are the poster preview (blob:) and the icon (data:).
# index.html and bench.html carry it in a <meta> tag (tests/test_browser.py checks they
# match); serve() and the page's _headers send it as a header too.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; "
    "connect-src 'self'; img-src 'self' blob: data:; style-src 'self'; base-uri 'none'; "
    "form-action 'none'"
)
# Sent with every response (serve(), the page's _headers). frame-ancestors only works in a
# header (a <meta> policy ignores it): nobody can frame the page.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": f"{CONTENT_SECURITY_POLICY}; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Written into every page folder `posterlite web` makes: only a folder holding it is ever
# replaced by a later `posterlite web --out` (a TF.js model folder also has a model.json).
PAGE_MARKER = ".posterlite-web"
PAGE_MARKER_TEXT = "posterlite web page: `posterlite web MODEL --out` replaces this folder whole.\n"
# Pages are public: a web server running as another user must read them.
PAGE_DIR_MODE = 0o755
PAGE_FILE_MODE = 0o644
# `posterlite web --serve` and the bench's server: each connection's socket timeout, so an
# idle or stalled client frees its thread within seconds.
REQUEST_TIMEOUT_S = 3.0
# What each npm .wasm build is. Threads (shared memory), SIMD128 (v128 locals) and relaxed
# SIMD (any 0xFD 0x100-0x113 instruction, found by web/no_relaxed_simd.js's decoder) are
# checked on the files by tests/test_browser.py. By hand: node 20's V8, which lacks relaxed
# SIMD, rejects exactly the three LiteRT.js builds the decoder finds relaxed SIMD in.
WASM_VARIANTS: dict[str, str] = {
    "litert_wasm_internal.wasm": "relaxed SIMD, no threads",
    "litert_wasm_threaded_internal.wasm": "relaxed SIMD + threads",
    "litert_wasm_compat_internal.wasm": "SIMD128 (no relaxed SIMD), no threads",
    "litert_wasm_jspi_internal.wasm": "relaxed SIMD + JSPI, no threads",
    "vision_wasm_internal.wasm": "SIMD128 (no relaxed SIMD), no threads",
    "vision_wasm_module_internal.wasm": "SIMD128 (no relaxed SIMD), no threads",
    "vision_wasm_nosimd_internal.wasm": "no SIMD, no threads",
}
# A verification aid for the driver, never copied into a page: the page's WebAssembly
# refuses relaxed-SIMD modules, as a browser without relaxed SIMD (Safari today) does.
# Chromium 156's V8 has no flag that turns relaxed SIMD off alone (it shipped; the
# --experimental-wasm-relaxed-simd flag is gone, and --no-enable-sse4-1 turns off all SIMD).
NO_RELAXED_SIMD = WEB_DIR / "no_relaxed_simd.js"
# LiteRT.js builds a page carries; LiteRT.js's loader fetches one of them (see PAGE_BUILDS).
LITERT_BUILDS: tuple[str, ...] = ("", "_threaded", "_compat")
PAGE_README = """\
# posterlite page

A static page: open `index.html` from any static web host (not from `file://`).
Everything runs in the browser; no poster leaves the device.

## Threads

The page runs LiteRT.js with up to 4 threads (WebAssembly threads) when the browser allows
it, which needs a *cross-origin isolated* page. Serve every file with these two headers:

    Cross-Origin-Opener-Policy: same-origin
    Cross-Origin-Embedder-Policy: require-corp

`posterlite web --serve` sends them. Netlify and Cloudflare Pages read them from the
`_headers` file beside this README; on nginx: `add_header Cross-Origin-Opener-Policy
same-origin always; add_header Cross-Origin-Embedder-Policy require-corp always;`.
Without them (GitHub Pages, a plain file server) the page still works, on one thread.

## Security

Labels, name and version come from the model's metadata (`model.json`) and are shown as
text only. `index.html` carries a Content-Security-Policy (`<meta>`) that allows the page's
own scripts and nothing inline; `_headers` sends the same policy (plus `frame-ancestors
'none'`, `X-Content-Type-Options: nosniff`): send those lines from other hosts too.
`.posterlite-web` marks this folder as posterlite's: `posterlite web --out` replaces
only folders that hold it.
"""
PAGE_BUILDS = """
## Which LiteRT.js build a browser loads

`vendor/litert/` holds three builds of LiteRT.js; LiteRT.js's own loader fetches one:
`litert_wasm_threaded_internal` (relaxed SIMD + threads) in a cross-origin isolated page,
else `litert_wasm_internal` (relaxed SIMD, one thread), or, in a browser without relaxed
SIMD (Safari today), `litert_wasm_compat_internal` (SIMD128 only, one thread). The compat
build adds {compat_mb:.1f} MB to this folder ({total_mb:.1f} MB in all); no browser downloads
more than one build.
"""

BENCH_FILES: tuple[str, ...] = ("bench.html", "bench.js", "posterlite.js")


# ------------------------------------------------------------------------------ tools
@dataclass(frozen=True)
class BrowserTools:
    """The three things the browser path needs: Chromium, node, the npm packages."""

    chromium: Path | None
    node: Path | None
    modules: Path

    def check(self, need_chromium: bool = True) -> None:
        if not (self.modules / "@litertjs" / "core").is_dir():
            raise PosterliteError(
                f"browser runtimes not installed in {self.modules}: run `make browser-tools` "
                "(npm ci in posterlite/web)"
            )
        if need_chromium and self.node is None:
            raise PosterliteError("node not found: install Node.js >= 18 (make browser-tools)")
        if need_chromium and self.chromium is None:
            raise PosterliteError(
                "Chromium not found: install Debian's chromium (make browser-tools) "
                "or set POSTERLITE_CHROMIUM"
            )


def find_tools(chromium: str | Path | None = None) -> BrowserTools:
    """Chromium (argument, POSTERLITE_CHROMIUM, /usr/bin/chromium, PATH), node, node_modules."""
    modules = Path(os.environ.get("POSTERLITE_WEB_MODULES", WEB_DIR / "node_modules"))
    # An explicit binary is used or reported missing, never silently replaced.
    candidates = (
        [chromium]
        if chromium
        else [
            os.environ.get("POSTERLITE_CHROMIUM"),
            "/usr/bin/chromium",
            shutil.which("chromium"),
            shutil.which("chromium-browser"),
        ]
    )
    found = next(
        (Path(c) for c in candidates if c and Path(c).is_file() and os.access(c, os.X_OK)), None
    )
    node = shutil.which("node")
    return BrowserTools(found, Path(node) if node else None, modules)


def runtime_versions(modules: Path) -> dict[str, str]:
    """npm versions of the vendored runtimes (and playwright-core), from their package.json."""
    versions = {}
    for key, package in {**RUNTIME_PACKAGES, "playwright": "playwright-core"}.items():
        try:
            data = json.loads((modules / package / "package.json").read_text(encoding="utf-8"))
            versions[key] = str(data["version"])
        except (OSError, ValueError, KeyError):
            versions[key] = "missing"
    return versions


# ----------------------------------------------------------------------------- the site
def model_config(path: Path, runtime: str, versions: dict[str, str]) -> dict[str, Any]:
    """What the page needs to know about a model, from its metadata and LiteRT on the host.

    The pixel -> input-tensor table comes from posterlite's own runtime (`PosterModel.prepare`
    on the 256 pixel values), so the page quantizes exactly as `posterlite predict` does.
    """
    from posterlite.runtime import PosterModel

    model = PosterModel.load(path)
    size = model.input_size
    levels = np.resize(np.arange(256, dtype=np.uint8), (size, size, 3))
    table = model.prepare(levels).reshape(-1)[:256]
    scale, zero_point = model.output_quant
    return {
        "model": "model.tflite",
        "file": path.name,
        "sha256": sha256_file(path)[:12],
        "name": model.name,
        "version": model.version,
        "genres": list(model.genres),
        "thresholds": [round(float(t), 6) for t in model.thresholds],
        "default_threshold": float(model.default_threshold),
        "size": size,
        "input_dtype": "uint8" if model.input_dtype == np.uint8 else "float32",
        "input_lut": [float(v) if table.dtype.kind == "f" else int(v) for v in table],
        "output_scale": float(scale),
        "output_zero_point": int(zero_point),
        "runtime": runtime,
        "runtime_versions": {k: v for k, v in versions.items() if k in RUNTIME_PACKAGES},
        "threads": 0,  # LiteRT.js: up to 4 where the page is cross-origin isolated, else 1
    }


def static_batch_model(data: bytes) -> bytes:
    """The model with every `-1` (dynamic) dimension of its tensors' shape signatures set to
    the static shape the file already carries (batch 1).

    LiteRT.js compiles a model once for its signature and refuses a [1, S, S, 3] input for
    a [-1, S, S, 3] signature (what Keras conversion writes). Only those int32 slots change,
    in place: weights, ops, metadata and the zipped label files are byte for byte the same,
    so the model computes exactly what the file it came from computes.
    """
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    buf = bytearray(data)
    try:
        model = schema.Model.GetRootAsModel(buf, 0)
        for g in range(model.SubgraphsLength()):
            graph = model.Subgraphs(g)
            for t in range(graph.TensorsLength()):
                tensor = graph.Tensors(t)
                if tensor.ShapeSignatureLength() != tensor.ShapeLength():
                    continue
                slot = tensor._tab.Offset(18)  # Tensor.shape_signature (schema field 7)
                if not slot:
                    continue
                start = tensor._tab.Vector(slot)
                for dim in range(tensor.ShapeSignatureLength()):
                    if tensor.ShapeSignature(dim) == -1 and tensor.Shape(dim) > 0:
                        flatbuffers.encode.Write(
                            flatbuffers.packer.int32, buf, start + 4 * dim, tensor.Shape(dim)
                        )
    except (IndexError, ValueError, TypeError, struct.error) as exc:  # junk bytes
        raise PosterliteError(f"not a TFLite flatbuffer ({exc})") from exc
    return bytes(buf)


def _copy(source: Path, target: Path, link: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        target.symlink_to(source)
    else:
        shutil.copyfile(source, target)


def vendor_runtime(modules: Path, runtime: str, vendor: Path, link: bool = False) -> None:
    """Copy one runtime's browser files from node_modules into `vendor/<runtime>/`."""
    if runtime == "mediapipe":
        root = modules / "@mediapipe" / "tasks-vision"
        files = {
            "vision_bundle.mjs": root / "vision_bundle.mjs",
            "vision_wasm_internal.js": root / "wasm" / "vision_wasm_internal.js",
            "vision_wasm_internal.wasm": root / "wasm" / "vision_wasm_internal.wasm",
        }
    elif runtime == "litert":
        root = modules / "@litertjs" / "core"
        # The one-thread (relaxed SIMD) build, the threaded one (a cross-origin isolated
        # page, more than one thread) and the compat one (browsers without relaxed SIMD);
        # LiteRT.js's loader picks one. The JSPI build is not needed: the page never asks.
        names = [f"litert_wasm{b}_internal.{e}" for b in LITERT_BUILDS for e in ("js", "wasm")]
        files = {name: root / "wasm" / name for name in names}
        files["wasm-utils.js"] = modules / "@litertjs" / "wasm-utils" / "dist" / "index.js"
        # The package imports its helper by bare name; a static host has no import map
        # resolver to rely on, so the import is pointed at the vendored file.
        code = (root / "dist" / "index.js").read_text(encoding="utf-8")
        code = code.replace('from "@litertjs/wasm-utils"', 'from "./wasm-utils.js"')
        (vendor / runtime).mkdir(parents=True, exist_ok=True)
        (vendor / runtime / "index.js").write_text(code, encoding="utf-8")
    else:
        raise PosterliteError(f"unknown browser runtime {runtime!r} (choose from {RUNTIMES})")
    for name, source in files.items():
        if not source.is_file():
            raise PosterliteError(f"{source} missing: run `make browser-tools`")
        _copy(source, vendor / runtime / name, link)


@dataclass(frozen=True)
class Site:
    root: Path
    config: dict[str, Any]


def build_site(
    model: Path,
    out: Path,
    runtimes: Sequence[str] = (DEFAULT_RUNTIME,),
    *,
    tools: BrowserTools | None = None,
    bench: bool = False,
    link: bool = False,
) -> Site:
    """Write the static page (and with `bench`, the bench harness) for `model` into `out`.

    The first runtime is the page's; every listed one is vendored. `link` symlinks the big
    files instead of copying them (the bench's throwaway sites).
    """
    model = Path(model)
    tools = tools or find_tools()
    tools.check(need_chromium=False)
    for runtime in runtimes:
        if runtime not in RUNTIMES:
            raise PosterliteError(f"unknown browser runtime {runtime!r} (choose from {RUNTIMES})")
    versions = runtime_versions(tools.modules)
    config = model_config(model, runtimes[0], versions)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (*PAGE_FILES, *(BENCH_FILES if bench else ())):
        shutil.copyfile(WEB_DIR / name, out / name)
    for runtime in runtimes:
        vendor_runtime(tools.modules, runtime, out / "vendor", link=link)
    atomic_write_bytes(out / "model.tflite", static_batch_model(model.read_bytes()))
    try:  # strict JSON: a browser's JSON.parse refuses NaN and Infinity
        text = json.dumps(config, indent=1, allow_nan=False)
    except ValueError as exc:
        raise PosterliteError(f"{model}: its metadata holds a non-finite number ({exc})") from exc
    atomic_write_text(out / "model.json", text + "\n")
    if not bench:  # the page a person hosts: how to get threads from a static host
        readme = PAGE_README
        compat = sorted((out / "vendor" / "litert").glob("litert_wasm_compat_internal.*"))
        if compat:  # what carrying the compat build costs, measured on this very folder
            total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
            readme += PAGE_BUILDS.format(
                compat_mb=sum(f.stat().st_size for f in compat) / 1e6, total_mb=total / 1e6
            )
        atomic_write_text(out / "README.md", readme)
        sent = {**ISOLATION_HEADERS, **SECURITY_HEADERS}
        headers = "".join(f"  {k}: {v}\n" for k, v in sent.items())
        atomic_write_text(out / "_headers", f"/*\n{headers}")
    return Site(out, config)


# ---------------------------------------------------------------------------- serving
def request_path_problem(raw: str) -> HTTPStatus | None:
    """Why a request path is refused before it reaches the file system, or None.

    400 for what no page asks for: not absolute, undecodable (percent-escapes that are not
    UTF-8), control characters (NUL among them) or backslashes; 404 for `.`/`..` segments
    and hidden names (the folder's own marker file included). Pure.
    """
    path = raw.split("?", 1)[0].split("#", 1)[0]
    try:
        decoded = urllib.parse.unquote_to_bytes(path).decode("utf-8")
    except UnicodeDecodeError:
        return HTTPStatus.BAD_REQUEST
    if not decoded.startswith("/") or "\\" in decoded:
        return HTTPStatus.BAD_REQUEST
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in decoded):
        return HTTPStatus.BAD_REQUEST
    if any(part.startswith(".") for part in decoded.split("/")):
        return HTTPStatus.NOT_FOUND
    return None


class _Handler(SimpleHTTPRequestHandler):
    """Static files with the types browsers insist on (wasm streaming, JS modules), the
    pages' security headers (CSP, nosniff), with `isolated` the COOP/COEP headers that make
    the page cross-origin isolated (threads); bad paths answered 400/404, no directory
    listings, and a socket timeout on every connection."""

    isolated = True
    timeout = REQUEST_TIMEOUT_S  # StreamRequestHandler: the connection's socket timeout

    extensions_map = {
        ".html": "text/html; charset=utf-8",
        ".css": "text/css; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".mjs": "text/javascript; charset=utf-8",
        ".json": "application/json",
        ".wasm": "application/wasm",
        ".tflite": "application/octet-stream",
        ".bin": "application/octet-stream",
        ".jpg": "image/jpeg",
        ".jpeg": "image/jpeg",
        ".png": "image/png",
        "": "application/octet-stream",
    }

    def send_head(self) -> Any:
        problem = request_path_problem(self.path)
        if problem is not None:
            self.send_error(problem)
            return None
        return super().send_head()

    def list_directory(self, path: Any) -> None:  # a folder without index.html: not shown
        self.send_error(HTTPStatus.NOT_FOUND)

    def end_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if self.isolated:
            for name, value in ISOLATION_HEADERS.items():
                self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        pass  # the bench's progress is on stderr; per-request lines would drown it


class _PlainHandler(_Handler):
    isolated = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog (5) drops connections in a burst; each dropped one
    # waits a second for the client to retry.
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """One line on stderr, never a traceback; a client that hung up or timed out is
        its own business and says nothing."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        print(f"posterlite server: {client_address[0]}: {type(error).__name__}: {error}",
              file=sys.stderr)  # fmt: skip


@contextlib.contextmanager
def serve(
    directory: Path,
    port: int = 0,
    host: str = "127.0.0.1",
    isolated: bool = True,
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> Iterator[str]:
    """Serve `directory` over HTTP on 127.0.0.1 in a thread; yields the base URL. With
    `isolated` (default) every response carries COOP/COEP, so the page may use threads;
    without, the page is served as a plain static host would (one thread). Every response
    carries SECURITY_HEADERS; a connection idle for `timeout_s` is closed."""
    base = _Handler if isolated else _PlainHandler
    handler_class = type(base.__name__, (base,), {"timeout": timeout_s})
    handler = functools.partial(handler_class, directory=str(directory))
    try:
        server = _Server((host, port), handler)
    except OSError as exc:
        raise PosterliteError(f"cannot serve on {host}:{port} ({exc.strerror or exc})") from exc
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- driving
def run_driver(
    tools: BrowserTools, base: str, jobs: list[dict[str, Any]], timeout_s: float = 600.0
) -> dict[str, Any]:
    """Run `driver.mjs` (headless Chromium) on `jobs`; its JSON answer, or a one-line error."""
    tools.check()
    if True:
        request = {
            "executable": str(tools.chromium),
            # Playwright starts Chromium with a fresh temporary --user-data-dir of its own
            # (and refuses ours), deleted when the browser closes.
            "args": list(CHROMIUM_ARGS),
            "device": DEVICE,
            "base": base,
            "timeout_ms": int(timeout_s * 1000),
            "jobs": jobs,
        }
        env = {**os.environ, "NODE_PATH": str(tools.modules)}
        try:
            done = subprocess.run(
                [str(tools.node), str(WEB_DIR / "driver.mjs")],
                input=json.dumps(request),
                capture_output=True,
                text=True,
                timeout=timeout_s * max(1, len(jobs)),
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PosterliteError(f"Chromium did not finish within {exc.timeout:.0f} s") from exc
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise PosterliteError(f"browser driver failed: {detail}")
    answer = json.loads(lines[-1])
    if not answer.get("ok"):
        raise PosterliteError(str(answer.get("error", "browser driver failed")))
    return answer


def job_error(result: dict[str, Any], what: str) -> PosterliteError:
    problems = [p for p in result.get("problems", []) if "favicon" not in p]
    # Runtimes' messages carry stack traces; the first line says what went wrong.
    detail = (str(result.get("error") or "failed").strip().splitlines() or ["failed"])[0]
    if problems and problems[0] not in detail:
        detail += f" ({problems[0]})"
    return PosterliteError(f"{what}: {detail}")


# -------------------------------------------------------------------- posters in the page
def poster_links(site: Path, paths: Sequence[Path]) -> list[str]:
    posters = site / "posters"
    posters.mkdir(exist_ok=True)
    urls = []
    for index, path in enumerate(paths):
        name = f"{index:05d}{Path(path).suffix.lower() or '.img'}"
        (posters / name).symlink_to(Path(path).resolve())
        urls.append(f"posters/{name}")
    return urls


def host_pixels(paths: Sequence[Path], size: int) -> np.ndarray:
    """posterlite's decode + resize (`preprocess.load_poster`) of every poster: (N, S, S, 3)."""
    from posterlite.preprocess import load_poster

    return np.stack([load_poster(path, size) for path in paths])


def page_pixels(paths: Sequence[Path], size: int, chromium: str | Path | None = None) -> np.ndarray:
    """The page's own decode + resize of image files in Chromium: uint8 (N, size, size, 3).

    What `posterlite.js` hands the model; equal to `host_pixels` wherever the browser's
    decoder gives Pillow's pixels (tests/test_browser.py, benchmarks/browser_parity.py).
    """
    tools = find_tools(chromium)
    tools.check()
    with tempfile.TemporaryDirectory(prefix="posterlite-site-") as tmp:
        root = Path(tmp)
        for name in BENCH_FILES:
            shutil.copyfile(WEB_DIR / name, root / name)
        urls = poster_links(root, paths)
        job = {"kind": "bench", "fn": "plPixels", "throttle": 1,
               "job": {"posters": urls, "size": size}}  # fmt: skip
        with serve(root) as base:
            result = run_driver(tools, base, [job])["results"][0]
    if not result.get("ok"):
        raise job_error(result, "decoding in the page")
    return np.asarray(result["pixels"], dtype=np.uint8).reshape(len(paths), size, size, 3)


# ---------------------------------------------------------------------------- the page
def check_page_out(model: Path, out: Path) -> None:
    """Refuse an --out that `posterlite web` must not replace: a link, a file, a non-empty
    folder without the page marker (posterlite did not write it), or one that holds the
    input model (replacing it would delete the model)."""
    if out.is_symlink():
        raise PosterliteError(f"{out} is a symbolic link; choose a folder for --out")
    if not out.exists():
        return
    if not out.is_dir():
        raise PosterliteError(f"{out} exists and is not a folder; choose another --out")
    if model.resolve().is_relative_to(out.resolve()):
        raise PosterliteError(
            f"{out} holds the model {model}: replacing it would delete the model; "
            "choose another --out"
        )
    marker = out / PAGE_MARKER
    if any(out.iterdir()) and not (marker.is_file() and not marker.is_symlink()):
        raise PosterliteError(
            f"{out} exists and is not a posterlite page (no {PAGE_MARKER}); choose another --out"
        )


def publish_modes(root: Path) -> None:
    """Folders 0755, files 0644 under `root` (and root itself): a page is public, and
    mkdtemp's 0700 would hide it from a web server running as another user."""
    root.chmod(PAGE_DIR_MODE)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            Path(folder, name).chmod(PAGE_DIR_MODE)
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                path.chmod(PAGE_FILE_MODE)


def write_page(model: Path, out: Path, runtime: str = PAGE_RUNTIME) -> Site:
    """`posterlite web`: build the page in a sibling temp folder, then swap it in for `out`.

    `out` is replaced only when it is empty or a page posterlite wrote (it holds
    PAGE_MARKER), never when it holds the model (`check_page_out`). A failed build leaves
    an earlier page as it was.
    """
    model, out = Path(model), Path(out)
    if not model.is_file():
        raise PosterliteError(f"model not found: {model}")
    check_page_out(model, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        site = build_site(model, tmp, (runtime,))
        atomic_write_text(tmp / PAGE_MARKER, PAGE_MARKER_TEXT)
        publish_modes(tmp)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Site(out, site.config)


@dataclass(frozen=True)
class PageCheck:
    """The page as a person meets it (second visit): ready time, genres shown, how fast."""

    chromium: str
    device: dict[str, Any]
    throttle: int
    visits: list[dict[str, Any]]
    screenshot: Path | None
    runtime: dict[str, Any] = field(default_factory=dict)  # fetched .wasm, isolation, threads

    @property
    def last(self) -> dict[str, Any]:
        return self.visits[-1]


def check_page(
    site: Path,
    poster: Path,
    *,
    screenshot: Path | None = None,
    throttle: int = 1,
    visits: int = 2,
    chromium: str | Path | None = None,
    isolated: bool = True,
    init_script: Path | None = None,
) -> PageCheck:
    """Open a built page in headless Chromium (phone context) from 127.0.0.1, choose
    `poster` in its file input on each visit, read back the genres it shows. `isolated`:
    served with COOP/COEP (threads), else as a plain static host (one thread).
    `init_script`: a verification aid run before the page's scripts (`NO_RELAXED_SIMD`)."""
    tools = find_tools(chromium)
    tools.check()
    poster = Path(poster)
    if not poster.is_file():
        raise PosterliteError(f"poster not found: {poster}")
    job = {
        "kind": "page",
        "throttle": throttle,
        "poster": str(poster.resolve()),
        "visits": visits,
        "screenshot": str(Path(screenshot).resolve()) if screenshot else None,
        "init_script": str(Path(init_script).resolve()) if init_script else None,
    }
    if screenshot:
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
    with serve(Path(site), isolated=isolated) as base:
        answer = run_driver(tools, base, [job])
    result = answer["results"][0]
    if not result.get("ok"):
        raise job_error(result, f"the page in {site}")
    return PageCheck(
        chromium=answer["chromium"],
        device=answer["device"],
        throttle=throttle,
        visits=result["visits"],
        screenshot=Path(screenshot) if screenshot else None,
        runtime=dict(result.get("runtime") or {}),
    )


def serve_forever(site: Path, port: int, echo: Any = print) -> None:
    """`posterlite web --serve`: serve the page on 127.0.0.1:PORT until Ctrl-C."""
    with serve(Path(site), port=port) as base:
        echo(
            f"serving {site} at {base} with COOP/COEP (cross-origin isolated: threads) "
            "(Ctrl-C to stop)"
        )
        threading.Event().wait()
