"""The static site of a model: the page (`index.html` and its scripts), the model with its
shape signatures made static, `model.json` (labels, thresholds, input table from the
model's metadata) and the runtimes' JS/WASM vendored from node_modules (no CDN); with
`bench`, the bench harness too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from posterlite.browser.server import ISOLATION_HEADERS, SECURITY_HEADERS
from posterlite.browser.tools import (
    DEFAULT_RUNTIME,
    RUNTIME_PACKAGES,
    RUNTIMES,
    WEB_DIR,
    BrowserTools,
    PageJSON,
    find_tools,
    runtime_versions,
)
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_bytes, atomic_write_text, sha256_file
from posterlite.tflite_file import static_batch_model

PAGE_FILES: tuple[str, ...] = ("index.html", "style.css", "app.js", "posterlite.js")
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


def model_config(path: Path, runtime: str, versions: dict[str, str]) -> PageJSON:
    """What the page needs to know about a model, from its metadata and LiteRT on the host.

    The pixel -> input-tensor table comes from posterlite's own runtime (`PosterModel.prepare`
    on the 256 pixel values), so the page quantizes exactly as `posterlite predict` does.
    Returns the model.json dict; raises PosterliteError for a model that does not load.
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


def _copy(source: Path, target: Path, link: bool) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if link:
        target.symlink_to(source)
    else:
        shutil.copyfile(source, target)


def vendor_runtime(modules: Path, runtime: str, vendor: Path, link: bool = False) -> None:
    """Copy one runtime's browser files from node_modules into `vendor/<runtime>/`. Returns
    None; raises PosterliteError for an unknown runtime or a missing file (run `make
    browser-tools`)."""
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
    """A written site: its folder and the model.json config the page reads."""

    root: Path
    config: PageJSON


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
    Returns the site; raises PosterliteError for missing npm runtimes, an unknown runtime, a
    model that does not load or whose metadata holds a non-finite number.
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
