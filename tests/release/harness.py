"""Real releases and a stand-in for systemd, for the update cycle tests.

- ``copy_source`` / ``build_wheel``: chargepoint's wheel from a copy of this repository with another version (and,
  for the release that cannot start, a start that fails at import).
- ``dependencies_dir``: the test venv's installed distributions minus chargepoint, linked into a new venv by the
  installer's test seam (``CHARGEPOINT_RELEASE_TEST_DEPENDENCIES``), so a test release carries chargepoint only.
- ``make_install_root``: what install.sh leaves: ``venvs/0.1.0-test`` with chargepoint 0.1.0 and ``.venv`` pointing
  at it, plus the update guard copied out of the package (``update-guard.py``, run by the system python).
- ``Service``: plays the unit: the guard (ExecStartPre), then the daemon through the ``.venv`` link (ExecStart),
  started again whenever it exits (Restart=always), until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from collections.abc import AsyncIterator
from pathlib import Path

from chargepoint.release.installer import TEST_DEPENDENCIES_ENV, TEST_DEPENDENCIES_PTH

REPO = Path(__file__).resolve().parents[2]
SOURCE_ITEMS = ("pyproject.toml", "README.md", "chargepoint", "hal", "simulators")
BASE_PYTHON = os.path.realpath(sys.executable)  # the interpreter the test venv was made from
RESTART_S = 0.3
INITIAL = "venvs/0.1.0-test"


def copy_source(target: Path, version: str, *, broken: bool = False) -> Path:
    """A copy of this repository's package sources, as ``version``; ``broken``: ``chargepoint run`` dies at import."""
    target.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for item in SOURCE_ITEMS:
        source = REPO / item
        if source.is_dir():
            shutil.copytree(source, target / item, ignore=ignore)
        else:
            shutil.copy2(source, target / item)
    pyproject = target / "pyproject.toml"
    pyproject.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', pyproject.read_text()))
    init = target / "chargepoint" / "__init__.py"
    init.write_text(re.sub(r'(?m)^__version__ = ".*"$', f'__version__ = "{version}"', init.read_text()))
    if broken:
        boot = target / "chargepoint" / "composition" / "boot.py"
        boot.write_text(boot.read_text().replace(
            "from __future__ import annotations\n",
            "from __future__ import annotations\n\nimport chargepoint_release_that_cannot_start  # noqa: F401\n", 1))
    return target


def build_wheel(source: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "wheel", "--no-deps", "-q",
                    "--wheel-dir", str(out), str(source)], check=True, capture_output=True, cwd=source)
    [wheel] = out.glob("chargepoint-*.whl")
    return wheel


def dependencies_dir(target: Path) -> Path:
    """The test venv's site-packages without chargepoint (and without .pth files), as links."""
    target.mkdir(parents=True)
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("chargepoint", "__editable__", "_chargepoint")) or name.endswith(".pth"):
            continue
        (target / entry.name).symlink_to(entry)
    return target


def _pip_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull
    return env


def make_install_root(root: Path, wheel: Path, dependencies: Path) -> Path:
    """chargepoint 0.1.0 installed as install.sh does it (``.venv`` -> ``venvs/0.1.0-test``), with the guard."""
    venv = root / INITIAL
    subprocess.run([BASE_PYTHON, "-m", "venv", str(venv)], check=True)
    [site] = (venv / "lib").glob("python3*/site-packages")
    (site / TEST_DEPENDENCIES_PTH).write_text(f"{dependencies}\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "install", "-q",
                    "--no-index", "--no-deps", str(wheel)], check=True, env=_pip_env())
    (venv / ".chargepoint-build").write_text("version=0.1.0\nbuild=0.1.0-test\nextras=\nsource=test\n")
    (root / ".venv").symlink_to(INITIAL)
    shutil.copy2(REPO / "chargepoint" / "release" / "guard.py", root / "update-guard.py")
    return root


def copy_install_root(pristine: Path, target: Path) -> Path:
    """A copy of a prepared install root (``python -m chargepoint`` of a copied venv runs in the copy)."""
    shutil.copytree(pristine, target, symlinks=True)
    return target


class Service:
    """The unit, played: ExecStartPre=-+ the guard, ExecStart= the daemon through ``.venv``, Restart=always."""

    def __init__(self, root: Path, config: Path, dependencies: Path) -> None:
        self.root = root
        self.config = config
        self.log_path = config.parent / "service.log"
        self.env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        self.env.update({TEST_DEPENDENCIES_ENV: str(dependencies), "PYTHONUNBUFFERED": "1"})
        self.guard_lines: list[str] = []
        self.exits: list[int] = []
        self.starts = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while not self._stopping:
            guard = await asyncio.to_thread(
                subprocess.run, [BASE_PYTHON, "-I", str(self.root / "update-guard.py"), "--config", str(self.config)],
                capture_output=True, text=True, check=False)
            self.guard_lines.append((guard.stdout + guard.stderr).strip())
            if self._stopping:
                break
            process = await asyncio.to_thread(self._start)
            self.starts += 1
            self.exits.append(await asyncio.to_thread(process.wait))
            if not self._stopping:
                await asyncio.sleep(RESTART_S)

    def _start(self) -> subprocess.Popen[bytes]:
        """ExecStart: the daemon through the .venv link (its python, so a copied venv runs as itself)."""
        with self.log_path.open("ab") as log:
            log.write(f"---- start {self.starts + 1}: {self.guard_lines[-1]}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [str(self.root / ".venv" / "bin" / "python"), "-m", "chargepoint", "run", "--config",
                 str(self.config)], stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.config.parent)
        return self.process

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def stop(self) -> None:
        self._stopping = True
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 15)
            except subprocess.TimeoutExpired:
                process.kill()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Service]:
        self._task = asyncio.create_task(self._run())
        try:
            yield self
        finally:
            await self.stop()
