"""An EDGAR stand-in: a real HTTP server on 127.0.0.1 that serves a folder in EDGAR layout.

It behaves like SEC where FinLoom's client must cope: it demands a declared User-Agent
(403 HTML page otherwise), answers 429 with SEC's rate page when more than ``limit``
requests arrived in the last second, gzips when asked, and 404s with S3-style XML. With
``latency`` every answer is sent that many seconds after the request arrived, as from SEC
far away (``EdgarStandIn(root, latency=0.25)``).

    with EdgarStandIn(EDGAR_ROOT) as s:
        settings = FinloomSettings(edgar_data_url=s.data_url, edgar_www_url=s.www_url, ...)
        s.add_fault("/submissions/CIK0000320193.json", 503)   # served before the file
        ...
        assert s.count(429) == 0

Paths: ``/api/xbrl/companyfacts/CIK##########.json`` -> ``companyfacts/``,
``/submissions/<name>.json`` -> ``submissions/``, ``/files/company_tickers.json`` ->
``reference/company_tickers.json``, ``/Archives/edgar/daily-index/YYYY/QTRn/*.idx`` ->
``Archives/`` (or content registered with ``serve_document``). A missing Archives file is
answered as SEC does: 403 with an ``AccessDenied`` XML.

Every 200 answer carries an ``ETag`` (a hash of its body) and a ``Last-Modified`` (the
file's modification time, or when the content was registered); ``If-None-Match`` (or,
without it, ``If-Modified-Since``) is answered 304 when the content is the same, and
``Range: bytes=N-`` with 206 and the rest of the body (``If-Range`` honoured).
Each ``Hit`` records whether the request was conditional.
``change_document`` serves new bytes at a path (a new ETag); ``serve_file`` serves a file
(e.g. a bulk archive) at a path; ``cut_after`` breaks the next answer of a path after a
number of bytes, as a dropped connection.
"""

from __future__ import annotations

import email.utils
import gzip
import hashlib
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

Fault = tuple[int, bytes, dict[str, str]]

JSON = "application/json"
HTML = "text/html; charset=UTF-8"
XML = "application/xml"
TEXT = "text/plain"

_ROUTES = (
    (re.compile(r"^/api/xbrl/companyfacts/(CIK\d{10}\.json)$"), "companyfacts"),
    (re.compile(r"^/submissions/(CIK\d{10}(?:-submissions-\d{3})?\.json)$"), "submissions"),
    (re.compile(r"^/files/(company_tickers\.json)$"), "reference"),
    (re.compile(r"^/Archives/(edgar/daily-index/\d{4}/QTR\d/[\w.]+\.idx)$"), "Archives"),
)
_DECLARED_UA = re.compile(r"\S+@\S+\.\S+")

UNDECLARED_PAGE = (
    b"<!DOCTYPE html><html><head><title>SEC.gov | Your Request Originates from an Undeclared "
    b"Automated Tool</title></head><body><h1>Your Request Originates from an Undeclared "
    b"Automated Tool</h1><p>Please declare your traffic by updating your user agent to "
    b"include company specific information.</p></body></html>"
)
FALLBACK_RATE_PAGE = (
    b"<html><head><title>SEC.gov | Request Rate Threshold Exceeded</title></head>"
    b"<body><h1>You've Exceeded the SEC's Traffic Limit</h1></body></html>"
)
MAINTENANCE_PAGE = (
    b"<!DOCTYPE html><html><head><title>SEC.gov | Maintenance</title></head>"
    b"<body><p>EDGAR is undergoing maintenance.</p></body></html>"
)


@dataclass(frozen=True, slots=True)
class Hit:
    """One request the stand-in answered."""

    path: str
    status: int
    at: float  # time.monotonic() on arrival
    user_agent: str | None
    accept_encoding: str | None
    conditional: bool = False  # sent If-None-Match or If-Modified-Since


def _access_denied_xml() -> bytes:
    """SEC's answer to an Archives file that does not exist (a weekend's daily index)."""
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
        b"<Message>Access Denied</Message><RequestId>STANDIN</RequestId></Error>"
    )


def _not_found_xml(key: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
        f"<Message>The specified key does not exist.</Message><Key>{key}</Key>"
        "<RequestId>STANDIN</RequestId></Error>"
    ).encode()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128


class EdgarStandIn:
    """Serve ``root`` (EDGAR layout) on a random free port of 127.0.0.1 in a background thread."""

    def __init__(
        self,
        root: Path | str,
        *,
        limit: int = 10,
        require_user_agent: bool = True,
        latency: float = 0.0,
    ) -> None:
        self.root = Path(root)
        self.limit = limit
        self.latency = latency  # seconds before each answer is sent (SEC's distance)
        self.require_user_agent = require_user_agent
        self.faults: dict[str, list[Fault]] = {}
        self.documents: dict[str, bytes] = {}  # content served at a path, before the folder
        self.files: dict[str, Path] = {}  # a file served at a path (bulk archives)
        self.modified: dict[str, float] = {}  # Last-Modified of registered content
        self.cuts: dict[str, int] = {}  # next answer of a path broken after so many bytes
        self.started = time.time()
        self._hits: list[Hit] = []
        self._window: deque[float] = deque()
        self._gzipped: dict[Path, bytes] = {}
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> EdgarStandIn:
        self._server = _Server(("127.0.0.1", 0), _make_handler(self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="edgar-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> EdgarStandIn:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "stand-in not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    data_url = base_url
    www_url = base_url

    # -- fault injection

    def add_fault(
        self, path: str, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        """Serve this response for ``path`` before anything else (one use per call)."""
        with self._lock:
            self.faults.setdefault(path, []).append((status, body, dict(headers or {})))

    def serve_document(self, path: str, body: bytes) -> None:
        """Serve ``body`` (plain text) at ``path`` on every request, e.g. a daily index."""
        with self._lock:
            self.documents[path] = body

    def change_document(self, path: str, body: bytes) -> None:
        """Serve ``body`` at ``path`` from now on: new bytes, a new ETag and Last-Modified."""
        with self._lock:
            self.documents[path] = body
            self.modified[path] = time.time() + 1

    def serve_file(self, path: str, file: Path, modified: float | None = None) -> None:
        """Serve ``file`` at ``path`` (its bytes read on each request)."""
        with self._lock:
            self.files[path] = file
            self.modified[path] = modified if modified is not None else time.time()

    def cut_after(self, path: str, nbytes: int) -> None:
        """Next 200/206 answer of ``path``: the connection drops after ``nbytes`` of body."""
        with self._lock:
            self.cuts[path] = nbytes

    def serve_truncated(self, path: str, nbytes: int = 200) -> None:
        """Next request of ``path``: status 200 with only the first ``nbytes`` of the file."""
        file = self.resolve(path)
        assert file is not None and file.is_file(), path
        self.add_fault(path, 200, file.read_bytes()[:nbytes], {"Content-Type": JSON})

    def serve_html_200(self, path: str, page: bytes = MAINTENANCE_PAGE) -> None:
        """Next request of ``path``: an HTML page with status 200 (as SEC sometimes does)."""
        self.add_fault(path, 200, page, {"Content-Type": HTML})

    def rate_page(self) -> bytes:
        """SEC's "Request Rate Threshold Exceeded" page, read from ``root/errors`` if present."""
        page = self.root / "errors" / "rate-exceeded_429.html"
        return page.read_bytes() if page.is_file() else FALLBACK_RATE_PAGE

    # -- records

    @property
    def hits(self) -> list[Hit]:
        with self._lock:
            return list(self._hits)

    def statuses(self) -> list[int]:
        return [hit.status for hit in self.hits]

    def count(self, status: int | None = None) -> int:
        """Requests answered with ``status`` (all requests when None)."""
        return sum(1 for hit in self.hits if status is None or hit.status == status)

    # -- request handling (called from server threads)

    def resolve(self, path: str) -> Path | None:
        """The file that serves URL ``path``, or None for an unknown route."""
        for pattern, folder in _ROUTES:
            match = pattern.match(path)
            if match:
                return self.root / folder / match.group(1)
        return None

    def answer(self, path: str, user_agent: str | None, gzip_ok: bool) -> tuple[int, bytes, dict]:
        """Decide the response to a GET: (status, body, headers)."""
        if self._over_limit():
            return 429, self.rate_page(), {"Content-Type": HTML}
        if self.require_user_agent and not _DECLARED_UA.search(user_agent or ""):
            return 403, UNDECLARED_PAGE, {"Content-Type": HTML}
        fault = self._next_fault(path)
        if fault is not None:
            return fault
        with self._lock:
            document = self.documents.get(path)
        if document is not None:
            return 200, document, {"Content-Type": TEXT}
        file = self.resolve(path)
        if (file is None or not file.is_file()) and path.startswith("/Archives/"):
            return 403, _access_denied_xml(), {"Content-Type": XML}
        if file is None or not file.is_file():
            return 404, _not_found_xml(path.lstrip("/")), {"Content-Type": XML}
        if path.startswith("/Archives/"):
            return 200, file.read_bytes(), {"Content-Type": TEXT}
        if gzip_ok:
            return 200, self._gzip(file), {"Content-Type": JSON, "Content-Encoding": "gzip"}
        return 200, file.read_bytes(), {"Content-Type": JSON}

    def validate(
        self, path: str, request: Mapping[str, str], answer: tuple[int, bytes, dict]
    ) -> tuple[int, bytes, dict]:
        """Validators on a 200 answer; 304 for a matching conditional request; 206 for a
        ``Range: bytes=N-``."""
        status, body, headers = answer
        with self._lock:
            file = self.files.get(path)
        if file is not None and status in (403, 404) and headers.get("Content-Type") == XML:
            status, body, headers = 200, file.read_bytes(), {"Content-Type": "application/zip"}
        if status != 200:
            return answer
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        with self._lock:
            modified = self.modified.get(path)
        if modified is None:
            local = self.resolve(path)
            modified = local.stat().st_mtime if local and local.is_file() else self.started
        headers = {**headers, "ETag": etag,
                   "Last-Modified": email.utils.formatdate(modified, usegmt=True)}  # fmt: skip
        match, since = request.get("If-None-Match"), request.get("If-Modified-Since")
        if match is not None:
            not_modified = etag in [m.strip() for m in match.split(",")] or match.strip() == "*"
        elif since is not None:
            when = email.utils.parsedate_to_datetime(since).timestamp()
            not_modified = int(modified) <= when
        else:
            not_modified = False
        if not_modified:
            return 304, b"", {"ETag": etag, "Last-Modified": headers["Last-Modified"]}
        wanted = re.fullmatch(r"bytes=(\d+)-", request.get("Range", "").strip())
        if_range = request.get("If-Range")
        if wanted and (if_range is None or if_range == etag) and int(wanted[1]) < len(body):
            start = int(wanted[1])
            headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
            return 206, body[start:], headers
        return status, body, headers

    def take_cut(self, path: str) -> int | None:
        with self._lock:
            return self.cuts.pop(path, None)

    def record(self, hit: Hit) -> None:
        with self._lock:
            self._hits.append(hit)

    def _over_limit(self) -> bool:
        """Count this request; True when more than ``limit`` arrived in the last second."""
        now = time.monotonic()
        with self._lock:
            self._window.append(now)
            while self._window and self._window[0] <= now - 1.0:
                self._window.popleft()
            return len(self._window) > self.limit

    def _next_fault(self, path: str) -> Fault | None:
        with self._lock:
            queue = self.faults.get(path)
            return queue.pop(0) if queue else None

    def _gzip(self, file: Path) -> bytes:
        with self._lock:
            cached = self._gzipped.get(file)
        if cached is None:
            cached = gzip.compress(file.read_bytes(), compresslevel=1)
            with self._lock:
                self._gzipped[file] = cached
        return cached


def _make_handler(standin: EdgarStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "EdgarStandIn/1.0"

        def do_GET(self) -> None:
            arrived = time.monotonic()
            path = urlsplit(self.path).path
            user_agent = self.headers.get("User-Agent")
            encoding = self.headers.get("Accept-Encoding")
            gzip_ok = "gzip" in (encoding or "").lower()
            status, body, headers = standin.answer(path, user_agent, gzip_ok)
            status, body, headers = standin.validate(path, self.headers, (status, body, headers))
            cut = standin.take_cut(path) if status in (200, 206) else None
            conditional = bool(
                self.headers.get("If-None-Match") or self.headers.get("If-Modified-Since")
            )
            standin.record(Hit(path, status, arrived, user_agent, encoding, conditional))
            if standin.latency > 0:
                time.sleep(max(0.0, arrived + standin.latency - time.monotonic()))
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if cut is not None:  # a dropped connection: part of the body, then nothing
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:
            """Silence the per-request stderr log."""

    return Handler
