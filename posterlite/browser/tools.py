"""What the browser path needs on the host: Chromium, node and the npm packages of the two
browser runtimes (LiteRT.js, MediaPipe Tasks for Web) vendored from `posterlite/web`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posterlite.errors import PosterliteError

# JSON exchanged with the page and `web/driver.mjs` (model.json, jobs, answers): its values
# are whatever the page sends, read by key where they are used (untyped by nature).
PageJSON = dict[str, Any]

# The page's own files, the bench harness, the Chromium driver and the pinned npm lock.
WEB_DIR = Path(__file__).resolve().parents[1] / "web"
RUNTIMES: tuple[str, ...] = ("litert", "mediapipe")
# Measured in `benchmarks/results/browser_parity.md` (both selectable everywhere):
# MediaPipe web is the faster per poster (warm and end-to-end p50, 1x and 4x), so the bench
# defaults to it; LiteRT.js loads about twice as fast and has no slow first call, so a page
# that a person opens to classify one poster shows genres sooner with it.
DEFAULT_RUNTIME = "mediapipe"  # posterlite bench --target browser
PAGE_RUNTIME = "litert"  # posterlite web
RUNTIME_PACKAGES = {"litert": "@litertjs/core", "mediapipe": "@mediapipe/tasks-vision"}
RUNTIME_LABELS = {"litert": "LiteRT.js", "mediapipe": "MediaPipe web"}


@dataclass(frozen=True)
class BrowserTools:
    """The three things the browser path needs: Chromium, node, the npm packages."""

    chromium: Path | None
    node: Path | None
    modules: Path

    def check(self, need_chromium: bool = True) -> None:
        """Returns None when the tools are there; raises PosterliteError naming the first
        missing one (npm runtimes, then with `need_chromium` node and Chromium)."""
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
    """Chromium (argument, POSTERLITE_CHROMIUM, /usr/bin/chromium, PATH), node, node_modules.
    Returns what it found (None for a missing binary); never raises."""
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
    """npm versions of the vendored runtimes (and playwright-core), from their package.json. A
    missing or unreadable package reads "missing"; never raises."""
    versions = {}
    for key, package in {**RUNTIME_PACKAGES, "playwright": "playwright-core"}.items():
        try:
            data = json.loads((modules / package / "package.json").read_text(encoding="utf-8"))
            versions[key] = str(data["version"])
        except (OSError, ValueError, KeyError):
            versions[key] = "missing"
    return versions
