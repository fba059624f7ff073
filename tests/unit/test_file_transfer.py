"""File transfers (HTTP(S) against TestFileServer, FTP and FTPS against pyftpdlib) and installers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargepoint.composition.charger import firmware_installer
from chargepoint.errors import ChargePointError
from chargepoint.ocpp.file_transfer import (
    CommandInstaller,
    InstallError,
    SimulatedInstaller,
    TransferError,
    download,
    redact_url,
    upload,
)
from chargepoint.ocpp.v16.firmware import NoInstaller
from simulators.csms import TestPki, make_test_pki, pki_available
from simulators.file_server import TestFileServer
from tests.integration.harness import make_config

IMAGE = bytes(range(256)) * 1000  # 256 kB: several chunks


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TestFileServer]:
    with TestFileServer(tmp_path / "served", tmp_path / "uploads") as s:
        yield s


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------------------------------------ HTTP download


async def test_http_download_streams_the_whole_file(server: TestFileServer, tmp_path: Path) -> None:
    url = server.add_file("fw-1.2.bin", IMAGE)
    dest = tmp_path / "out" / "fw.bin"
    assert await download(url, dest) == len(IMAGE)
    assert dest.read_bytes() == IMAGE
    assert leftovers(dest.parent) == []
    assert [r.method for r in server.requests] == ["GET"]


@pytest.mark.parametrize("status", [404, 500, 403])
async def test_http_error_status_is_a_transfer_error_naming_it(
    server: TestFileServer, tmp_path: Path, status: int
) -> None:
    url = server.add_file("fw.bin", IMAGE)
    server.fail_with = status
    with pytest.raises(TransferError, match=f"HTTP {status}") as caught:
        await download(url, tmp_path / "fw.bin")
    assert isinstance(caught.value, OSError) and isinstance(caught.value, ChargePointError)
    assert not (tmp_path / "fw.bin").exists()


async def test_missing_file_is_404(server: TestFileServer, tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="HTTP 404"):
        await download(f"{server.url}/nothing.bin", tmp_path / "fw.bin")


async def test_refused_connection_is_a_transfer_error(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="cannot connect"):
        await download(f"http://127.0.0.1:{closed_port()}/fw.bin", tmp_path / "fw.bin")


async def test_a_stalled_server_times_out(server: TestFileServer, tmp_path: Path) -> None:
    url = server.add_file("fw.bin", IMAGE)
    server.stall_s = 0.6
    with pytest.raises(TransferError, match=r"0\.2 s"):
        await download(url, tmp_path / "fw.bin", timeout_s=0.2)


async def test_a_truncated_download_leaves_the_old_file_untouched(server: TestFileServer, tmp_path: Path) -> None:
    url = server.add_file("fw.bin", IMAGE)
    dest = tmp_path / "fw.bin"
    dest.write_bytes(b"previous image")
    server.truncate = True
    with pytest.raises(TransferError):
        await download(url, dest)
    assert dest.read_bytes() == b"previous image"
    assert leftovers(tmp_path) == []


async def test_credentials_in_an_http_url_become_basic_auth_and_never_reach_messages(
    server: TestFileServer, tmp_path: Path
) -> None:
    server.add_file("fw.bin", IMAGE)
    url = f"http://cp:s3cret@127.0.0.1:{server.port}/fw.bin"
    await download(url, tmp_path / "fw.bin")
    assert server.requests[0].headers["Authorization"] == "Basic Y3A6czNjcmV0"
    server.fail_with = 500
    with pytest.raises(TransferError) as caught:
        await download(url, tmp_path / "fw.bin")
    assert "s3cret" not in str(caught.value) and "cp:***@" in str(caught.value)


def test_redact_url() -> None:
    assert redact_url("ftp://user:pw@host:2121/dir/") == "ftp://user:***@host:2121/dir/"
    assert redact_url("https://host/x") == "https://host/x"


async def test_unsupported_scheme_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TransferError, match="unsupported scheme"):
        await download("sftp://host/fw.bin", tmp_path / "fw.bin")
    source = tmp_path / "d.tar.gz"
    source.write_bytes(b"x")
    with pytest.raises(TransferError, match="unsupported scheme"):
        await upload("file:///tmp/x", source)


async def test_cancelling_a_download_stops_it_and_leaves_nothing_behind(
    server: TestFileServer, tmp_path: Path
) -> None:
    url = server.add_file("fw.bin", IMAGE)
    server.stall_s = 0.3
    task = asyncio.create_task(download(url, tmp_path / "fw.bin"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not (tmp_path / "fw.bin").exists()
    assert leftovers(tmp_path) == []


async def test_cancelling_a_download_stuck_on_a_silent_server_does_not_wait_for_it(
    server: TestFileServer, tmp_path: Path
) -> None:
    url = server.add_file("fw.bin", IMAGE)
    server.stall_s = 3
    task = asyncio.create_task(download(url, tmp_path / "fw.bin"))
    await asyncio.sleep(0.05)
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - started < 2


# ------------------------------------------------------------------------------------------------ HTTP upload


async def test_put_to_a_directory_url_appends_the_file_name(server: TestFileServer, tmp_path: Path) -> None:
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(IMAGE)
    await upload(f"{server.url}/incoming/", source)
    [request] = server.requests
    assert (request.method, request.path, request.status) == ("PUT", "/incoming/diag.tar.gz", 201)
    assert (server.upload_dir / "diag.tar.gz").read_bytes() == IMAGE


async def test_put_to_a_file_url_uses_that_name(server: TestFileServer, tmp_path: Path) -> None:
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(b"abc")
    await upload(f"{server.url}/cp1-latest.tgz", source)
    assert (server.upload_dir / "cp1-latest.tgz").read_bytes() == b"abc"


async def test_405_to_put_falls_back_to_a_multipart_post(server: TestFileServer, tmp_path: Path) -> None:
    server.allow_put = False
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(IMAGE)
    await upload(f"{server.url}/upload", source)
    assert [(r.method, r.status) for r in server.requests] == [("PUT", 405), ("POST", 201)]
    assert server.requests[1].headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert (server.upload_dir / "diag.tar.gz").read_bytes() == IMAGE


async def test_upload_failures(server: TestFileServer, tmp_path: Path) -> None:
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(b"abc")
    server.fail_with = 503
    with pytest.raises(TransferError, match=r"PUT .* HTTP 503"):
        await upload(f"{server.url}/", source)
    with pytest.raises(TransferError, match="no such file"):
        await upload(f"{server.url}/", tmp_path / "missing.tar.gz")
    with pytest.raises(TransferError, match="cannot connect"):
        await upload(f"http://127.0.0.1:{closed_port()}/", source)
    assert server.uploaded() == []


# ------------------------------------------------------------------------------------------------ FTP


@contextlib.contextmanager
def ftp_server(tmp_path: Path, tls: tuple[Path, Path] | None = None) -> Iterator[tuple[str, Path]]:
    """pyftpdlib on loopback with user cp / s3cret rooted at a temporary directory: (base URL, root).
    ``tls`` (certificate, key): FTPS, TLS required on the control and the data connection."""
    with warnings.catch_warnings():  # pyftpdlib still imports asyncore/asynchat on Python 3.11
        warnings.simplefilter("ignore", DeprecationWarning)
        pytest.importorskip("pyftpdlib", reason="pyftpdlib (test extra) provides the FTP server")
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler, TLS_FTPHandler
        from pyftpdlib.servers import FTPServer

    root = tmp_path / "ftp-root"
    (root / "incoming").mkdir(parents=True)
    authorizer = DummyAuthorizer()
    authorizer.add_user("cp", "s3cret", str(root), perm="elradfmwMT")
    attributes: dict[str, object] = {"authorizer": authorizer, "auth_failed_timeout": 0}
    if tls is not None:
        attributes |= {"certfile": str(tls[0]), "keyfile": str(tls[1]), "tls_control_required": True,
                       "tls_data_required": True}
    handler = type("Handler", (TLS_FTPHandler if tls is not None else FTPHandler,), attributes)
    server = FTPServer(("127.0.0.1", 0), handler)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"{'ftps' if tls is not None else 'ftp'}://cp:s3cret@127.0.0.1:{server.address[1]}", root
    finally:
        stop.set()
        thread.join(5)


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    with ftp_server(tmp_path) as served:
        yield served


async def test_ftp_download(ftp: tuple[str, Path], tmp_path: Path) -> None:
    base, root = ftp
    (root / "fw.bin").write_bytes(IMAGE)
    assert await download(f"{base}/fw.bin", tmp_path / "fw.bin") == len(IMAGE)
    assert (tmp_path / "fw.bin").read_bytes() == IMAGE


async def test_ftp_upload_to_a_directory_and_to_a_file_name(ftp: tuple[str, Path], tmp_path: Path) -> None:
    base, root = ftp
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(IMAGE)
    await upload(f"{base}/incoming/", source)
    assert (root / "incoming" / "diag.tar.gz").read_bytes() == IMAGE
    await upload(f"{base}/incoming/renamed.tgz", source)
    assert (root / "incoming" / "renamed.tgz").read_bytes() == IMAGE


async def test_ftp_failures_are_transfer_errors_without_the_password(
    ftp: tuple[str, Path], tmp_path: Path
) -> None:
    base, _root = ftp
    with pytest.raises(TransferError, match="server said 550") as caught:
        await download(f"{base}/missing.bin", tmp_path / "fw.bin")
    assert "s3cret" not in str(caught.value)
    with pytest.raises(TransferError, match="server said 530"):
        await download(base.replace("s3cret", "wrong") + "/fw.bin", tmp_path / "fw.bin")
    with pytest.raises(TransferError, match="cannot connect"):
        await download(f"ftp://127.0.0.1:{closed_port()}/fw.bin", tmp_path / "fw.bin")
    assert not (tmp_path / "fw.bin").exists()
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------------------------------------ TLS


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    if not pki_available():
        pytest.skip("needs the openssl command")
    return make_test_pki(tmp_path_factory.mktemp("pki"), "CP-1")


def trusting(pki: TestPki) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.load_verify_locations(cafile=str(pki.ca_cert))
    return context


async def test_ftps_upload_encrypts_and_verifies_the_server(tmp_path: Path, pki: TestPki) -> None:
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(IMAGE)
    with ftp_server(tmp_path, tls=(pki.server_cert, pki.server_key)) as (base, root):
        await upload(f"{base}/incoming/", source, tls=trusting(pki))
        assert (root / "incoming" / "diag.tar.gz").read_bytes() == IMAGE
        with pytest.raises(TransferError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed") as caught:
            await upload(f"{base}/incoming/again.tgz", source)  # the system store does not know the test CA
        assert "s3cret" not in str(caught.value)
        assert not (root / "incoming" / "again.tgz").exists()


async def test_https_upload_verifies_the_server(tmp_path: Path, pki: TestPki) -> None:
    source = tmp_path / "diag.tar.gz"
    source.write_bytes(IMAGE)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    with TestFileServer(tmp_path / "s", tmp_path / "u", ssl_context=context) as tls_server:
        await upload(f"{tls_server.url}/", source, tls=trusting(pki))
        assert [p.name for p in tls_server.uploaded()] == ["diag.tar.gz"]
        with pytest.raises(TransferError):
            await upload(f"{tls_server.url}/", source)


# ------------------------------------------------------------------------------------------------ installers


async def test_simulated_installer_records_images_or_fails(tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(b"fw")
    installer = SimulatedInstaller(delay_s=0)
    await installer.install(image)
    assert installer.installed == [image] and len(installer.installed_sha256[0]) == 64
    failing = SimulatedInstaller(fail=True, delay_s=0)
    with pytest.raises(InstallError):
        await failing.install(image)
    assert failing.installed == [] and failing.attempts == 1


async def test_command_installer_appends_the_image_path(tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(b"fw")
    script = "import pathlib, sys; pathlib.Path(sys.argv[2]).with_suffix('.done').write_text(sys.argv[1])"
    await CommandInstaller([sys.executable, "-c", script, "--flag"]).install(image)
    assert (tmp_path / "fw.done").read_text() == "--flag"


async def test_command_installer_failures_carry_the_stderr_tail(tmp_path: Path) -> None:
    image = tmp_path / "fw.bin"
    image.write_bytes(b"fw")
    failing = [sys.executable, "-c", "import sys; print('x' * 5000, file=sys.stderr); "
               "print('bad signature', file=sys.stderr); sys.exit(3)"]
    with pytest.raises(InstallError, match=r"status 3: …x+\nbad signature") as caught:
        await CommandInstaller(failing).install(image)
    assert len(str(caught.value)) < 1000
    with pytest.raises(InstallError, match="cannot run"):
        await CommandInstaller([str(tmp_path / "no-such-tool")]).install(image)
    slow = CommandInstaller([sys.executable, "-c", "import time; time.sleep(10)"], timeout_s=0.3)
    with pytest.raises(InstallError, match=r"did not finish within 0\.3 s"):
        await slow.install(image)


@pytest.mark.parametrize(("backend", "command", "expected"), [
    ("sim", None, SimulatedInstaller),
    ("rpi", None, NoInstaller),
    ("rpi", ["rauc", "install"], CommandInstaller),
])
def test_the_installer_follows_the_hardware_backend_and_the_config(
    tmp_path: Path, backend: str, command: list[str] | None, expected: type
) -> None:
    ocpp: dict[str, object] = {"csms_url": "ws://127.0.0.1:9/ocpp", "charge_point_id": "CP-1"}
    if command is not None:
        ocpp["firmware_install_command"] = command
    installer = firmware_installer(make_config(tmp_path, hardware={"backend": backend}, ocpp=ocpp,
                                              charger={"tethered_cable": True}))
    assert type(installer) is expected
    if isinstance(installer, CommandInstaller):
        assert installer.command == command


async def test_without_an_installer_every_install_fails_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(InstallError, match="no firmware installer is configured"):
        await NoInstaller().install(tmp_path / "fw.bin")
    assert "firmware_install_command" in caplog.text
