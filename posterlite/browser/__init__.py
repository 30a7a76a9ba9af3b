"""The model in a mobile browser engine: the static web page, its local server and the
headless Chromium driver.

This package owns `posterlite web` (a self-contained static page: the `.tflite`, its labels,
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

The package, each module importing only those above it:
- `tools`: Chromium, node and the npm runtimes (RUNTIMES, DEFAULT_RUNTIME, PAGE_RUNTIME);
- `server`: the local HTTP server and the pages' security headers;
- `site`: the static site of a model (page, model.json, vendored runtimes);
- `driver`: headless Chromium through `web/driver.mjs`, the page's pixels;
- `page`: `posterlite web` (write_page, check_page).
The model's static batch patch is `posterlite.tflite_file.static_batch_model`.
"""

from __future__ import annotations

from posterlite.browser.driver import (
    CHROMIUM_ARGS,
    DEVICE,
    NO_RELAXED_SIMD,
    THROTTLES,
    host_pixels,
    job_error,
    page_pixels,
    poster_links,
    run_driver,
)
from posterlite.browser.page import (
    PAGE_DIR_MODE,
    PAGE_FILE_MODE,
    PAGE_MARKER,
    PAGE_MARKER_TEXT,
    PageCheck,
    check_page,
    check_page_out,
    publish_modes,
    write_page,
)
from posterlite.browser.server import (
    CONTENT_SECURITY_POLICY,
    ISOLATION_HEADERS,
    REQUEST_TIMEOUT_S,
    SECURITY_HEADERS,
    request_path_problem,
    serve,
    serve_forever,
)
from posterlite.browser.site import (
    BENCH_FILES,
    LITERT_BUILDS,
    PAGE_BUILDS,
    PAGE_FILES,
    PAGE_README,
    WASM_VARIANTS,
    Site,
    build_site,
    model_config,
    vendor_runtime,
)
from posterlite.browser.tools import (
    DEFAULT_RUNTIME,
    PAGE_RUNTIME,
    RUNTIME_LABELS,
    RUNTIME_PACKAGES,
    RUNTIMES,
    WEB_DIR,
    BrowserTools,
    find_tools,
    runtime_versions,
)
from posterlite.tflite_file import static_batch_model

__all__ = [
    "BENCH_FILES",
    "CHROMIUM_ARGS",
    "CONTENT_SECURITY_POLICY",
    "DEFAULT_RUNTIME",
    "DEVICE",
    "ISOLATION_HEADERS",
    "LITERT_BUILDS",
    "NO_RELAXED_SIMD",
    "PAGE_BUILDS",
    "PAGE_DIR_MODE",
    "PAGE_FILES",
    "PAGE_FILE_MODE",
    "PAGE_MARKER",
    "PAGE_MARKER_TEXT",
    "PAGE_README",
    "PAGE_RUNTIME",
    "REQUEST_TIMEOUT_S",
    "RUNTIMES",
    "RUNTIME_LABELS",
    "RUNTIME_PACKAGES",
    "SECURITY_HEADERS",
    "THROTTLES",
    "WASM_VARIANTS",
    "WEB_DIR",
    "BrowserTools",
    "PageCheck",
    "Site",
    "build_site",
    "check_page",
    "check_page_out",
    "find_tools",
    "host_pixels",
    "job_error",
    "model_config",
    "page_pixels",
    "poster_links",
    "publish_modes",
    "request_path_problem",
    "run_driver",
    "runtime_versions",
    "serve",
    "serve_forever",
    "static_batch_model",
    "vendor_runtime",
    "write_page",
]
