"""`posterlite web`: the page a person hosts, written into a folder that is swapped in whole
(only a folder posterlite wrote is ever replaced), and checked in headless Chromium the
way a person meets it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from posterlite.browser.driver import job_error, run_driver
from posterlite.browser.server import serve
from posterlite.browser.site import Site, build_site
from posterlite.browser.tools import PAGE_RUNTIME, PageJSON, find_tools
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_text, replace_dir

# replaced by a later `posterlite web --out` (a TF.js model folder also has a model.json).
PAGE_MARKER = ".posterlite-web"
PAGE_MARKER_TEXT = "posterlite web page: `posterlite web MODEL --out` replaces this folder whole.\n"
# Pages are public: a web server running as another user must read them.
PAGE_DIR_MODE = 0o755
PAGE_FILE_MODE = 0o644


def check_page_out(model: Path, out: Path) -> None:
    """Refuse an --out that `posterlite web` must not replace: a link, a file, a non-empty
    folder without the page marker (posterlite did not write it), or one that holds the
    input model (replacing it would delete the model). Returns None when `out` may be
    replaced; raises PosterliteError otherwise."""
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
    Returns the site; raises PosterliteError for a missing model, a refused `out` or a model
    the page cannot carry.
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
    device: PageJSON
    throttle: int
    visits: list[PageJSON]
    screenshot: Path | None
    runtime: PageJSON = field(default_factory=dict)  # fetched .wasm, isolation, threads

    @property
    def last(self) -> PageJSON:
        """The last visit (the second: what a returning person sees)."""
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
    `init_script`: a verification aid run before the page's scripts (`NO_RELAXED_SIMD`).
    Returns what the page showed; raises PosterliteError for missing tools or poster, or a
    page that fails."""
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
