"""Moving files to and from the operator: firmware downloads, diagnostics uploads, and installing an image.

Nothing here knows OCPP. Transfers use the standard library (``urllib.request``, ``ftplib``) in a worker
thread, so the event loop never blocks on the network:

- ``download(url, dest)``: HTTP(S) GET or FTP RETR, streamed into a temporary file beside ``dest`` that is
  renamed over it only when complete, so ``dest`` is either absent or whole.
- ``upload(url, source)``: HTTP(S) PUT (a URL ending in ``/`` gets the file's name appended); a server that
  answers 405 to the PUT gets a multipart/form-data POST with the file in the field ``file``. FTP STOR: a
  directory URL (ending in ``/``) stores the file under its own name, a file URL under that name.

FTP URLs follow RFC 1738: ``ftp://user:password@host:port/path``, the path relative to the login directory
(``ftp://host//abs/path`` for an absolute one); no credentials means anonymous. Credentials in a URL never
reach a log line or an error message (``redact_url``).

``timeout_s`` bounds each network operation (connect, and every read or write), not the whole transfer: a
slow but moving firmware download on a mobile link must not be cut off, a stalled one must.

Every failure is a ``TransferError`` (also an ``OSError``) whose message says what was tried and why it failed.

Size: HTTP and FTP, both ways, and the installers: the transfers share the timeout,
redaction and temporary-file rules stated above.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ftplib
import hashlib
import http.client
import logging
import os
import re
import socket
import ssl
import tempfile
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit, urlunsplit

from chargepoint import __version__
from chargepoint.errors import ChargePointError

log = logging.getLogger(__name__)

CHUNK_BYTES = 64 * 1024
HTTP_SCHEMES = frozenset({"http", "https"})
FTP_SCHEMES = frozenset({"ftp", "ftps"})
SUPPORTED_SCHEMES = HTTP_SCHEMES | FTP_SCHEMES
USER_AGENT = f"chargepoint/{__version__}"
STDERR_TAIL_CHARS = 800
CANCEL_GRACE_S = 1.0


class TransferError(ChargePointError, OSError):
    """A download or upload failed (HTTP error status, connection refused or lost, timeout, bad URL)."""


class InstallError(ChargePointError, RuntimeError):
    """A firmware image could not be installed."""


class InstallRefused(InstallError):
    """The image was refused before anything was installed (unsigned, tampered, signed by someone else, a
    version it must not install). ``event`` is the security event to record, if any."""

    def __init__(self, message: str, event: str | None = "InvalidFirmwareSignature") -> None:
        super().__init__(message)
        self.event = event


class _Cancelled(Exception):
    """The awaiting task was cancelled: the worker thread stops between chunks."""


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}{port}", parts.path, parts.query, parts.fragment))


def supported(url: str) -> bool:
    """True if ``url`` has a scheme this module can transfer (http, https, ftp, ftps)."""
    return urlsplit(url).scheme.lower() in SUPPORTED_SCHEMES


def _scheme(url: str) -> str:
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        raise TransferError(f"{redact_url(url)}: unsupported scheme {scheme or '(none)'!r} "
                            f"(supported: {', '.join(sorted(SUPPORTED_SCHEMES))})")
    return scheme


async def _in_thread(work: Callable[[threading.Event], Any]) -> Any:
    """Run ``work(cancelled)`` in a daemon thread and return its result.

    If the caller is cancelled, the thread is told to stop (it checks between chunks and removes its temporary
    file) and given ``CANCEL_GRACE_S`` to do so; one stuck in a blocking connect or read is left to end at its
    socket timeout, so neither a shutdown nor the interpreter's exit waits for a stalled server."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[Any] = loop.create_future()
    finished = asyncio.Event()
    cancelled = threading.Event()

    def settle(value: Any, error: BaseException | None) -> None:
        finished.set()
        if result.done():
            return
        if error is not None:
            result.set_exception(error)
        else:
            result.set_result(value)

    def run() -> None:
        value: Any = None
        error: BaseException | None = None
        try:
            value = work(cancelled)
        except BaseException as exc:  # handed over to the awaiting task, which raises it
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting any more
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=run, name="file-transfer", daemon=True).start()
    try:
        return await result
    except asyncio.CancelledError:
        cancelled.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_GRACE_S):
                await finished.wait()
        raise


# ------------------------------------------------------------------------------------------------ download


async def download(url: str, dest: Path, *, timeout_s: float = 60) -> int:
    """Fetch ``url`` (http, https, ftp) into ``dest`` atomically; returns the number of bytes written."""
    scheme = _scheme(url)
    dest = Path(dest)
    if scheme in HTTP_SCHEMES:
        return int(await _in_thread(lambda cancelled: _download_http(url, dest, timeout_s, cancelled)))
    return int(await _in_thread(lambda cancelled: _download_ftp(url, dest, timeout_s, cancelled)))


def _http_request(url: str, method: str, data: Any = None, headers: dict[str, str] | None = None) -> (
        urllib.request.Request):
    """A request for ``url`` with credentials in the URL moved into a Basic Authorization header."""
    parts = urlsplit(url)
    all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        all_headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")
        host = parts.hostname or ""
        netloc = (f"[{host}]" if ":" in host else host) + (f":{parts.port}" if parts.port is not None else "")
        url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return urllib.request.Request(url, data=data, headers=all_headers, method=method)


def _describe_http_failure(what: str, url: str, exc: BaseException, timeout_s: float) -> TransferError:
    if isinstance(exc, urllib.error.HTTPError):
        return TransferError(f"{what} {redact_url(url)}: HTTP {exc.code} {exc.reason}")
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, TimeoutError | socket.timeout):
            return TransferError(f"{what} {redact_url(url)}: no answer within {timeout_s:g} s")
        return TransferError(f"{what} {redact_url(url)}: cannot connect ({reason})")
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransferError(f"{what} {redact_url(url)}: stalled for {timeout_s:g} s")
    return TransferError(f"{what} {redact_url(url)}: {str(exc) or type(exc).__name__}")


def _download_http(url: str, dest: Path, timeout_s: float, cancelled: threading.Event) -> int:
    request = _http_request(url, "GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            expected = response.headers.get("Content-Length")

            def chunks() -> Iterator[bytes]:
                while chunk := response.read(CHUNK_BYTES):
                    yield chunk

            def complete(written: int) -> None:
                if expected is not None and expected.isdigit() and int(expected) != written:
                    raise TransferError(f"GET {redact_url(url)}: got {written} of {expected} bytes")

            return _write_atomically(dest, chunks(), cancelled, complete)
    except (_Cancelled, TransferError):
        raise
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise _describe_http_failure("GET", url, exc, timeout_s) from exc


def _write_atomically(dest: Path, chunks: Iterable[bytes], cancelled: threading.Event,
                      complete: Callable[[int], None]) -> int:
    """Write ``chunks`` to a temporary file beside ``dest``, fsync it and, once ``complete(bytes written)``
    has not objected, rename it over ``dest``."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    temp = Path(temp_name)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            for chunk in chunks:
                if cancelled.is_set():
                    raise _Cancelled
                out.write(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        complete(written)
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return written


class _FtpTarget:
    """The parts of an ftp:// or ftps:// URL: where to connect, who to log in as, and the path (relative to login)."""

    def __init__(self, url: str, tls: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        # ftps: explicit TLS (AUTH TLS on the control port, then PROT P: the data is encrypted too).
        self.tls = (tls or ssl.create_default_context()) if parts.scheme.lower() == "ftps" else None
        if not parts.hostname:
            raise TransferError(f"{redact_url(url)}: no host")
        self.host = parts.hostname
        try:
            self.port = parts.port or 21
        except ValueError as exc:
            raise TransferError(f"{redact_url(url)}: bad port") from exc
        self.user = unquote(parts.username) if parts.username else "anonymous"
        self.password = unquote(parts.password) if parts.password else ("" if parts.username else "anonymous@")
        path = unquote(parts.path)
        self.path = path[1:] if path.startswith("/") else path  # RFC 1738: relative to the login directory

    def connect(self, timeout_s: float) -> ftplib.FTP:
        ftp = ftplib.FTP(timeout=timeout_s) if self.tls is None else ftplib.FTP_TLS(context=self.tls,
                                                                                     timeout=timeout_s)
        try:
            ftp.connect(self.host, self.port)
            ftp.login(self.user, self.password)  # FTP_TLS: AUTH TLS first, so the password is encrypted
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(True)
        except BaseException:
            ftp.close()
            raise
        return ftp


def _ftp_failure(what: str, url: str, exc: BaseException, timeout_s: float) -> TransferError:
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransferError(f"{what} {redact_url(url)}: no answer within {timeout_s:g} s")
    if isinstance(exc, ftplib.error_perm | ftplib.error_temp | ftplib.error_reply | ftplib.error_proto):
        return TransferError(f"{what} {redact_url(url)}: server said {str(exc).strip()}")
    if isinstance(exc, ConnectionError | OSError):
        return TransferError(f"{what} {redact_url(url)}: cannot connect or connection lost ({exc})")
    return TransferError(f"{what} {redact_url(url)}: {str(exc) or type(exc).__name__}")


def _download_ftp(url: str, dest: Path, timeout_s: float, cancelled: threading.Event) -> int:
    target = _FtpTarget(url)
    if not target.path or target.path.endswith("/"):
        raise TransferError(f"RETR {redact_url(url)}: the URL names a directory, not a file")
    try:
        with target.connect(timeout_s) as ftp:
            ftp.voidcmd("TYPE I")
            data = ftp.transfercmd(f"RETR {target.path}")

            def chunks() -> Iterator[bytes]:
                with data:
                    while chunk := data.recv(CHUNK_BYTES):
                        yield chunk
                    if isinstance(data, ssl.SSLSocket):
                        data.unwrap()

            def complete(_written: int) -> None:
                ftp.voidresp()  # 226 only if the server sent the whole file

            return _write_atomically(dest, chunks(), cancelled, complete)
    except (_Cancelled, TransferError):
        raise
    except (ftplib.Error, OSError, EOFError) as exc:
        raise _ftp_failure("RETR", url, exc, timeout_s) from exc


# ------------------------------------------------------------------------------------------------ upload


async def upload(url: str, source: Path, *, timeout_s: float = 60, tls: ssl.SSLContext | None = None) -> None:
    """Send ``source`` to ``url`` (http, https: PUT, or POST on 405; ftp, ftps: STOR). ``tls`` verifies an https
    or ftps server (default: the system's CA store)."""
    scheme = _scheme(url)
    source = Path(source)
    if not source.is_file():
        raise TransferError(f"upload of {source}: no such file")
    if scheme in HTTP_SCHEMES:
        await _in_thread(lambda cancelled: _upload_http(url, source, timeout_s, cancelled, tls))
    else:
        await _in_thread(lambda cancelled: _upload_ftp(url, source, timeout_s, cancelled, tls))


def _file_chunks(source: Path, cancelled: threading.Event) -> Iterator[bytes]:
    with source.open("rb") as data:
        while chunk := data.read(CHUNK_BYTES):
            if cancelled.is_set():
                raise _Cancelled
            yield chunk


def _upload_http(url: str, source: Path, timeout_s: float, cancelled: threading.Event,
                 tls: ssl.SSLContext | None = None) -> None:
    put_url = url + source.name if urlsplit(url).path.endswith("/") else url
    size = source.stat().st_size
    put = _http_request(put_url, "PUT", _file_chunks(source, cancelled),
                        {"Content-Type": "application/octet-stream", "Content-Length": str(size)})
    try:
        with urllib.request.urlopen(put, timeout=timeout_s, context=tls) as response:
            response.read()
        return
    except urllib.error.HTTPError as exc:
        if exc.code != 405:
            raise _describe_http_failure("PUT", put_url, exc, timeout_s) from exc
        log.info("%s does not take PUT (405): uploading with POST", redact_url(put_url))
    except (_Cancelled, TransferError):
        raise
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise _describe_http_failure("PUT", put_url, exc, timeout_s) from exc
    boundary = uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="file"; filename="{_quote_filename(source.name)}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body() -> Iterator[bytes]:
        yield head
        yield from _file_chunks(source, cancelled)
        yield tail

    post = _http_request(url, "POST", body(), {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                               "Content-Length": str(len(head) + size + len(tail))})
    try:
        with urllib.request.urlopen(post, timeout=timeout_s, context=tls) as response:
            response.read()
    except (_Cancelled, TransferError):
        raise
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise _describe_http_failure("POST", url, exc, timeout_s) from exc


def _quote_filename(name: str) -> str:
    return re.sub(r'["\\\r\n]', "_", name)


def _upload_ftp(url: str, source: Path, timeout_s: float, cancelled: threading.Event,
                tls: ssl.SSLContext | None = None) -> None:
    target = _FtpTarget(url, tls)
    path = target.path + source.name if (not target.path or target.path.endswith("/")) else target.path
    try:
        with target.connect(timeout_s) as ftp:
            ftp.voidcmd("TYPE I")
            with ftp.transfercmd(f"STOR {path}") as data:
                for chunk in _file_chunks(source, cancelled):
                    data.sendall(chunk)
                if isinstance(data, ssl.SSLSocket):
                    data.unwrap()  # FTPS: a TLS close, or the server takes the upload for cut short
            ftp.voidresp()
    except (_Cancelled, TransferError):
        raise
    except (ftplib.Error, OSError, EOFError) as exc:
        raise _ftp_failure("STOR", url, exc, timeout_s) from exc


# ------------------------------------------------------------------------------------------------ installers


class FirmwareInstaller(Protocol):
    """Installs a downloaded firmware image. The caller reboots afterwards; ``install`` only installs.

    Contract: returns once the image is installed and will run after the reboot, raises ``InstallError``
    (with a message fit for the log) when it is not, and leaves the running firmware usable either way.
    """

    async def install(self, image: Path) -> None: ...


@dataclass(frozen=True, slots=True)
class InstallOutcome:
    """How an installation that restarted the firmware ended: ``installed``, or not and why (``detail``)."""

    installed: bool
    detail: str


@runtime_checkable
class TrialInstaller(Protocol):
    """An installer that checks signatures itself and finishes only after a restart: the new firmware runs on trial
    and is kept once it proves healthy, or the previous one comes back (``chargepoint.release``).

    ``install(image)`` takes a signed release; ``install(image, verified=True)`` the bare payload whose signature
    the caller has checked (SignedUpdateFirmware). Either returns once the new firmware waits for the restart, or
    raises ``InstallError`` (``InstallRefused`` before anything was installed). ``outcome()``, after the restart,
    waits while the new firmware is on trial and says how it ended; None when no installation is on record.
    """

    async def install(self, image: Path, *, verified: bool = False) -> None: ...

    async def outcome(self) -> InstallOutcome | None: ...


class SimulatedInstaller:
    """Pretends to install: waits ``delay_s`` and records each image (path and SHA-256), or fails if ``fail`` (or
    ``failing()``: the simulators' "install-failure" fault) says so. Used by the sim hardware backend and by tests."""

    def __init__(self, fail: bool = False, delay_s: float = 0.1, failing: Callable[[], bool] | None = None) -> None:
        self.fail = fail
        self.failing = failing
        self.delay_s = delay_s
        self.installed: list[Path] = []
        self.installed_sha256: list[str] = []
        self.attempts = 0

    async def install(self, image: Path) -> None:
        self.attempts += 1
        await asyncio.sleep(self.delay_s)
        if self.fail or (self.failing is not None and self.failing()):
            raise InstallError(f"simulated installation failure for {image.name}")
        digest = await asyncio.to_thread(sha256_file, image)
        self.installed.append(image)
        self.installed_sha256.append(digest)
        log.info("simulated install of %s (sha256 %s)", image.name, digest)


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in chunks (a firmware image never sits in memory whole)."""
    h = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(CHUNK_BYTES):
            h.update(chunk)
    return h.hexdigest()


class CommandInstaller:
    """Runs ``command + [image path]`` (e.g. a distribution's update tool) and waits for it.

    A non-zero exit, a missing program or running longer than ``timeout_s`` is an ``InstallError`` that
    carries the tail of the command's stderr. Cancelling the install kills the command.

    It trusts the image as downloaded: for a tool that checks signatures itself (RAUC, SWUpdate). chargepoint's own
    releases (signed, installed beside the running firmware, tried and rolled back) are ``[update]``'s
    ``chargepoint.release.installer.ReleaseInstaller``.
    """

    def __init__(self, command: list[str], timeout_s: float = 1800) -> None:
        if not command:
            raise ValueError("the install command must not be empty")
        self.command = list(command)
        self.timeout_s = timeout_s

    async def install(self, image: Path) -> None:
        argv = [*self.command, str(image)]
        try:
            process = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise InstallError(f"cannot run {argv[0]}: {exc}") from exc
        try:
            async with asyncio.timeout(self.timeout_s):
                stdout, stderr = await process.communicate()
        except BaseException as exc:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            if isinstance(exc, TimeoutError):
                raise InstallError(f"{argv[0]} did not finish within {self.timeout_s:g} s") from exc
            raise
        if stdout:
            log.info("%s: %s", argv[0], _tail(stdout))
        if process.returncode != 0:
            raise InstallError(f"{argv[0]} exited with status {process.returncode}: {_tail(stderr) or '(no stderr)'}")


def _tail(output: bytes) -> str:
    text = output.decode(errors="replace").strip()
    return text if len(text) <= STDERR_TAIL_CHARS else "…" + text[-STDERR_TAIL_CHARS:]

