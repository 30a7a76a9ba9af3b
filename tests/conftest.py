"""Shared fixtures: the `../shared` folder (skip when absent) and tiny generated posters."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("POSTERLITE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        pytest.skip(f"../shared not present at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def pretrained_dir(shared_dir: Path) -> Path:
    path = shared_dir / "pretrained"
    if not path.is_dir():
        pytest.skip("../shared/pretrained not present")
    return path


def make_poster(path: Path, seed: int, size: tuple[int, int] = (60, 90), mode: str = "RGB") -> Path:
    """A small random poster-like image (random blocks), saved as JPEG/PNG by suffix."""
    rng = np.random.default_rng(seed)
    width, height = size
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and shrugs off a client that hung up."""

    def send(self, code: int, body: bytes) -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout and Ctrl-C tests)

    def log_message(self, *args) -> None:
        pass


class LocalServer:
    """A real HTTP server on 127.0.0.1 (a free port) serving `handler` from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def poster_factory(tmp_path: Path):
    def factory(name: str, seed: int = 0, **kwargs) -> Path:
        return make_poster(tmp_path / name, seed, **kwargs)

    return factory
