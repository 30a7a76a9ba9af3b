"""`data download` against a real HTTP server on 127.0.0.1: good, corrupt, 404, slow, flaky,
byte-dripping, redirecting elsewhere, oversized; hostile ids and targets."""

from __future__ import annotations

import io
import json
import socket
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
from posterlite.data import DownloadLimits, download_posters
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


def _run(csv_path: Path, out: Path, workers: int = 4, sleep=time.sleep, **limits):
    options = {"retries": 1, "timeout": TIMEOUT, "backoff": 0.01}
    chosen = DownloadLimits(**{**options, **limits})
    return download_posters(csv_path, out, workers, chosen, progress=False, sleep=sleep)


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
    result = _run(
        csv_path, tmp_path / "p", retries=3, backoff=0.5, deadline=30, sleep=delays.append
    )
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


# --- hostile servers and hostile CSVs: one line per poster, the run goes on -------------
DRIP_INTERVAL = 0.05  # one byte per interval: well inside TIMEOUT, so only a deadline ends it
DEADLINE = 0.6


class _HostileServer(LocalServer):
    """/good.jpg, byte-dripping bodies and headers, redirects to ftp:// and file://, a
    declared 1 GB body and an undeclared oversized one."""

    def __init__(self, ftp_port: int) -> None:
        self.hits: dict[str, int] = {}
        server = self

        class Handler(QuietHandler):
            def redirect(self, location: str) -> None:
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def drip(self, data: bytes) -> None:
                try:
                    for byte in data:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(DRIP_INTERVAL)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up: what the deadline is for

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                body = _jpeg(5)
                if self.path == "/good.jpg":
                    self.send(200, body)
                elif self.path == "/drip-body.jpg":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.drip(body)
                elif self.path == "/drip-headers.jpg":
                    head = f"HTTP/1.0 200 OK\r\nContent-Length: {len(body)}\r\n\r\n"
                    self.drip(head.encode() + body)
                elif self.path == "/to-good.jpg":
                    self.redirect("/good.jpg")
                elif self.path == "/to-ftp.jpg":
                    self.redirect(f"ftp://anonymous:x@127.0.0.1:{ftp_port}/poster.jpg")
                elif self.path == "/hop.jpg":  # http -> http -> ftp: every hop is checked
                    self.redirect("/to-ftp.jpg")
                elif self.path == "/to-file.jpg":
                    self.redirect("file:///etc/passwd")
                elif self.path == "/huge-declared.jpg":
                    self.send_response(200)
                    self.send_header("Content-Length", str(2**30))
                    self.end_headers()
                elif self.path == "/huge-undeclared.jpg":  # HTTP/1.0, no length: read to EOF
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(body + b"\0" * 5000)
                    self.close_connection = True
                else:
                    self.send(404, b"not found")

        super().__init__(Handler)


@pytest.fixture
def ftp_listener() -> Iterator[socket.socket]:
    """A TCP port on 127.0.0.1 standing in for an FTP server: the download must never
    connect to it."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    yield listener
    listener.close()


@pytest.fixture
def hostile(ftp_listener: socket.socket) -> Iterator[_HostileServer]:
    running = _HostileServer(ftp_listener.getsockname()[1])
    yield running
    running.close()


def _poster_csv(path: Path, rows: dict[str, str]) -> Path:
    lines = ["imdbId,Genre,Poster", *(f'"{i}",Drama,{url}' for i, url in rows.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_slow_drip_hits_the_deadline_and_the_run_goes_on(hostile, tmp_path: Path) -> None:
    csv_path = _poster_csv(
        tmp_path / "c.csv",
        {
            "1": f"{hostile.url}/good.jpg",
            "2": f"{hostile.url}/drip-body.jpg",
            "3": f"{hostile.url}/drip-headers.jpg",
        },
    )
    started = time.perf_counter()
    result = _run(csv_path, tmp_path / "p", retries=2, deadline=DEADLINE)
    seconds = time.perf_counter() - started
    assert result.downloaded == ["1"]
    failures = {f.imdb_id: f for f in result.failures}
    assert {i: f.reason for i, f in failures.items()} == {"2": "deadline", "3": "deadline"}
    assert "0.6 s deadline" in failures["2"].detail
    # A ~700-byte poster at 20 bytes/s would take ~35 s; the deadline ends each in 0.6 s
    # (both in parallel), and the deadline is over every retry, not per attempt.
    assert seconds < 3 * DEADLINE, seconds
    assert hostile.hits["/drip-body.jpg"] == 1 == hostile.hits["/drip-headers.jpg"]


def test_default_deadline_is_four_timeouts() -> None:
    assert DownloadLimits(timeout=2.5).deadline_s == 10.0
    assert DownloadLimits(timeout=2.5, deadline=3).deadline_s == 3.0


@pytest.mark.parametrize("path", ["/to-ftp.jpg", "/hop.jpg", "/to-file.jpg"])
def test_redirects_only_to_http(hostile, ftp_listener, tmp_path: Path, path: str) -> None:
    csv_path = _poster_csv(
        tmp_path / "c.csv", {"1": f"{hostile.url}{path}", "2": f"{hostile.url}/to-good.jpg"}
    )
    result = _run(csv_path, tmp_path / "p", retries=1)
    assert result.downloaded == ["2"]  # an http redirect is still followed
    [failure] = result.failures
    assert (failure.imdb_id, failure.reason) == ("1", "bad redirect")
    target = "file:///etc/passwd" if path == "/to-file.jpg" else "ftp://anonymous"
    assert failure.detail.startswith(f"302 to {target}")
    with pytest.raises(BlockingIOError):  # nobody ever connected to the "FTP server"
        ftp_listener.accept()
    assert not (tmp_path / "p" / "1.jpg").exists()


def test_size_cap_declared_and_undeclared(hostile, tmp_path: Path) -> None:
    csv_path = _poster_csv(
        tmp_path / "c.csv",
        {
            "1": f"{hostile.url}/huge-declared.jpg",
            "2": f"{hostile.url}/huge-undeclared.jpg",
            "3": f"{hostile.url}/good.jpg",
        },
    )
    result = _run(csv_path, tmp_path / "p", retries=0, max_bytes=len(_jpeg(5)) + 100)
    assert result.downloaded == ["3"]
    details = {f.imdb_id: (f.reason, f.detail) for f in result.failures}
    assert details["1"] == (
        "too large",
        f"1,073,741,824 bytes declared, cap {len(_jpeg(5)) + 100:,}",
    )
    assert details["2"][0] == "too large"


def test_bad_targets_are_one_line_each_and_the_run_summarises(hostile, tmp_path: Path) -> None:
    """A 300-character id (the file system refuses the name) and a target that is a folder
    fail alone; the other posters are written and the summary is printed."""
    out = tmp_path / "p"
    (out / "4.jpg").mkdir(parents=True)
    long_id = "9" * 300
    csv_path = _poster_csv(
        tmp_path / "c.csv",
        {
            "1": f"{hostile.url}/good.jpg",
            long_id: f"{hostile.url}/good.jpg",
            "4": f"{hostile.url}/good.jpg",
            "bad\nid": f"{hostile.url}/good.jpg",
            "5": f"{hostile.url}/to-good.jpg",
        },
    )
    runner = CliRunner()
    args = ["data", "download", str(csv_path), "--out", str(out), "--timeout", "5"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{out}: downloaded 2, already present 0, failed 3"
    assert lines[1] == "  failures: bad id 1, cannot write 2"
    failure_lines = lines[2:]
    assert len(failure_lines) == 3
    assert any(line.startswith("    bad\\x0aid: bad id") for line in failure_lines)
    assert any("999...: cannot write (File name too long)" in line for line in failure_lines)
    assert any(
        line.startswith("    4: cannot write (target is a folder)") for line in failure_lines
    )
    assert sorted(p.name for p in out.iterdir()) == ["1.jpg", "4.jpg", "5.jpg"]
    assert load_poster(out / "5.jpg").shape == (224, 224, 3)
    report = json.loads(runner.invoke(main, [*args, "--json"]).stdout)
    assert report["present"] == 2
    assert {f["imdb_id"]: f["reason"] for f in report["failures"]} == {
        long_id: "cannot write",
        "4": "cannot write",
        "bad\nid": "bad id",
    }


def test_cli_deadline_option(tmp_path: Path) -> None:
    csv_path = _poster_csv(tmp_path / "c.csv", {"1": "http://127.0.0.1:9/x.jpg"})
    runner = CliRunner()
    args = ["data", "download", str(csv_path), "--out", str(tmp_path / "p")]
    bad = runner.invoke(main, [*args, "--deadline", "0"])
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ")
    assert "--deadline" in runner.invoke(main, ["data", "download", "--help"]).stdout
