"""The shape of the code (docs/architecture.md): import contracts, no import cycles, modules of a readable size.

The contracts live in pyproject.toml and ``./dev test`` runs ``lint-imports``; these tests also show that each
contract catches the reversed arrows it is there for, on a copy of the tree with one bad import added.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chargepoint", "hal", "simulators")
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_LINES_WITHOUT_REASON = 500


def lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    args = [str(LINT_IMPORTS), "--no-cache", "--no-logo"]
    for contract in contracts:
        args += ["--contract", contract]
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_the_tree_keeps_every_import_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        # The arrows the untangling removed (issue 10), each caught by the contract that forbids it.
        ("chargepoint/ocpp/v16/client.py", "from chargepoint.runtime.app import ChargerApp", "adapters-through-ports"),
        ("chargepoint/runtime/app.py", "from chargepoint.ocpp.v16.client import OcppClient", "adapters-through-ports"),
        ("chargepoint/core/pilot.py", "from hal.protocols import Display", "pure-core"),
        ("chargepoint/core/ocpp_auth.py", "from chargepoint.store import Store", "pure-core"),
        ("chargepoint/pricing/tariff.py", "from chargepoint.errors import ConfigError", "pure-core"),
        ("hal/rpi_board.py", "from chargepoint.config.schema import Config", "hal-plain-settings"),
        ("hal/hardware.py", "from simulators.station import SimulatedStation", "hal-plain-settings"),
        ("chargepoint/config/schema.py", "from chargepoint.ocpp.config_keys import OcppConfiguration",
         "config-neutral"),
        ("chargepoint/runtime/control.py", "from simulators.station import SimActionError", "simulators-at-the-edge"),
        ("chargepoint/cli/main.py", "from simulators.station import SimulatedStation", "cli-no-simulators"),
        ("chargepoint/ports/charger.py", "from chargepoint.runtime.connector import ConnectorRuntime", "layers"),
        ("chargepoint/store/store.py", "from chargepoint.ports.csms import CsmsAdapter", "layers"),
        ("chargepoint/ocpp/v16/handlers.py", "from chargepoint.ocpp.v16 import client", "no-cycles"),
        ("chargepoint/runtime/connector.py", "from chargepoint.runtime import app", "no-cycles"),
    ],
)
def test_a_reversed_arrow_breaks_its_contract(tmp_path: Path, module: str, bad_import: str, contract: str) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with (tmp_path / module).open("a", encoding="utf-8") as file:
        file.write(f"\n{bad_import}  # noqa\n")
    result = lint_imports(tmp_path, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 broken" in result.stdout


# ---------------------------------------------------------------------------------------------- import cycles


def cycles(imports: Mapping[str, Iterable[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan), i.e. the import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in imports.get(module, ()):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(imports):
        if module not in index:
            visit(module)
    return found


def test_the_cycle_finder_finds_cycles_across_packages() -> None:
    graph = {"a.x": {"b.y"}, "b.y": {"c.z"}, "c.z": {"a.x"}, "a.w": {"a.x"}, "d": set()}
    assert cycles(graph) == [{"a.x", "b.y", "c.z"}]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_is_part_of_an_import_cycle() -> None:
    # acyclic_siblings looks inside each package; this also covers cycles between chargepoint, hal and simulators.
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    assert cycles(imports) == []


# ---------------------------------------------------------------------------------------------- module sizes


def test_every_module_over_500_lines_says_why_at_its_top() -> None:
    long_modules = []
    offenders = []
    for path in sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") <= MAX_LINES_WITHOUT_REASON:
            continue
        long_modules.append(path)
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if "\nSize: " not in f"\n{docstring}":
            offenders.append(str(path.relative_to(ROOT)))
    assert long_modules, "the check saw no long module at all: is it looking at the tree?"
    assert offenders == [], f"over {MAX_LINES_WITHOUT_REASON} lines without a 'Size:' paragraph saying why"


# ---------------------------------------------------------------------------------------------- what loads when


def modules_loaded_by(code: str) -> set[str]:
    script = f"{code}\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60,
                            check=True)
    return set(result.stdout.split())


def test_the_early_safe_path_loads_neither_validation_nor_modbus_nor_simulators_for_a_pi() -> None:
    loaded = modules_loaded_by(
        "from chargepoint.composition import boot, devices\n"
        "from hal import rpi_board\n"
        "rpi_board.rpi_settings({'backend': 'rpi'})"
    )
    assert "chargepoint.composition.devices" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("pydantic", "pymodbus", "click", "simulators")}


def test_a_standalone_charger_does_not_load_the_ocpp_adapter() -> None:
    loaded = modules_loaded_by("import chargepoint.composition.daemon, chargepoint.composition.charger")
    assert "chargepoint.runtime.app" in loaded
    assert not {m for m in loaded if m.split(".")[0] in ("ocpp", "websockets") or m.startswith("chargepoint.ocpp")}
