"""A static HTTP mirror on 127.0.0.1 for download tests: Range support, a request log and switchable faults."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE_PATH = "/celeba/"


@dataclass(frozen=True)
class Request:
    path: str
    range: str | None


@dataclass
class Mirror:
    """Serves the files of `folder` under http://127.0.0.1:<port>/celeba/ until `stop()`.

    Faults, set by tests: `html[name]` serves that page instead of the file; `drop_after[name] = n` sends
    only n bytes of the next answer for the file, then closes the connection; names in `missing` get 404;
    `trickle[name] = s` sends the file one byte every s seconds (until the client hangs up or the mirror stops);
    `endless[name] = n` answers with zeros for ever (until the client hangs up), announcing n bytes (None: no
    Content-Length, the body ends when the connection does).
    """

    folder: Path
    html: dict[str, bytes] = field(default_factory=dict)
    drop_after: dict[str, int] = field(default_factory=dict)
    missing: set[str] = field(default_factory=set)
    trickle: dict[str, float] = field(default_factory=dict)
    endless: dict[str, int | None] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)  # bytes of the endless answers, by name
    requests: list[Request] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.mirror = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{BASE_PATH}"

    def requested(self, name: str) -> list[Request]:
        return [r for r in self.requests if r.path == BASE_PATH + name]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        mirror: Mirror = self.server.mirror  # type: ignore[attr-defined]
        mirror.requests.append(Request(self.path, self.headers.get("Range")))
        name = self.path.removeprefix(BASE_PATH)
        path = mirror.folder / name
        if name in mirror.html:
            return self._send(200, mirror.html[name], "text/html; charset=utf-8")
        if name in mirror.endless:
            return self._endless(name, mirror)
        if not self.path.startswith(BASE_PATH) or "/" in name or name in mirror.missing or not path.is_file():
            return self._send(404, b"not found", "text/plain")
        size = path.stat().st_size
        start, end = 0, size - 1
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if match:
            start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
            if start >= size:
                return self._send(416, b"", "text/plain", {"Content-Range": f"bytes */{size}"})
        headers = {"Content-Range": f"bytes {start}-{end}/{size}"} if match else {}
        length = end - start + 1
        self._head(206 if match else 200, length, "application/octet-stream", headers)
        limit = mirror.drop_after.pop(name, length)
        with open(path, "rb") as f:
            f.seek(start)
            if name in mirror.trickle:
                return self._trickle(f.read(min(limit, length)), mirror.trickle[name], mirror.stopping)
            self.wfile.write(f.read(min(limit, length)))
        self.wfile.flush()
        self.close_connection = True

    def _trickle(self, body: bytes, interval: float, stopping: threading.Event) -> None:
        self.close_connection = True
        for i in range(len(body)):
            try:
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
            except OSError:  # the client gave up
                return
            if stopping.wait(interval):
                return

    def _endless(self, name: str, mirror: Mirror) -> None:
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if (announced := mirror.endless[name]) is not None:
            self.send_header("Content-Length", str(announced))
        self.end_headers()
        zeros = bytes(64 << 10)
        mirror.sent[name] = 0
        while not mirror.stopping.is_set():
            try:
                self.wfile.write(zeros)
            except OSError:  # the client gave up
                return
            mirror.sent[name] += len(zeros)

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self._head(status, len(body), content_type, headers or {})
        self.wfile.write(body)

    def _head(self, status: int, length: int, content_type: str, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet: tests read Mirror.requests
        pass
