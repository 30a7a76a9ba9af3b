"""`posterlite web`: a static page that predicts genres in the browser (`posterlite.browser`)."""

from __future__ import annotations

from pathlib import Path

import click

from posterlite import browser
from posterlite.errors import PosterliteError
from posterlite.safetext import display

SERVE_PORT = 8000  # `--serve` without `--port`


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path, file_okay=False),
    required=True,
    help="Folder for the static page: a new or empty folder, or an earlier page (it holds "
    ".posterlite-web), which is replaced whole; never one that holds MODEL.",
)
@click.option(
    "--runtime",
    type=click.Choice(browser.RUNTIMES),
    default=browser.PAGE_RUNTIME,
    show_default=True,
    help="In-page runtime: LiteRT.js (genres sooner after opening the page, measured) or "
    "MediaPipe Tasks for Web (faster per poster once loaded).",
)
@click.option("--serve", is_flag=True, help="Then serve OUT on 127.0.0.1 until Ctrl-C.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=SERVE_PORT,
    show_default=True,
    help="Port for --serve.",
)
@click.option(
    "--check",
    "check_poster",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Open the page in headless Chromium (phone-sized), choose this poster, print the genres.",
)
@click.option(
    "--screenshot",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="With --check: save a PNG of the page showing the result.",
)
def web(
    model: Path,
    out: Path,
    runtime: str,
    serve: bool,
    port: int,
    check_poster: Path | None,
    screenshot: Path | None,
) -> None:
    """A self-contained static page that predicts genres of a photographed or chosen poster
    in the browser with MODEL (.tflite): the model, its labels, tuned thresholds, name and
    version, and the vendored JS/WASM runtime (no CDN; works offline from any static host).

    LiteRT.js runs on up to 4 threads only in a cross-origin isolated page: the host must
    send `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy:
    require-corp` (--serve does; OUT/_headers carries them for Netlify/Cloudflare Pages,
    OUT/README.md says how elsewhere). Without them the page works on one thread."""
    if screenshot and not check_poster:
        raise PosterliteError("--screenshot needs --check POSTER")
    site = browser.write_page(model, out, runtime)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    text = display  # names and labels come from the model: printed inert
    name, version = text(site.config["name"]), text(site.config["version"]) or "-"
    click.echo(f"{out}: {name} v{version} ({runtime}, {size / 1e6:.1f} MB)")
    if check_poster:
        result = browser.check_page(out, check_poster, screenshot=screenshot)
        last = result.last
        click.echo(
            f"{check_poster}: {text(', '.join(last['genres'])) or '(none)'} "
            f"(tuned thresholds; shown {last['choose_to_genres_wall_ms']:.0f} ms after choosing, "
            f"page ready {last['ready_ms']:.0f} ms, second visit, Chromium {result.chromium})"
        )
        if screenshot:
            click.echo(f"screenshot: {screenshot}")
    if serve:
        browser.serve_forever(out, port, echo=click.echo)
