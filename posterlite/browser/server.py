"""The local HTTP server of the pages (bench and `posterlite web --serve`): 127.0.0.1 only,
the pages' security headers, COOP/COEP for WebAssembly threads, bad paths refused (400/404)
and idle connections closed (REQUEST_TIMEOUT_S).
"""

from __future__ import annotations

import contextlib
import functools
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from posterlite.errors import PosterliteError

if TYPE_CHECKING:
    from _typeshed import StrPath

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
# `posterlite web --serve` and the bench's server: each connection's socket timeout, so an
# idle or stalled client frees its thread within seconds.
REQUEST_TIMEOUT_S = 3.0


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

    def send_head(self) -> BinaryIO | None:
        """A bad path answered 400/404 (returns None), else the file's head as the stdlib
        serves it."""
        problem = request_path_problem(self.path)
        if problem is not None:
            self.send_error(problem)
            return None
        return super().send_head()

    def list_directory(self, path: StrPath) -> None:  # a folder without index.html: not shown
        """404: no directory listings."""
        self.send_error(HTTPStatus.NOT_FOUND)

    def end_headers(self) -> None:
        """Add the security headers (and with `isolated`, COOP/COEP) to every response."""
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        if self.isolated:
            for name, value in ISOLATION_HEADERS.items():
                self.send_header(name, value)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib name)
        """Nothing: per-request lines would drown the bench's progress on stderr."""


class _PlainHandler(_Handler):
    isolated = False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog (5) drops connections in a burst; each dropped one
    # waits a second for the client to retry.
    request_queue_size = 128

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
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
    carries SECURITY_HEADERS; a connection idle for `timeout_s` is closed. Raises
    PosterliteError when the port cannot be bound."""
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


def serve_forever(site: Path, port: int, echo: Callable[[str], None] = print) -> None:
    """`posterlite web --serve`: serve the page on 127.0.0.1:PORT until Ctrl-C. Returns only by
    KeyboardInterrupt (raised to the caller); raises PosterliteError when the port cannot be
    bound."""
    with serve(Path(site), port=port) as base:
        echo(
            f"serving {site} at {base} with COOP/COEP (cross-origin isolated: threads) "
            "(Ctrl-C to stop)"
        )
        threading.Event().wait()
