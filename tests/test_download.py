"""`data download` against a real HTTP server on 127.0.0.1: good, corrupt, 404, slow, flaky."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import LocalServer, QuietHandler
from PIL import Image

from posterlite.cli import main
from posterlite.data import download_posters
from posterlite.preprocess import load_poster

SLOW_SECONDS = 1.0
TIMEOUT = 0.25


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (30, 20, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, "JPEG")
    return buffer.getvalue()


class _Server(LocalServer):
    """/good/<n>.jpg, /corrupt.jpg, /truncated.jpg, /missing.jpg (404), /slow.jpg, /flaky.jpg."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                with server.lock:
                    server.hits[self.path] = server.hits.get(self.path, 0) + 1
                    hits = server.hits[self.path]
                if self.path.startswith("/good/"):
                    self.send(200, _jpeg(int(Path(self.path).stem)))
                elif self.path == "/corrupt.jpg":  # a CDN error page served as 200
                    self.send(200, b"<html><body>Service unavailable</body></html>")
                elif self.path == "/truncated.jpg":
                    self.send(200, _jpeg(97)[:300])
                elif self.path == "/slow.jpg":
                    time.sleep(SLOW_SECONDS)
                    self.send(200, _jpeg(99))
                elif self.path == "/busy.jpg" or (self.path == "/flaky.jpg" and hits == 1):
                    self.send(503, b"busy")
                elif self.path == "/flaky.jpg":
                    self.send(200, _jpeg(98))
                else:
                    self.send(404, b"not found")

        super().__init__(Handler)


@pytest.fixture
def server() -> Iterator[_Server]:
    running = _Server()
    yield running
    running.close()


def _csv(path: Path, base: str, encoding: str = "iso-8859-1") -> Path:
    rows = [
        "imdbId,Imdb Link,Title,IMDB Score,Genre,Poster",
        f'1,http://imdb/tt1,Amélie,7.0,Comedy,"{base}/good/1.jpg"',
        f"2,http://imdb/tt2,Ça,6.0,Drama,{base}/good/2.jpg",
        f"3,http://imdb/tt3,Corrupt,5.0,Drama,{base}/corrupt.jpg",
        f"4,http://imdb/tt4,Dead,5.0,Drama,{base}/missing.jpg",
        f"5,http://imdb/tt5,Slow,5.0,Drama,{base}/slow.jpg",
        f"6,http://imdb/tt6,Flaky,5.0,Drama,{base}/flaky.jpg",
        f"7,http://imdb/tt7,Dead then alive,5.0,Drama,{base}/missing7.jpg",
        f"7,http://imdb/tt7,Dead then alive,5.0,Drama,{base}/good/7.jpg",
        "8,http://imdb/tt8,No url,5.0,Drama,",
        f"9,http://imdb/tt9,Cut,5.0,Drama,{base}/truncated.jpg",
    ]
    path.write_bytes(("\n".join(rows) + "\n").encode(encoding))
    return path


def _run(csv_path: Path, out: Path, **kwargs):
    options = {"workers": 4, "retries": 1, "timeout": TIMEOUT, "backoff": 0.01, "progress": False}
    return download_posters(csv_path, out, **{**options, **kwargs})


@pytest.mark.parametrize("encoding", ["iso-8859-1", "utf-8"])
def test_download_good_bad_slow_and_resume(server: _Server, tmp_path: Path, encoding) -> None:
    csv_path = _csv(tmp_path / "MovieGenre.csv", server.url, encoding)
    out = tmp_path / "posters"
    result = _run(csv_path, out)
    assert sorted(result.downloaded) == ["1", "2", "6", "7"]
    reasons = {f.imdb_id: f.reason for f in result.failures}
    assert reasons == {
        "3": "not an image",
        "4": "http 404",
        "5": "timeout",
        "8": "no url",
        "9": "truncated",
    }
    assert result.duplicate_rows == 1
    for film in ("1", "2", "6", "7"):
        assert load_poster(out / f"{film}.jpg").shape == (224, 224, 3)
    assert sorted(p.name for p in out.iterdir()) == ["1.jpg", "2.jpg", "6.jpg", "7.jpg"]
    # 404 and non-images are final; 503, timeouts and truncated bodies are retried once.
    assert server.hits["/missing.jpg"] == server.hits["/corrupt.jpg"] == 1
    assert server.hits["/truncated.jpg"] == 2
    assert server.hits["/flaky.jpg"] == 2
    assert server.hits["/slow.jpg"] == 2

    good_hits = server.hits["/good/1.jpg"]
    again = _run(csv_path, out, retries=0)
    assert again.downloaded == [] and sorted(again.present) == ["1", "2", "6", "7"]
    assert server.hits["/good/1.jpg"] == good_hits  # resume: nothing re-fetched


def test_resume_replaces_a_corrupt_file(server: _Server, tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(f"imdbId,Genre,Poster\n1,Drama,{server.url}/good/1.jpg\n")
    out = tmp_path / "p"
    out.mkdir()
    (out / "1.jpg").write_bytes(b"half a poster")
    result = _run(csv_path, out)
    assert result.downloaded == ["1"]
    assert load_poster(out / "1.jpg").shape == (224, 224, 3)


def test_retries_back_off_exponentially(server: _Server, tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(f"imdbId,Genre,Poster\n1,Drama,{server.url}/busy.jpg\n")
    delays: list[float] = []
    result = _run(csv_path, tmp_path / "p", retries=3, backoff=0.5, sleep=delays.append)
    assert [f.reason for f in result.failures] == ["http 503"]
    assert delays == [0.5, 1.0, 2.0] and server.hits["/busy.jpg"] == 4


def test_cli_download_json(server: _Server, tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(
        "imdbId,Genre,Poster\n"
        f"1,Drama,{server.url}/good/1.jpg\n"
        f"2,Drama,{server.url}/missing.jpg\n"
        "3,Drama,file:///etc/passwd\n"
    )
    out = tmp_path / "p"
    runner = CliRunner()
    args = ["data", "download", str(csv_path), "--out", str(out), "--retries", "0"]
    result = runner.invoke(main, [*args, "--json", "--timeout", "5"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["downloaded"] == 1 and report["failed"] == 2
    assert {f["imdb_id"]: f["reason"] for f in report["failures"]} == {
        "2": "http 404",
        "3": "bad url",
    }
    text = runner.invoke(main, args)
    assert text.exit_code == 0 and "already present 1" in text.stdout


def test_download_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    no_poster = tmp_path / "n.csv"
    no_poster.write_text("imdbId,Genre\n1,Drama\n")
    result = runner.invoke(main, ["data", "download", str(no_poster), "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert (
        result.stderr.strip() == f"error: {no_poster}: needs imdbId and Poster columns to download"
    )
