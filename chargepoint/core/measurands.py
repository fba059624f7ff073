"""Which quantities the charger's meter can report, and lists of them as OCPP names them.

Both the config file (``meter_values_sampled_data``) and the CSMS (``MeterValuesSampledData`` and its kin)
choose from this list, so it lives here rather than in either of them.
"""

from __future__ import annotations

# Measurands this charger can measure (per phase where it makes sense).
SUPPORTED_MEASURANDS = frozenset(
    {
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Current.Import",
        "Current.Offered",
        "Voltage",
    }
)
MAX_MEASURANDS = 8


class UnsupportedMeasurands(ValueError):
    """A measurand list names something this charger cannot measure, or too many things; the message says which."""


def parse_measurands(text: str) -> str:
    """The comma-separated list ``text`` normalised (blanks dropped), or ``UnsupportedMeasurands``."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in items if item not in SUPPORTED_MEASURANDS]
    if unknown:
        supported = ", ".join(sorted(SUPPORTED_MEASURANDS))
        raise UnsupportedMeasurands(f"cannot measure {', '.join(unknown)} (supported: {supported})")
    if len(items) > MAX_MEASURANDS:
        raise UnsupportedMeasurands(f"at most {MAX_MEASURANDS} measurands")
    return ",".join(items)
