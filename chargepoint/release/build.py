"""Build and sign a chargepoint release: ``python -m chargepoint.release.build``.

    python -m chargepoint.release.build --source . --extras rpi --key signer.key --cert signer.pem --out dist/

makes chargepoint's wheel from ``--source`` and a wheel of every dependency (``pip wheel``: it needs the package
index or ``PIP_FIND_LINKS``), writes the payload (``dist/chargepoint-<version>.payload.tar``) and the signed release
(``dist/chargepoint-<version>.release.tar``). Run it on a machine of the charger's architecture and Python (a Pi
with Raspberry Pi OS bookworm for a Pi): wheels are per platform, and a package PyPI has as source only (spidev) is
built there. ``--wheels DIR`` takes the wheels from a directory instead (a wheelhouse made before);
``--no-cert`` leaves the certificate out, for chargers that check with ``[update] public_key_file``.

The key is a PEM private key (ECDSA P-256, or RSA); the certificate is the signing certificate the manufacturer's
root issued. To make them with openssl, and the root each charger trusts (``[update] manufacturer_root_file``, or
installed by the CSMS as its ManufacturerRootCertificate): docs/install.md, "Updates and rollback".

``sign PAYLOAD`` signs an existing payload; ``verify RELEASE --root ROOT.pem | --public-key KEY.pem`` checks a
signed release as a charger would (exit 0, or 1 with the reason).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chargepoint.ocpp.file_transfer import InstallRefused
from chargepoint.release.package import (
    PrivateKey,
    Trust,
    build_payload,
    load_public_key,
    load_roots,
    open_release,
    sign_payload,
)


def load_private_key(path: Path) -> PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{path}: an EC (P-256) or RSA private key is needed, got {type(key).__name__}")
    return key


def make_wheels(source: Path, extras: str, wheel_dir: Path) -> list[Path]:
    """chargepoint's wheel from ``source`` and the wheels of all its dependencies (with ``extras``)."""
    spec = f"{source.resolve()}{f'[{extras}]' if extras else ''}"
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--wheel-dir",
                    str(wheel_dir), spec], check=True)
    return sorted(wheel_dir.glob("*.whl"))


def _build(args: argparse.Namespace) -> int:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    key = load_private_key(args.key)
    certificate = None if args.no_cert else args.cert.read_text(encoding="ascii")
    with tempfile.TemporaryDirectory() as temp:
        if args.wheels is not None:
            wheels = sorted(Path(args.wheels).glob("*.whl"))
        else:
            wheels = make_wheels(args.source, args.extras, Path(temp))
        payload = out / "payload.tar.part"
        version = build_payload(wheels, payload)
        final_payload = out / f"chargepoint-{version}.payload.tar"
        payload.replace(final_payload)
    release = out / f"chargepoint-{version}.release.tar"
    sign_payload(final_payload, key, certificate, release)
    print(f"{release}: chargepoint {version}, {len(wheels)} wheels, signed")
    print(f"{final_payload}: the payload alone (SignedUpdateFirmware: serve it and sign it, see docs/install.md)")
    return 0


def _sign(args: argparse.Namespace) -> int:
    certificate = None if args.no_cert else args.cert.read_text(encoding="ascii")
    out = args.out or args.payload.with_name(args.payload.name.replace(".payload.tar", "") + ".release.tar")
    sign_payload(args.payload, load_private_key(args.key), certificate, out)
    print(f"{out}: signed")
    return 0


def _verify(args: argparse.Namespace) -> int:
    trust = Trust(roots=[c for path in args.root for c in load_roots(path)],
                  public_keys=[load_public_key(path) for path in args.public_key])
    with tempfile.TemporaryDirectory() as temp:
        try:
            release = open_release(args.release, Path(temp), trust)
        except InstallRefused as exc:
            print(f"refused: {exc}", file=sys.stderr)
            return 1
    print(f"{args.release}: chargepoint {release.version}, signed by {release.signer}, payload SHA-256 "
          f"{release.payload_sha256}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chargepoint.release.build", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command")

    def signing(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--key", type=Path, required=True, help="PEM private key (ECDSA P-256 or RSA)")
        sub.add_argument("--cert", type=Path, help="PEM signing certificate (issued by the manufacturer's root)")
        sub.add_argument("--no-cert", action="store_true", help="leave the certificate out (public_key_file)")

    build = commands.add_parser("build", help="build and sign a release (the default)")
    build.add_argument("--source", type=Path, default=Path("."), help="chargepoint's source (default: .)")
    build.add_argument("--extras", default="", help='pip extras to include, e.g. "rpi" for a Pi')
    build.add_argument("--wheels", type=Path, help="take the wheels from this directory instead of building them")
    build.add_argument("--out", type=Path, default=Path("dist"), help="output directory (default: dist)")
    signing(build)
    sign = commands.add_parser("sign", help="sign an existing payload")
    sign.add_argument("payload", type=Path)
    sign.add_argument("--out", type=Path, help="the signed release (default: beside the payload)")
    signing(sign)
    verify = commands.add_parser("verify", help="check a signed release as a charger would")
    verify.add_argument("release", type=Path)
    verify.add_argument("--root", type=Path, action="append", default=[], help="manufacturer root (PEM)")
    verify.add_argument("--public-key", type=Path, action="append", default=[], help="public key (PEM)")
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in ("build", "sign", "verify", "-h", "--help"):
        arguments.insert(0, "build")
    args = parser.parse_args(arguments)
    if args.command in ("build", "sign") and not args.no_cert and args.cert is None:
        parser.error("--cert is needed (or --no-cert for chargers that check with a public key)")
    try:
        return {"build": _build, "sign": _sign, "verify": _verify}[args.command](args)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
