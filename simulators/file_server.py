"""A test HTTP(S) file server on loopback: firmware to download, and a place to upload diagnostics to.

``GET /<name>`` serves ``serve_dir/<name>``; ``PUT /<name>`` stores the body as ``upload_dir/<name>``; a
multipart/form-data ``POST`` stores its ``file`` field under the part's file name. Stimuli:
``fail_with`` (answer every request with that HTTP status), ``fail_next`` (only the next n requests),
``allow_put = False`` (PUT gets 405, as many upload endpoints that only take form posts do),
``stall_s`` (wait before answering) and ``truncate`` (announce the whole file, send half, hang up).
Every request is recorded, in order, in ``requests``.

It runs ``http.server`` in a thread, so tests on the event loop and blocking clients can both use it.
"""

from __future__ import annotations

import email.parser
import email.policy
import shutil
import ssl
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from types import TracebackType
from urllib.parse import unquote, urlsplit

READ_CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body_bytes: int
    status: int
    stored_as: Path | None  # uploads: where the file went


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, owner: TestFileServer) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # tests read ``requests`` instead of stderr

    @property
    def owner(self) -> TestFileServer:
        return self.server.owner

    def _name(self) -> str | None:
        path = PurePosixPath(unquote(urlsplit(self.path).path))
        parts = [p for p in path.parts if p not in ("/", "")]
        if not parts or any(p in (".", "..") for p in parts):
            return None
        return "/".join(parts)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        chunks: list[bytes] = []
        while length > 0:
            chunk = self.rfile.read(min(READ_CHUNK_BYTES, length))
            if not chunk:
                break
            chunks.append(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def _reply(self, status: int, body: bytes = b"", *, content_type: str = "text/plain") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _record(self, status: int, body_bytes: int, stored_as: Path | None = None) -> None:
        self.owner._record(RecordedRequest(self.command, self.path, dict(self.headers.items()), body_bytes, status,
                                           stored_as))

    def _refused(self) -> int | None:
        """The failure status to answer with (after any stall), or None to serve normally."""
        if self.owner.stall_s > 0:
            time.sleep(self.owner.stall_s)
        return self.owner._take_failure()

    def do_GET(self) -> None:
        failure = self._refused()
        if failure is not None:
            self._record(failure, 0)
            self._reply(failure, HTTPStatus(failure).phrase.encode())
            return
        name = self._name()
        path = None if name is None else self.owner.serve_dir / name
        if path is None or not path.is_file():
            self._record(HTTPStatus.NOT_FOUND, 0)
            self._reply(HTTPStatus.NOT_FOUND, b"no such file")
            return
        data = path.read_bytes()
        self._record(HTTPStatus.OK, 0)
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.owner.truncate:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def do_PUT(self) -> None:
        body = self._read_body()
        failure = self._refused()
        if failure is None and not self.owner.allow_put:
            failure = HTTPStatus.METHOD_NOT_ALLOWED
        name = self._name()
        if failure is None and name is None:
            failure = HTTPStatus.BAD_REQUEST
        if failure is not None:
            self._record(failure, len(body))
            self._reply(failure, HTTPStatus(failure).phrase.encode())
            return
        assert name is not None
        stored = self.owner._store(PurePosixPath(name).name, body)
        self._record(HTTPStatus.CREATED, len(body), stored)
        self._reply(HTTPStatus.CREATED)

    def do_POST(self) -> None:
        body = self._read_body()
        failure = self._refused()
        if failure is not None:
            self._record(failure, len(body))
            self._reply(failure, HTTPStatus(failure).phrase.encode())
            return
        content_type = self.headers.get("Content-Type", "")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body
        )
        stored: Path | None = None
        if message.is_multipart():
            for part in message.iter_parts():
                if part.get_param("name", header="content-disposition") == "file":
                    file_name = PurePosixPath(part.get_filename() or "upload.bin").name
                    payload = part.get_payload(decode=True)
                    stored = self.owner._store(file_name, payload if isinstance(payload, bytes) else b"")
                    break
        if stored is None:
            self._record(HTTPStatus.BAD_REQUEST, len(body))
            self._reply(HTTPStatus.BAD_REQUEST, b'expected multipart/form-data with a "file" field')
            return
        self._record(HTTPStatus.CREATED, len(body), stored)
        self._reply(HTTPStatus.CREATED)


class TestFileServer:
    """HTTP server on 127.0.0.1 (a free port) serving ``serve_dir`` and storing uploads in ``upload_dir``."""

    __test__ = False  # not a pytest test class

    def __init__(self, serve_dir: Path, upload_dir: Path, *, fail_with: int | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.serve_dir = Path(serve_dir)
        self.ssl_context = ssl_context  # given: HTTPS with this server context
        self.upload_dir = Path(upload_dir)
        self.fail_with = fail_with
        self.fail_next = 0  # answer the next n requests with ``fail_next_status``
        self.fail_next_status = int(HTTPStatus.SERVICE_UNAVAILABLE)
        self.allow_put = True
        self.stall_s = 0.0
        self.truncate = False
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'http' if self.ssl_context is None else 'https'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.serve_dir.mkdir(parents=True, exist_ok=True)
        self.upload_dir.mkdir(parents=True, exist_ok=True)
        self._server = _Server(self)
        if self.ssl_context is not None:
            self._server.socket = self.ssl_context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="test-file-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> TestFileServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def add_file(self, name: str, data: bytes) -> str:
        """Put a file to serve; returns its URL."""
        path = self.serve_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return f"{self.url}/{name}"

    def uploaded(self) -> list[Path]:
        return sorted(p for p in self.upload_dir.iterdir() if p.is_file())

    def requests_of(self, method: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method]

    # --- called from handler threads ---------------------------------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _take_failure(self) -> int | None:
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                return self.fail_next_status
        return self.fail_with

    def _store(self, name: str, data: bytes) -> Path:
        path = self.upload_dir / (name or "upload.bin")
        temp = path.with_name(f".{path.name}.part")
        temp.write_bytes(data)
        shutil.move(temp, path)
        return path
