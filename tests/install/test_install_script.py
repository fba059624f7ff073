"""install.sh, run for real: into a Debian 12 (bookworm) root file system made by debootstrap, as a technician
runs it on a fresh Pi, as far as that goes without a Pi.

The root file system (minbase with python3, python3-venv and systemd, about 45 s to make) and a wheelhouse of the
project's dependencies for its Python are made once and kept outside the repository (CHARGEPOINT_TEST_CACHE,
default /var/cache/chargepoint-tests); each test works on a copy. pip in the copies takes the wheelhouse only
(PIP_NO_INDEX), so an install takes seconds and needs no network; making the wheelhouse the first time needs PyPI.
apt-get in the copies is a stub that records its calls. Everything that needs root, debootstrap or the network skips
saying so where it is missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import ssl
import stat
import subprocess
import tarfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "install.sh"
CACHE = Path(os.environ.get("CHARGEPOINT_TEST_CACHE", "/var/cache/chargepoint-tests"))
MIRROR = os.environ.get("CHARGEPOINT_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BASE_PACKAGES = "python3,python3-venv,systemd"
RECIPE = "1"  # change to make the cached root file system again
WHEELS_IN_ROOT = "/var/cache/chargepoint-wheels"
APT_LOG = "/var/log/apt-stub.log"
# What a release holds (install.sh's --from DIR): the package sources and the files installed beside them.
RELEASE_FILES = ("pyproject.toml", "README.md", "install.sh", "chargepoint", "hal", "simulators", "config", "docs",
                 "systemd", "packaging")
DEVICE_GROUPS = ("gpio", "spi", "dialout", "plugdev")

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def _tool(name: str) -> str | None:
    """A system tool, also where the PATH lacks the sbin directories."""
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/local/sbin:/usr/sbin:/sbin")
needs_root = pytest.mark.skipif(not IS_ROOT, reason="install.sh and chroot need root (CI runs the tests as root)")


# --------------------------------------------------------------------------------------------- helpers

def _run(args: list[str], *, timeout_s: float = 600, env: dict[str, str] | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=cwd)


def _clean_env() -> dict[str, str]:
    """What a technician's sudo leaves, plus pip pointed at the wheelhouse inside the root."""
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": WHEELS_IN_ROOT,
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }


def install_sh(*args: str, root: Path | None = None, script: Path = SCRIPT, chroot: Path | None = None
               ) -> subprocess.CompletedProcess[str]:
    """Run install.sh from this machine (``root``: with --root), or inside ``chroot`` as the system's own."""
    if chroot is not None:
        command = ["chroot", str(chroot), "/bin/bash", str(script), *args]
    else:
        command = ["/bin/bash", str(script), *args, *(["--root", str(root)] if root is not None else [])]
    return _run(command, env=_clean_env())


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


def _copy_tree(source: Path, dest: Path) -> None:
    result = _run(["cp", "-a", "--reflink=auto", str(source), str(dest)])
    assert result.returncode == 0, result.stderr


def _light_copy(source: Path, dest: Path) -> None:
    """A copy made of hard links, for a run that stops early: only /etc, which the shadow tools rewrite in place
    (their backup files), is copied for real, so that the cached root stays as it is."""
    result = _run(["cp", "-al", str(source), str(dest)])
    assert result.returncode == 0, result.stderr
    shutil.rmtree(dest / "etc")
    _copy_tree(source / "etc", dest / "etc")


def _passwd(root: Path, name: str) -> list[str] | None:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None


def _group(root: Path, name: str) -> list[str] | None:
    for line in (root / "etc/group").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return fields
    return None


def _snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path of the root file system with its type, mode, owner, size, time and link target; /var/tmp itself
    (where install.sh stages the source, and removes it) is left out, what is in it is not."""
    entries: dict[str, tuple[object, ...]] = {}
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory, name)
            if path == root / "var/tmp":
                continue
            info = path.lstat()
            target = os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
            size = info.st_size if stat.S_ISREG(info.st_mode) else 0
            entries[str(path.relative_to(root))] = (info.st_mode, info.st_uid, info.st_gid, size, info.st_mtime_ns,
                                                    target)
    return entries


def _apt_calls(root: Path) -> list[str]:
    log = root / APT_LOG.lstrip("/")
    return log.read_text().splitlines() if log.exists() else []


# -------------------------------------------------------------------------------------------- fixtures

@dataclass(frozen=True)
class Base:
    root: Path
    wheels: Path


def _locked_build(target: Path, build: Callable[[Path], None]) -> None:
    """Make ``target`` once, also when two test runs start together: build under a lock, then rename."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return
        partial = target.with_name(target.name + ".partial")
        if partial.exists():
            shutil.rmtree(partial)
        build(partial)
        partial.rename(target)


def _debootstrap(dest: Path) -> None:
    log = CACHE / "debootstrap.log"
    (CACHE / "debs").mkdir(exist_ok=True)
    debootstrap = _tool("debootstrap")
    assert debootstrap is not None
    result = _run([debootstrap, "--variant=minbase", f"--include={BASE_PACKAGES}",
                   f"--cache-dir={CACHE / 'debs'}", "bookworm", str(dest), MIRROR], timeout_s=900)
    log.write_text(result.stdout + result.stderr)
    if result.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-5:])
        pytest.skip(f"debootstrap could not make a Debian 12 root file system from {MIRROR} (see {log}): {tail}")


def _ca_bundle() -> Path | None:
    candidates = (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), ssl.get_default_verify_paths().cafile,
                  "/etc/ssl/certs/ca-certificates.crt")
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _requirements() -> list[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return [*project["build-system"]["requires"], *project["project"]["dependencies"]]


def _download_wheels(base_root: Path, dest: Path) -> None:
    """pip download in the root's own Python (so the wheels fit it), in a throwaway copy of the root."""
    scratch = CACHE / "wheel-scratch"
    shutil.rmtree(scratch, ignore_errors=True)
    _copy_tree(base_root, scratch)
    try:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
        for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
            if proxy in os.environ:
                env[proxy] = os.environ[proxy]
        bundle = _ca_bundle()
        if bundle is not None:  # this machine's trust store, proxies' CAs included
            shutil.copy(bundle, scratch / "etc/ssl/ca-bundle-of-the-host.crt")
            env["PIP_CERT"] = "/etc/ssl/ca-bundle-of-the-host.crt"
        made = _run(["chroot", str(scratch), "python3", "-m", "venv", "/tmp/pip-venv"], env=env)
        assert made.returncode == 0, made.stderr
        got = _run(["chroot", str(scratch), "/tmp/pip-venv/bin/pip", "download", "--disable-pip-version-check",
                    "--only-binary", ":all:", "--dest", "/tmp/wheels", *_requirements()], env=env, timeout_s=600)
        if got.returncode != 0:
            tail = "\n".join((got.stdout + got.stderr).splitlines()[-3:])
            pytest.skip(f"pip could not download the dependencies' wheels from PyPI: {tail}")
        shutil.move(scratch / "tmp/wheels", dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@pytest.fixture(scope="session")
def base() -> Base:
    if not IS_ROOT:
        pytest.skip("debootstrap, chroot and install.sh need root (CI runs the tests as root)")
    for tool in ("debootstrap", "chroot", "systemctl"):
        if _tool(tool) is None:
            pytest.skip(f"{tool} is not installed (.ci/run installs debootstrap: apt-get install debootstrap)")
    key = hashlib.sha256(f"{RECIPE} {BASE_PACKAGES} {MIRROR}".encode()).hexdigest()[:12]
    root = CACHE / f"bookworm-{key}"
    _locked_build(root, _debootstrap)
    wheels_key = hashlib.sha256("\n".join(_requirements()).encode()).hexdigest()[:12]
    wheels = CACHE / f"wheels-{wheels_key}"
    _locked_build(wheels, lambda dest: _download_wheels(root, dest))
    return Base(root, wheels)


def make_root(base: Base, dest: Path) -> Path:
    """A copy of the Debian root with the wheelhouse and an apt-get that only records what it was asked."""
    _copy_tree(base.root, dest)
    shutil.copytree(base.wheels, dest / WHEELS_IN_ROOT.lstrip("/"))
    _apt_stub(dest)
    return dest


def _apt_stub(root: Path) -> None:
    """An apt-get ahead of the real one in PATH that records its arguments and succeeds."""
    stub = root / "usr/local/sbin/apt-get"
    stub.parent.mkdir(parents=True, exist_ok=True)
    stub.write_text(f'#!/bin/sh\necho "$*" >>{APT_LOG}\nexit 0\n')
    stub.chmod(0o755)


def copy_release(dest: Path, version: str | None = None) -> Path:
    """A snapshot of this checkout as a release directory (others may edit the working tree meanwhile)."""
    dest.mkdir(parents=True)
    for name in RELEASE_FILES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, dest / name)
    if version is not None:
        pyproject = dest / "pyproject.toml"
        text = pyproject.read_text()
        lines = [f'version = "{version}"' if line.startswith("version = ") else line for line in text.splitlines()]
        pyproject.write_text("\n".join(lines) + "\n")
    return dest


@dataclass(frozen=True)
class Installed:
    root: Path
    release: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def installed(base: Base, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    work = tmp_path_factory.mktemp("installed")
    root = make_root(base, work / "root")
    release = copy_release(work / "release")
    result = install_sh("--from", str(release), root=root)
    assert result.returncode == 0, _output(result)
    try:
        yield Installed(root, release, result)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def installed_copy(installed: Installed, tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "root"
    _copy_tree(installed.root, root)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


# -------------------------------------------------------------------------------------- without a root

def test_help_works_without_root_and_names_every_option() -> None:
    result = _run(["/bin/bash", str(SCRIPT), "--help"])
    assert result.returncode == 0, _output(result)
    for option in ("--upgrade", "--uninstall", "--purge", "--root", "--from", "--extras", "--no-enable",
                   "--no-restart"):
        assert option in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--purge"], "--purge goes with --uninstall"),
    (["--upgrade", "--uninstall"], "exclude each other"),
    (["--bogus"], "unknown argument: --bogus"),
    (["--root"], "--root needs a directory"),
    (["--uninstall", "--from", "/tmp"], "--uninstall takes no --from"),
])
def test_a_wrong_command_line_exits_2_saying_why(args: list[str], message: str) -> None:
    result = _run(["/bin/bash", str(SCRIPT), *args])
    assert result.returncode == 2, _output(result)
    assert message in result.stderr


def test_it_refuses_to_run_without_root() -> None:
    command = ["/bin/bash", str(SCRIPT)]
    if IS_ROOT:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv (util-linux) is missing")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    result = _run(command)
    assert result.returncode == 1, _output(result)
    assert "run it as root: sudo" in result.stderr


@needs_root
def test_it_refuses_a_system_that_is_not_debian(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/os-release").write_text('NAME="Fedora Linux"\nID=fedora\nPRETTY_NAME="Fedora Linux 40"\n')
    result = install_sh(root=tmp_path)
    assert result.returncode == 1, _output(result)
    assert "for Raspberry Pi OS and Debian" in result.stderr and "Fedora Linux 40" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["etc"], "nothing may be written into a refused system"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed (apt-get install "
                    "shellcheck; .ci/run does)")
def test_shellcheck_finds_nothing_in_the_script() -> None:
    result = _run(["shellcheck", "--shell=bash", str(SCRIPT)])
    assert result.returncode == 0, result.stdout


# ---------------------------------------------------------------------------------- refusals in a root

@pytest.mark.slow
@needs_root
def test_it_refuses_python_older_than_3_11(base: Base, tmp_path: Path) -> None:
    root = tmp_path / "root"
    _light_copy(base.root, root)
    python = root / "usr/bin/python3"
    python.unlink()
    python.write_text("#!/bin/sh\necho 3.9.2\n")
    python.chmod(0o755)
    try:
        result = install_sh(root=root)
        assert result.returncode == 1, _output(result)
        assert "needs Python 3.11 or newer" in result.stderr and "3.9.2" in result.stderr
        assert not (root / "opt/chargepoint").exists() and _passwd(root, "chargepoint") is None
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@needs_root
def test_it_refuses_to_install_over_a_manual_installation(base: Base, tmp_path: Path) -> None:
    root = tmp_path / "root"
    _light_copy(base.root, root)
    (root / "opt/chargepoint/.venv/bin").mkdir(parents=True)  # docs/deployment.md's old recipe: a clone and a venv
    try:
        result = install_sh("--from", str(REPO), root=root)
        assert result.returncode == 1, _output(result)
        assert "a manual installation" in result.stderr and "mv /opt/chargepoint /opt/chargepoint.old" in result.stderr
        assert _passwd(root, "chargepoint") is None
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
@needs_root
def test_it_asks_apt_for_python3_venv_where_debian_left_it_out(base: Base, tmp_path: Path) -> None:
    root = tmp_path / "root"
    _light_copy(base.root, root)
    shutil.rmtree(root / "usr/lib/python3.11/ensurepip")  # as without Debian's python3.11-venv
    _apt_stub(root)  # records, installs nothing
    try:
        result = install_sh("--from", str(REPO), root=root)
        assert "python3 cannot create virtual environments here" in result.stdout, _output(result)
        assert any(call.startswith("install") and call.endswith("python3-venv") for call in _apt_calls(root))
        assert result.returncode == 1 and "python3 -m venv" in result.stderr  # the stub did not install it
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------------------ an install

@pytest.mark.slow
def test_the_firmware_runs_from_a_venv_of_the_system_python(installed: Installed) -> None:
    root = installed.root
    link = root / "opt/chargepoint/.venv"
    assert link.is_symlink() and os.readlink(link).startswith("venvs/0.1.0-")
    assert "home = /usr/bin" in (link / "pyvenv.cfg").read_text()
    result = _run(["chroot", str(root), "/opt/chargepoint/.venv/bin/chargepoint", "--help"], env=_clean_env())
    assert result.returncode == 0, _output(result)
    assert "Firmware and technician tool" in result.stdout
    assert os.readlink(root / "usr/local/bin/chargepoint") == "/opt/chargepoint/.venv/bin/chargepoint"
    # x86_64 is no Pi: no rpi extra, so nothing without a wheel and no apt-get.
    assert "extras" not in installed.result.stdout.splitlines()[0]
    assert _apt_calls(root) == []
    # What the unit's Documentation= names, the templates and the script for later runs are beside it.
    for name in ("README.md", "docs/hardware.md", "docs/install.md", "config/hardware.toml", "install.sh",
                 "update-guard.py"):
        assert (root / "opt/chargepoint" / name).is_file(), name
    # Signed releases go into venvs/ beside the running firmware: the service may add, not touch the others.
    venvs = (root / "opt/chargepoint/venvs").stat()
    group = next(line.split(":") for line in (root / "etc/group").read_text().splitlines()
                 if line.startswith("chargepoint:"))
    assert (stat.S_IMODE(venvs.st_mode), venvs.st_uid, venvs.st_gid) == (0o1775, 0, int(group[2]))


@pytest.mark.slow
def test_the_service_user_is_a_system_user_in_the_device_groups(installed: Installed) -> None:
    user = _passwd(installed.root, "chargepoint")
    assert user is not None
    assert int(user[2]) < 1000 and user[5] == "/var/lib/chargepoint" and user[6] == "/usr/sbin/nologin"
    primary = _group(installed.root, "chargepoint")
    assert primary is not None and primary[2] == user[3]
    for name in DEVICE_GROUPS:  # gpio and spi do not exist on plain Debian: install.sh made them
        group = _group(installed.root, name)
        assert group is not None and "chargepoint" in group[3].split(","), name
    state = installed.root / "var/lib/chargepoint"
    info = state.stat()
    assert stat.S_IMODE(info.st_mode) == 0o750 and str(info.st_uid) == user[2]


@pytest.mark.slow
def test_udev_rules_the_unit_and_the_nfc_blacklist_are_installed_and_the_unit_enabled(installed: Installed) -> None:
    root = installed.root
    for installed_path, source in (("etc/udev/rules.d/99-chargepoint.rules", "packaging/udev/99-chargepoint.rules"),
                                   ("etc/systemd/system/chargepoint.service", "systemd/chargepoint.service"),
                                   ("etc/modprobe.d/chargepoint-nfc.conf", "packaging/modprobe/chargepoint-nfc.conf"),
                                   ("usr/share/bash-completion/completions/chargepoint",
                                    "packaging/bash-completion/chargepoint")):
        path = root / installed_path
        assert path.read_bytes() == (installed.release / source).read_bytes(), installed_path
        assert stat.S_IMODE(path.stat().st_mode) == 0o644 and path.stat().st_uid == 0
    wants = root / "etc/systemd/system/multi-user.target.wants/chargepoint.service"
    assert os.readlink(wants) == "/etc/systemd/system/chargepoint.service"
    # Not started: the config has placeholders. No systemd runs in the target, and install.sh says so.
    assert "no systemd running here" in installed.result.stdout


@pytest.mark.slow
def test_the_config_comes_from_the_hardware_template_and_only_the_service_reads_it(installed: Installed) -> None:
    root = installed.root
    config = root / "etc/chargepoint/config.toml"
    assert config.read_bytes() == (REPO / "config/hardware.toml").read_bytes()
    group = _group(root, "chargepoint")
    assert group is not None
    info = config.stat()
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o640, 0, int(group[2]))
    directory = (root / "etc/chargepoint").stat()
    assert (stat.S_IMODE(directory.st_mode), directory.st_uid, directory.st_gid) == (0o750, 0, int(group[2]))
    out = installed.result.stdout
    assert "placeholders (CHANGE-ME): serial_number, csms_url, charge_point_id, authorization_key" in out
    assert "chargepoint config validate: the configuration is valid" in out
    assert "sudoedit /etc/chargepoint/config.toml" in out and "sudo -u chargepoint chargepoint selftest" in out


@pytest.mark.slow
def test_a_second_run_changes_nothing_and_says_so(installed: Installed) -> None:
    before = _snapshot(installed.root)
    result = install_sh("--from", str(installed.release), root=installed.root)
    assert result.returncode == 0, _output(result)
    assert "nothing changed" in result.stdout
    assert not [line for line in result.stdout.splitlines() if line.lstrip().startswith("changed:")]
    assert _snapshot(installed.root) == before


@pytest.mark.slow
def test_installing_another_version_over_it_refuses_and_points_to_upgrade(installed: Installed,
                                                                           tmp_path: Path) -> None:
    newer = copy_release(tmp_path / "newer", version="0.1.1")
    before = _snapshot(installed.root)
    result = install_sh("--from", str(newer), root=installed.root)
    assert result.returncode == 1, _output(result)
    assert "run install.sh --upgrade" in result.stderr
    assert _snapshot(installed.root) == before


# ------------------------------------------------------------------------------------ upgrade, removal

@pytest.mark.slow
def test_an_upgrade_switches_the_firmware_and_keeps_the_edited_config(installed_copy: Path) -> None:
    root = installed_copy
    copy_release(root / "root/chargepoint-0.1.1", version="0.1.1")
    built = _run(["chroot", str(root), "/opt/chargepoint/.venv/bin/python", "-m", "pip", "wheel", "--no-deps",
                  "--wheel-dir", "/root/dist", "/root/chargepoint-0.1.1"], env=_clean_env())
    assert built.returncode == 0, _output(built)
    wheel = "/root/dist/chargepoint-0.1.1-py3-none-any.whl"
    config = root / "etc/chargepoint/config.toml"
    edited = config.read_text().replace('charge_point_id = "CHANGE-ME"', 'charge_point_id = "CP-17"')
    config.write_text(edited)
    old = os.readlink(root / "opt/chargepoint/.venv")
    # As a technician may: the installed script, on the charger itself, from the new release's wheel (the unit,
    # rules and templates then come from /opt/chargepoint).
    result = install_sh("--upgrade", "--from", wheel, script=Path("/opt/chargepoint/install.sh"), chroot=root)
    assert result.returncode == 0, _output(result)
    assert config.read_text() == edited
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    new = os.readlink(root / "opt/chargepoint/.venv")
    assert new.startswith("venvs/0.1.1-") and os.readlink(root / "opt/chargepoint/.venv-previous") == old
    version = _run(["chroot", str(root), "chargepoint", "--version"], env=_clean_env())
    assert version.stdout.strip().endswith("0.1.1"), _output(version)
    assert "placeholders (CHANGE-ME): serial_number, csms_url, authorization_key" in result.stdout
    # The enablement stays as it was, and a second upgrade from the same release changes nothing.
    assert (root / "etc/systemd/system/multi-user.target.wants/chargepoint.service").is_symlink()
    again = install_sh("--upgrade", "--from", wheel, script=Path("/opt/chargepoint/install.sh"), chroot=root)
    assert again.returncode == 0 and "nothing changed" in again.stdout, _output(again)


@pytest.mark.slow
def test_uninstall_keeps_config_and_data_and_purge_removes_them(installed_copy: Path) -> None:
    root = installed_copy
    (root / "var/lib/chargepoint/chargepoint.db").write_bytes(b"sessions")
    result = install_sh("--uninstall", script=Path("/opt/chargepoint/install.sh"), chroot=root)
    assert result.returncode == 0, _output(result)
    for gone in ("opt/chargepoint", "etc/systemd/system/chargepoint.service",
                 "etc/systemd/system/multi-user.target.wants/chargepoint.service",
                 "etc/udev/rules.d/99-chargepoint.rules", "etc/modprobe.d/chargepoint-nfc.conf",
                 "usr/local/bin/chargepoint", "usr/share/bash-completion/completions/chargepoint"):
        assert not (root / gone).exists() and not (root / gone).is_symlink(), gone
    assert (root / "etc/chargepoint/config.toml").is_file()
    assert (root / "var/lib/chargepoint/chargepoint.db").read_bytes() == b"sessions"
    assert _passwd(root, "chargepoint") is not None
    assert "--uninstall --purge removes them" in result.stdout

    again = install_sh("--uninstall", root=root)
    assert again.returncode == 0 and "nothing changed" in again.stdout, _output(again)

    purged = install_sh("--uninstall", "--purge", root=root)
    assert purged.returncode == 0, _output(purged)
    assert not (root / "etc/chargepoint").exists() and not (root / "var/lib/chargepoint").exists()
    assert _passwd(root, "chargepoint") is None and _group(root, "chargepoint") is None
    for name in DEVICE_GROUPS:  # others may be in them
        assert _group(root, name) is not None


# -------------------------------------------------------------------------------------------- no wheel

def _fake_release(dest: Path, version: str) -> Path:
    """A release of a stand-in "chargepoint" whose rpi extra needs a package with no wheel (as spidev on a Pi)."""
    (dest / "chargepoint").mkdir(parents=True)
    (dest / "chargepoint/__init__.py").write_text("def main() -> None:\n    print('stand-in chargepoint')\n")
    (dest / "pyproject.toml").write_text(f"""\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "chargepoint"
version = "{version}"
requires-python = ">=3.11"

[project.optional-dependencies]
rpi = ["sourceonly>=1.0"]

[project.scripts]
chargepoint = "chargepoint:main"

[tool.setuptools.packages.find]
include = ["chargepoint*"]
""")
    for name in ("systemd/chargepoint.service", "packaging/udev/99-chargepoint.rules",
                 "packaging/modprobe/chargepoint-nfc.conf", "config/hardware.toml", "install.sh"):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, dest / name)
    return dest


def _source_only_package(wheelhouse: Path) -> None:
    """sourceonly-1.0.tar.gz: a pure-Python sdist, so that pip builds it without the compiler the stub never
    installs."""
    build = wheelhouse / "sourceonly-1.0"
    build.mkdir()
    (build / "sourceonly.py").write_text("VALUE = 42\n")
    (build / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: sourceonly\nVersion: 1.0\n")
    (build / "pyproject.toml").write_text('[build-system]\nrequires = ["setuptools>=61"]\n'
                                          'build-backend = "setuptools.build_meta"\n\n[project]\nname = "sourceonly"\n'
                                          'version = "1.0"\n\n[tool.setuptools]\npy-modules = ["sourceonly"]\n')
    with tarfile.open(wheelhouse / "sourceonly-1.0.tar.gz", "w:gz") as archive:
        archive.add(build, arcname="sourceonly-1.0")
    shutil.rmtree(build)


@pytest.mark.slow
def test_a_package_without_a_wheel_is_built_after_apt_installs_the_build_tools(base: Base, tmp_path: Path) -> None:
    root = make_root(base, tmp_path / "root")
    try:
        _source_only_package(root / WHEELS_IN_ROOT.lstrip("/"))
        release = _fake_release(tmp_path / "release", "0.0.1")
        result = install_sh("--from", str(release), "--extras", "rpi", root=root)
        assert result.returncode == 0, _output(result)
        assert "pip finds no wheel of sourceonly" in result.stdout
        assert any(call.startswith("install") and "build-essential python3-dev" in call for call in _apt_calls(root))
        imported = _run(["chroot", str(root), "/opt/chargepoint/.venv/bin/python", "-c",
                         "import sourceonly; print(sourceonly.VALUE)"], env=_clean_env())
        assert imported.stdout.strip() == "42", _output(imported)
        # The rpi extra's card reader driver needs the system's libusb, which this minimal root lacks.
        assert any("libusb-1.0-0" in call for call in _apt_calls(root))
    finally:
        shutil.rmtree(root, ignore_errors=True)
