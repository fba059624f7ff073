"""Releases for the tests: a manufacturer PKI, payloads of given wheels, signed envelopes, tar surgery."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

from chargepoint.release.package import build_payload, sign_payload
from tests.e2e.test_ocpp_signed_firmware import Manufacturer, manufacturer, pem

__all__ = ["Manufacturer", "fake_wheel", "make_release", "manufacturer", "pem", "rewrite_tar"]


def fake_wheel(directory: Path, name: str = "chargepoint", version: str = "0.2.0") -> Path:
    """A file named and shaped like a wheel (the format checks never install it)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(f"{name}/__init__.py", f"__version__ = {version!r}\n")
    return path


def make_release(wheels: list[Path], maker: Manufacturer, out_dir: Path, *, with_cert: bool = True) -> Path:
    """The signed release of ``wheels`` (and its payload beside it), signed by ``maker``'s signing key."""
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = out_dir / "payload.tar"
    version = build_payload(wheels, payload)
    named = out_dir / f"chargepoint-{version}.payload.tar"
    payload.replace(named)
    release = out_dir / f"chargepoint-{version}.release.tar"
    sign_payload(named, maker.signer_key, pem(maker.signer) if with_cert else None, release)
    return release


def rewrite_tar(source: Path, target: Path, change: dict[str, bytes | None]) -> None:
    """Copy a tar archive, replacing (or with None dropping; new names are added) the members named in ``change``."""
    with tarfile.open(source, "r:") as tar, tarfile.open(target, "w", format=tarfile.PAX_FORMAT) as out:
        for member in tar.getmembers():
            if member.name in change:
                continue
            data = tar.extractfile(member)
            assert data is not None
            out.addfile(member, io.BytesIO(data.read()))
        for name, data in change.items():
            if data is not None:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                out.addfile(info, io.BytesIO(data))


def member(archive: Path, name: str) -> bytes:
    with tarfile.open(archive, "r:") as tar:
        data = tar.extractfile(name)
        assert data is not None
        return data.read()
