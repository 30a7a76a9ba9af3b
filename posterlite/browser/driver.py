"""Driving headless Chromium: `driver.mjs` (playwright-core, Debian's Chromium, no browser
download) runs jobs in a phone-sized context ("Pixel 7") with DevTools CPU throttling, and
answers in JSON; plus the posters' links and pixels as the page decodes them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from posterlite.browser.server import serve
from posterlite.browser.site import BENCH_FILES
from posterlite.browser.tools import WEB_DIR, BrowserTools, PageJSON, find_tools
from posterlite.errors import PosterliteError

DEVICE = "Pixel 7"
THROTTLES: tuple[int, ...] = (1, 4)
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
# A verification aid for the driver, never copied into a page: the page's WebAssembly
# refuses relaxed-SIMD modules, as a browser without relaxed SIMD (Safari today) does.
# Chromium 156's V8 has no flag that turns relaxed SIMD off alone (it shipped; the
# --experimental-wasm-relaxed-simd flag is gone, and --no-enable-sse4-1 turns off all SIMD).
NO_RELAXED_SIMD = WEB_DIR / "no_relaxed_simd.js"


def run_driver(
    tools: BrowserTools, base: str, jobs: list[PageJSON], timeout_s: float = 600.0
) -> PageJSON:
    """Run `driver.mjs` (headless Chromium) on `jobs`; its JSON answer, or a one-line error.
    Raises PosterliteError when the tools are missing, Chromium times out or the driver
    fails."""
    tools.check()
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
    answer: PageJSON = json.loads(lines[-1])  # the driver's JSON
    if not answer.get("ok"):
        raise PosterliteError(str(answer.get("error", "browser driver failed")))
    return answer


def job_error(result: PageJSON, what: str) -> PosterliteError:
    """The one-line error (returned, not raised) for a failed driver job: `what`, the
    first line of the page's error and its first page problem (favicon misses ignored)."""
    problems = [p for p in result.get("problems", []) if "favicon" not in p]
    # Runtimes' messages carry stack traces; the first line says what went wrong.
    detail = (str(result.get("error") or "failed").strip().splitlines() or ["failed"])[0]
    if problems and problems[0] not in detail:
        detail += f" ({problems[0]})"
    return PosterliteError(f"{what}: {detail}")


# -------------------------------------------------------------------- posters in the page
def poster_links(site: Path, paths: Sequence[Path]) -> list[str]:
    """Symlink each poster into `site/posters/` (numbered, suffix kept); returns their URLs
    relative to the site. Raises OSError when the folder cannot be written."""
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
    Raises PosterliteError when the tools are missing or the page fails to decode.
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
