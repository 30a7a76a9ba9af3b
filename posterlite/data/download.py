"""Downloading posters: the Kaggle CSV's poster URLs fetched to OUT/<imdbId>.jpg.

Owns `download_posters` (concurrent, resumable: a poster already there and decodable is
kept), `DownloadLimits` (what one poster may cost), the http(s)-only opener whose every
socket is under one per-poster deadline, and the download summary. A server is hostile
until read: only http(s) is fetched, redirects included; a body past the size cap or the
deadline is refused; a poster that does not decode (`posterlite.data.scan.check_poster`'s
rule) is not written. One poster's failure is one `failures` entry; the others go on.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from posterlite.data.layouts import CsvTable, read_csv_table
from posterlite.data.records import MAX_POSTER_BYTES, SCAN_DECODE_SIZE, one_line, progress_bar
from posterlite.data.scan import check_poster
from posterlite.errors import PosterliteError
from posterlite.fileio import atomic_write_bytes
from posterlite.preprocess import PosterDecodeError, load_poster

USER_AGENT = "posterlite-data-download/0.1"
WEB_SCHEMES = frozenset({"http", "https"})  # the only URLs (and redirects) a download follows
DEFAULT_TIMEOUT = 20.0  # seconds per socket operation
DEADLINE_TIMEOUTS = 4  # default deadline per poster, in timeouts
DOWNLOAD_CHUNK = 64 * 1024
DEFAULT_WORKERS = 8  # parallel downloads

_SAFE_ID_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class DownloadFailure:
    """One poster not downloaded: its id, the URL last tried ("" if none) and why."""

    imdb_id: str
    url: str
    reason: str
    detail: str = ""


@dataclass
class DownloadResult:
    """What a download run did, poster by poster id."""

    out: Path
    downloaded: list[str] = field(default_factory=list)  # imdb ids fetched this run
    present: list[str] = field(default_factory=list)  # already there and decodable
    failures: list[DownloadFailure] = field(default_factory=list)
    duplicate_rows: int = 0  # later rows of an id: their URLs are tried as fallbacks

    def to_json(self) -> dict[str, object]:
        """The counts and every failure as one JSON object (`data download --json`)."""
        return {
            "out": str(self.out),
            "downloaded": len(self.downloaded),
            "present": len(self.present),
            "failed": len(self.failures),
            "duplicate_rows": self.duplicate_rows,
            "failures": [
                {"imdb_id": f.imdb_id, "url": f.url, "reason": f.reason, "detail": f.detail}
                for f in self.failures
            ],
        }


@dataclass(frozen=True)
class DownloadLimits:
    """How long and how much one poster may cost.

    `timeout` bounds each socket operation (connect, one read); a server sending a byte
    per `timeout` would pass it forever, so `deadline` bounds the whole poster (every URL,
    retry and backoff of it) and `max_bytes` its size.
    """

    timeout: float = DEFAULT_TIMEOUT
    deadline: float | None = None  # None: DEADLINE_TIMEOUTS x timeout
    max_bytes: int = MAX_POSTER_BYTES
    retries: int = 3
    backoff: float = 0.5

    @property
    def deadline_s(self) -> float:
        """The deadline per poster in force, in seconds."""
        return self.deadline if self.deadline is not None else DEADLINE_TIMEOUTS * self.timeout

    def check(self) -> None:
        """Returns None; raises `PosterliteError` for negative retries or a timeout,
        deadline or size cap that is not positive."""
        if self.retries < 0 or self.timeout <= 0 or self.deadline_s <= 0 or self.max_bytes < 1:
            raise PosterliteError("--retries must be >= 0, --timeout and --deadline > 0")


@dataclass(frozen=True)
class _Job:
    imdb_id: str
    urls: tuple[str, ...]  # every URL the CSV gives this id, in row order
    target: Path


class _FetchError(Exception):
    def __init__(self, reason: str, detail: str = "", retry: bool = False) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.retry = reason, detail, retry


class _Deadline:
    """The wall-clock limit of one poster, kept by a watchdog timer.

    Every socket the poster's requests open goes through `connect`; when the deadline
    passes the watchdog shuts them down, which ends a blocked connect, TLS handshake,
    header or body read at once (socket timeouts only bound a single read).
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._expires = time.monotonic() + seconds
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self.expired = False
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        """Seconds left before the deadline (negative once past it)."""
        return self._expires - time.monotonic()

    def connect(
        self,
        address: tuple[str, int],
        timeout: float,
        source_address: tuple[str, int] | None = None,
        *args: object,
        **kwargs: object,
    ) -> socket.socket:
        """`socket.create_connection` whose socket the watchdog may shut down; raises
        TimeoutError once the deadline has passed, OSError as `create_connection` does."""
        remaining = self.remaining()
        if remaining <= 0:
            raise TimeoutError("deadline passed")
        sock = socket.create_connection(address, min(timeout, remaining), source_address)
        sock.settimeout(timeout)
        with self._lock:
            self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut_down(sock)
        return sock

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut_down(sock)

    def cancel(self) -> None:
        """Stops the watchdog (the poster is done)."""
        self._timer.cancel()

    def failure(self, last: str = "") -> _FetchError:
        """The "deadline" error of this poster, naming the last failure before it."""
        detail = f"over the {self.seconds:g} s deadline per poster"
        return _FetchError("deadline", detail + (f" (last: {last})" if last else ""))


def _shut_down(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed: the request it served is over


def _deadline_connections(
    http_class: Callable[..., http.client.HTTPConnection], deadline: _Deadline
) -> Callable[..., http.client.HTTPConnection]:
    """`http_class` (HTTP or HTTPS connection) whose sockets are opened by `deadline`."""

    def build(host: str, **kwargs: object) -> http.client.HTTPConnection:
        connection = http_class(host, **kwargs)
        # http.client opens its socket through this attribute (HTTPS wraps it afterwards),
        # so every byte of the request, TLS included, is under the watchdog.
        connection._create_connection = deadline.connect  # type: ignore[attr-defined]
        return connection

    return build


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def do_open(
        self,
        http_class: Callable[..., http.client.HTTPConnection],
        req: urllib.request.Request,
        **kwargs: object,
    ) -> http.client.HTTPResponse:
        """urllib's response, its connection opened under the deadline; raises as urllib does."""
        return super().do_open(_deadline_connections(http_class, self.deadline), req, **kwargs)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, deadline: _Deadline) -> None:
        super().__init__()
        self.deadline = deadline

    def do_open(
        self,
        http_class: Callable[..., http.client.HTTPConnection],
        req: urllib.request.Request,
        **kwargs: object,
    ) -> http.client.HTTPResponse:
        """urllib's response, its connection opened under the deadline; raises as urllib does."""
        return super().do_open(_deadline_connections(http_class, self.deadline), req, **kwargs)


class _WebOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to http(s): a poster host must not send us to ftp:// (which
    urllib would log in to) or file://. Checked on every hop, not only the CSV's URL."""

    def http_error_302(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
    ) -> object:
        """urllib's redirect, followed only to http(s): returns the response of the new
        request (None: not redirected); raises `_FetchError` otherwise."""
        location = headers.get("location") or headers.get("uri") or ""
        _check_redirect(urllib.parse.urljoin(req.full_url, location.strip()), code, fp)
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        """urllib's next request, only to http(s); raises `_FetchError` otherwise."""
        _check_redirect(newurl, code, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _check_redirect(url: str, code: int, fp: IO[bytes]) -> None:
    if urllib.parse.urlsplit(url).scheme not in WEB_SCHEMES:
        fp.close()
        raise _FetchError("bad redirect", f"{code} to {url[:80]}")


def _opener(deadline: _Deadline) -> urllib.request.OpenerDirector:
    """An opener that speaks http(s) only (no ftp, file or data handler at all), under
    `deadline`, following redirects to http(s) only; proxies from the environment apply."""
    opener = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        _DeadlineHTTPHandler(deadline),
        _DeadlineHTTPSHandler(deadline),
        urllib.request.HTTPDefaultErrorHandler(),
        _WebOnlyRedirects(),
        urllib.request.HTTPErrorProcessor(),
    ):
        opener.add_handler(handler)
    return opener


def read_poster_urls(csv_path: Path) -> tuple[list[tuple[str, str]], CsvTable]:
    """((imdbId, Poster URL) per row of a Kaggle CSV in row order, the table); raises
    `PosterliteError` if the CSV cannot be read or lacks those columns."""
    table = read_csv_table(Path(csv_path))
    id_col, poster_col = table.column("imdbid", "id"), table.column("poster")
    if not id_col or not poster_col:
        raise PosterliteError(f"{csv_path}: needs imdbId and Poster columns to download")
    return [(row[id_col].strip(), row[poster_col].strip()) for _, row in table.rows], table


def _read_bounded(response: http.client.HTTPResponse, limit: int) -> bytes:
    """The body, read in chunks and refused as soon as it passes `limit` bytes."""
    declared = response.headers.get("Content-Length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        raise _FetchError("too large", f"{int(declared):,} bytes declared, cap {limit:,}")
    chunks: list[bytes] = []
    size = 0
    while chunk := response.read(DOWNLOAD_CHUNK):
        size += len(chunk)
        if size > limit:
            raise _FetchError("too large", f"over the {limit:,} byte cap")
        chunks.append(chunk)
    return b"".join(chunks)


def _network_failure(exc: Exception, timeout: float) -> _FetchError:
    """A short reason for anything the HTTP stack raised, and whether a retry may help."""
    if isinstance(exc, urllib.error.HTTPError):
        # Server errors and rate limits are transient; 404/403/410 are dead links.
        transient = exc.code >= 500 or exc.code in (408, 429)
        return _FetchError(f"http {exc.code}", str(exc.reason), retry=transient)
    if isinstance(exc, urllib.error.URLError):
        if isinstance(exc.reason, TimeoutError):
            return _FetchError("timeout", f"no answer in {timeout:g} s", retry=True)
        return _FetchError("connection error", str(exc.reason), retry=True)
    if isinstance(exc, TimeoutError):
        return _FetchError("timeout", f"no answer in {timeout:g} s", retry=True)
    if isinstance(exc, http.client.HTTPException | OSError):
        return _FetchError("connection error", f"{type(exc).__name__}: {exc}", retry=True)
    if isinstance(exc, ValueError):
        return _FetchError("bad url", str(exc)[:120])
    # The HTTP stack raising anything else for one URL must not end the run.
    return _FetchError("connection error", f"{type(exc).__name__}: {exc}"[:160])


def _fetch(url: str, limits: DownloadLimits, deadline: _Deadline) -> bytes:
    """GET one URL under `deadline`; `_FetchError` with a short reason (and whether a retry
    may help)."""
    if urllib.parse.urlsplit(url).scheme.lower() not in WEB_SCHEMES:
        raise _FetchError("bad url", url[:80])
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with _opener(deadline).open(request, timeout=limits.timeout) as response:
            data = _read_bounded(response, limits.max_bytes)
    except _FetchError:
        raise
    except Exception as exc:  # noqa: BLE001 - every network failure is one poster's failure
        failure = _network_failure(exc, limits.timeout)
        raise (deadline.failure() if deadline.expired else failure) from exc
    if deadline.expired:  # the watchdog may have cut the body short
        raise deadline.failure()
    try:
        load_poster(data, SCAN_DECODE_SIZE)
    except PosterDecodeError as exc:
        # A cut connection without Content-Length shows up as a truncated image.
        raise _FetchError(exc.reason, str(exc), retry=exc.reason == "truncated") from exc
    return data


def _fetch_job(
    job: _Job, limits: DownloadLimits, sleep: Callable[[float], None]
) -> bytes | DownloadFailure:
    """The poster from the first URL that works (retries with exponential backoff), or the
    last failure; the whole job, every URL and retry, runs under one deadline."""
    failure = DownloadFailure(job.imdb_id, "", "no url")
    if not job.urls:
        return failure
    deadline = _Deadline(limits.deadline_s)
    try:
        for url in job.urls:
            for attempt in range(limits.retries + 1):
                if deadline.remaining() <= 0:
                    late = deadline.failure(failure.reason if failure.url else "")
                    return DownloadFailure(job.imdb_id, url, late.reason, late.detail)
                try:
                    return _fetch(url, limits, deadline)
                except _FetchError as exc:
                    failure = DownloadFailure(job.imdb_id, url, exc.reason, exc.detail)
                    if exc.reason == "deadline":
                        return failure
                    if not exc.retry or attempt == limits.retries:
                        break
                    # exponential backoff: 1x, 2x, 4x ..., never past the deadline
                    sleep(min(limits.backoff * 2**attempt, max(0.0, deadline.remaining())))
    finally:
        deadline.cancel()
    return failure


def _download_one(
    job: _Job, limits: DownloadLimits, sleep: Callable[[float], None]
) -> tuple[str, DownloadFailure | None]:
    """("present" | "downloaded" | "failed", failure). Never raises for one poster: a bad
    target (a folder, a name the file system refuses) is this poster's failure too."""
    try:
        if job.target.is_file() and check_poster(job.target) is None:
            return "present", None
        if job.target.is_dir():
            return "failed", DownloadFailure(job.imdb_id, "", "cannot write", "target is a folder")
        fetched = _fetch_job(job, limits, sleep)
        if isinstance(fetched, DownloadFailure):
            return "failed", fetched
        atomic_write_bytes(job.target, fetched)
    except OSError as exc:
        return "failed", DownloadFailure(job.imdb_id, "", "cannot write", exc.strerror or str(exc))
    return "downloaded", None


def download_posters(
    csv_path: Path,
    out: Path,
    workers: int = DEFAULT_WORKERS,
    limits: DownloadLimits = DownloadLimits(),
    *,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Download every poster of a Kaggle CSV to `out/<imdbId>.jpg`; resumable. Returns what
    was downloaded, already present or failed: one poster's failure (network, size,
    deadline, target file) is one entry in `failures`. Raises `PosterliteError` for bad
    limits or workers, a missing or unreadable CSV, or an `out` that cannot be created."""
    limits.check()
    if workers < 1:
        raise PosterliteError("--workers must be >= 1")
    if not Path(csv_path).is_file():
        raise PosterliteError(f"CSV not found: {csv_path}")
    pairs, _ = read_poster_urls(Path(csv_path))
    out = Path(out)
    result = DownloadResult(out)
    urls: dict[str, list[str]] = {}
    for imdb_id, url in pairs:
        if not _SAFE_ID_RE.match(imdb_id):
            result.failures.append(DownloadFailure(imdb_id, url, "bad id"))
            continue
        if imdb_id in urls:
            result.duplicate_rows += 1
        urls.setdefault(imdb_id, [])
        if url and url not in urls[imdb_id]:
            urls[imdb_id].append(url)
    jobs = [_Job(i, tuple(u), out / f"{i}.jpg") for i, u in urls.items()]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PosterliteError(f"cannot create {out}: {exc.strerror or exc}") from exc
    with progress_bar(len(jobs), "downloading posters", progress) as bar:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outcomes = pool.map(lambda j: _download_one(j, limits, sleep), jobs)
            for job, (status, failure) in zip(jobs, outcomes, strict=True):
                if status == "present":
                    result.present.append(job.imdb_id)
                elif status == "downloaded":
                    result.downloaded.append(job.imdb_id)
                elif failure is not None:
                    result.failures.append(failure)
                bar.update(1)
    return result


def format_download_summary(result: DownloadResult, limit: int = 20) -> str:
    """The readable summary of a download run (the CLI's non-JSON output): counts, failure
    reasons and the first `limit` failures. Never raises."""
    lines = [
        f"{result.out}: downloaded {len(result.downloaded):,}, already present "
        f"{len(result.present):,}, failed {len(result.failures):,}"
    ]
    reasons = Counter(f.reason for f in result.failures)
    if reasons:
        lines.append("  failures: " + ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items())))
    for failure in result.failures[:limit]:
        detail = f" ({one_line(failure.detail)})" if failure.detail else ""
        where = f" {one_line(failure.url)}" if failure.url else ""
        lines.append(f"    {one_line(failure.imdb_id, 40)}: {failure.reason}{detail}{where}")
    if len(result.failures) > limit:
        lines.append(f"    ... {len(result.failures) - limit:,} more (use --json for all)")
    return "\n".join(lines)
