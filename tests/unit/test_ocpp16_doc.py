"""docs/ocpp16.md lists every configuration key with its access and default: checked against the registry
(chargepoint/ocpp/config_keys.py), so neither can change without the other."""

from __future__ import annotations

from pathlib import Path

from chargepoint.ocpp.config_keys import Access, OcppConfiguration

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ocpp16.md"
BEGIN, END = "<!-- configuration keys: begin -->", "<!-- configuration keys: end -->"
ACCESS = {Access.R: "R", Access.RW: "RW", Access.W: "W-only"}


def documented_keys() -> list[tuple[str, str, str]]:
    """(key, access, default) of each row of the doc's key table, in order."""
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index(BEGIN) + len(BEGIN):text.index(END)]
    rows = [line for line in table.strip().splitlines() if line.startswith("|")][2:]  # after header and rule
    result = []
    for row in rows:
        key, access, default = (cell.strip() for cell in row.strip("|").split("|")[:3])
        result.append((key, access, default))
    return result


def registry_keys() -> list[tuple[str, str, str]]:
    """The same for a one-connector charger with the default SupportedLanguages, as the doc says."""
    return [(name, ACCESS[access], f"`{default}`" if default else "(empty)")
            for name, access, default in OcppConfiguration(1).table()]


def test_the_doc_lists_every_key_with_the_registrys_access_and_default() -> None:
    documented, registered = documented_keys(), registry_keys()
    missing = [k for k in registered if k[0] not in {d[0] for d in documented}]
    extra = [d for d in documented if d[0] not in {k[0] for k in registered}]
    assert (missing, extra) == ([], []), "docs/ocpp16.md and config_keys.py name different keys"
    assert documented == registered


def test_the_doc_is_linked_from_the_readme() -> None:
    assert "docs/ocpp16.md" in (ROOT / "README.md").read_text(encoding="utf-8")
