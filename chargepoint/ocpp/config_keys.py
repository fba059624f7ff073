"""OCPP 1.6 configuration keys: types, access, validation and the values in force.

Pure: the caller persists what ``change`` returns and feeds persisted values back through ``load``.
A value set over OCPP is kept in the store and wins over the config file's initial value after a restart.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from chargepoint.core.measurands import MAX_MEASURANDS, UnsupportedMeasurands, parse_measurands
from chargepoint.pricing.california import (
    CaliforniaPricingError,
    parse_datetime,
    parse_default_price,
    parse_default_price_text,
    parse_time_offset,
)

log = logging.getLogger(__name__)


class Access(enum.StrEnum):
    R = "R"
    RW = "RW"
    W = "W"  # write-only: never reported (AuthorizationKey)


class ChangeStatus(enum.StrEnum):
    Accepted = "Accepted"
    Rejected = "Rejected"
    RebootRequired = "RebootRequired"
    NotSupported = "NotSupported"




class InvalidValue(ValueError):
    """A ChangeConfiguration value does not fit the key; the message says why (it goes to the log)."""


def _parse_bool(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise InvalidValue(f"expected true or false, got {text!r}")
    return lowered


def _int_range(low: int, high: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        try:
            value = int(text.strip())
        except ValueError:
            raise InvalidValue(f"expected an integer, got {text!r}") from None
        if not low <= value <= high:
            raise InvalidValue(f"expected {low}..{high}, got {value}")
        return str(value)

    return parse


def _measurands(text: str) -> str:
    try:
        return parse_measurands(text)
    except UnsupportedMeasurands as exc:
        raise InvalidValue(str(exc)) from None


def _phase_rotation(connector_count: int) -> Callable[[str], str]:
    """At most one entry per connector (0 = the charge point), as ConnectorPhaseRotationMaxLength says."""
    valid = {"NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR"}

    def parse(text: str) -> str:
        items = [part.strip() for part in text.split(",")]
        if len(items) > connector_count + 1:
            raise InvalidValue(f"at most {connector_count + 1} entries (ConnectorPhaseRotationMaxLength)")
        connectors: set[int] = set()
        for item in items:
            connector, _, rotation = item.partition(".")
            if not connector.isdigit() or rotation not in valid:
                raise InvalidValue(f"expected entries like 0.RST, got {item!r}")
            if int(connector) > connector_count or int(connector) in connectors:
                raise InvalidValue(f"connector {connector} does not exist or is named twice")
            connectors.add(int(connector))
        return ",".join(items)

    return parse


def _authorization_key(text: str) -> str:
    # Security whitepaper: 16..40 characters; we also refuse control characters in an HTTP header value.
    if not 16 <= len(text) <= 40 or not text.isprintable():
        raise InvalidValue("AuthorizationKey must be 16 to 40 printable characters")
    return text


def _any_text(text: str) -> str:
    if len(text) > 500:
        raise InvalidValue("value longer than 500 characters")
    return text


def _california(parse: Callable[[str], Any], *, allow_empty: bool) -> Callable[[str], str]:
    """A value checked by a California Pricing parser and kept as given (the runtime re-parses it)."""

    def validate(text: str) -> str:
        if allow_empty and text.strip() == "":
            return ""
        try:
            parse(text)
        except CaliforniaPricingError as exc:
            raise InvalidValue(str(exc)) from None
        return text

    return validate


def _time_offset(*, allow_empty: bool) -> Callable[[str], str]:
    def validate(text: str) -> str:
        stripped = text.strip()
        if allow_empty and stripped == "":
            return ""
        try:
            parse_time_offset(stripped)
        except CaliforniaPricingError as exc:
            raise InvalidValue(str(exc)) from None
        return stripped

    return validate


def _transition_datetime(text: str) -> str:
    stripped = text.strip()
    if stripped == "":
        return ""
    try:
        parse_datetime(stripped, "NextTimeOffsetTransitionDateTime")
    except CaliforniaPricingError as exc:
        raise InvalidValue(str(exc)) from None
    return stripped


def _language(supported: Callable[[], list[str]]) -> Callable[[str], str]:
    def validate(text: str) -> str:
        language = text.strip()
        languages = supported()
        if language not in languages:
            raise InvalidValue(f"language {text!r} is not supported (SupportedLanguages: {','.join(languages)})")
        return language

    return validate


# Configuration keys named ``DefaultPriceText,<lang>``: one per language in SupportedLanguages.
DEFAULT_PRICE_TEXT_PREFIX = "DefaultPriceText,"


@dataclass(frozen=True, slots=True)
class KeySpec:
    name: str
    access: Access
    default: str
    parse: Callable[[str], str] = _any_text
    reboot_required: bool = False


def _specs(connector_count: int, supported_languages: Callable[[], list[str]]) -> list[KeySpec]:
    b, rw, r = _parse_bool, Access.RW, Access.R
    return [
        # Core
        KeySpec("AllowOfflineTxForUnknownId", rw, "false", b),
        KeySpec("AuthorizationCacheEnabled", rw, "true", b),
        KeySpec("AuthorizeRemoteTxRequests", rw, "true", b),
        KeySpec("ClockAlignedDataInterval", rw, "0", _int_range(0, 86_400)),
        KeySpec("ConnectionTimeOut", rw, "60", _int_range(1, 3_600)),
        KeySpec("ConnectorPhaseRotation", rw, ",".join(f"{i}.RST" for i in range(connector_count + 1)),
                _phase_rotation(connector_count)),
        KeySpec("ConnectorPhaseRotationMaxLength", r, str(connector_count + 1)),
        KeySpec("GetConfigurationMaxKeys", r, "100"),
        KeySpec("HeartbeatInterval", rw, "300", _int_range(0, 86_400)),
        KeySpec("LocalAuthorizeOffline", rw, "true", b),
        KeySpec("LocalPreAuthorize", rw, "false", b),
        KeySpec("MaxEnergyOnInvalidId", rw, "0", _int_range(0, 1_000_000_000)),
        KeySpec("MeterValuesAlignedData", rw, "Energy.Active.Import.Register", _measurands),
        KeySpec("MeterValuesAlignedDataMaxLength", r, str(MAX_MEASURANDS)),
        KeySpec("MeterValuesSampledData", rw, "Energy.Active.Import.Register", _measurands),
        KeySpec("MeterValuesSampledDataMaxLength", r, str(MAX_MEASURANDS)),
        KeySpec("MeterValueSampleInterval", rw, "60", _int_range(0, 86_400)),
        KeySpec("MinimumStatusDuration", rw, "0", _int_range(0, 3_600)),
        KeySpec("NumberOfConnectors", r, str(connector_count)),
        KeySpec("ResetRetries", rw, "1", _int_range(0, 10)),
        KeySpec("StopTransactionOnEVSideDisconnect", rw, "true", b),
        KeySpec("StopTransactionOnInvalidId", rw, "true", b),
        KeySpec("StopTxnAlignedData", rw, "", _measurands),
        KeySpec("StopTxnAlignedDataMaxLength", r, str(MAX_MEASURANDS)),
        KeySpec("StopTxnSampledData", rw, "", _measurands),
        KeySpec("StopTxnSampledDataMaxLength", r, str(MAX_MEASURANDS)),
        KeySpec(
            "SupportedFeatureProfiles",
            r,
            "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
        ),
        KeySpec("SupportedFeatureProfilesMaxLength", r, "6"),
        KeySpec("TransactionMessageAttempts", rw, "3", _int_range(1, 100)),
        KeySpec("TransactionMessageRetryInterval", rw, "60", _int_range(1, 86_400)),
        KeySpec("UnlockConnectorOnEVSideDisconnect", rw, "true", b),
        KeySpec("WebSocketPingInterval", rw, "30", _int_range(0, 3_600)),
        # Local authorization list
        KeySpec("LocalAuthListEnabled", rw, "true", b),
        KeySpec("LocalAuthListMaxLength", r, "10000"),
        KeySpec("SendLocalListMaxLength", r, "1000"),
        # Reservation
        KeySpec("ReserveConnectorZeroSupported", r, "true"),
        # Smart charging
        KeySpec("ChargeProfileMaxStackLevel", r, "8"),
        KeySpec("ChargingScheduleAllowedChargingRateUnit", r, "Current,Power"),
        KeySpec("ChargingScheduleMaxPeriods", r, "48"),
        KeySpec("ConnectorSwitch3to1PhaseSupported", r, "false"),
        KeySpec("MaxChargingProfilesInstalled", r, "32"),
        # Firmware management
        KeySpec("SupportedFileTransferProtocols", r, "HTTP,HTTPS,FTP"),
        # Security whitepaper
        KeySpec("SecurityProfile", rw, "0", _int_range(0, 3), reboot_required=False),
        KeySpec("AuthorizationKey", Access.W, "", _authorization_key),
        KeySpec("CpoName", rw, "", _any_text),
        KeySpec("CertificateStoreMaxLength", r, "10"),
        KeySpec("CertificateSignedMaxChainSize", r, "10000"),
        KeySpec("AdditionalRootCertificateCheck", r, "false"),
        # Cost and price (OCA "OCPP & California Pricing Requirements"); DefaultPriceText,<lang> keys are
        # added per supported language by OcppConfiguration.
        KeySpec("CustomDisplayCostAndPrice", r, "false"),
        KeySpec("DefaultPrice", rw, "", _california(parse_default_price, allow_empty=True)),
        KeySpec("TimeOffset", rw, "+00:00", _time_offset(allow_empty=False)),
        KeySpec("NextTimeOffsetTransitionDateTime", rw, "", _transition_datetime),
        KeySpec("TimeOffsetNextTransition", rw, "", _time_offset(allow_empty=True)),
        KeySpec("CustomIdleFeeAfterStop", rw, "false", b),
        KeySpec("CustomMultiLanguageMessages", r, "true"),
        KeySpec("SupportedLanguages", r, "en,de,fr,nl"),
        KeySpec("Language", rw, "en", _language(supported_languages)),
        KeySpec("NumberOfDecimalsForCostValues", r, "2"),
    ]


@dataclass(frozen=True, slots=True)
class ReportedKey:
    key: str
    readonly: bool
    value: str | None


class OcppConfiguration:
    """The key table and the values in force.

    Besides the fixed table there is one ``DefaultPriceText,<lang>`` key per language of ``SupportedLanguages``
    (RW, a JSON value checked by ``parse_default_price_text``); other languages are unknown keys.
    """

    def __init__(self, connector_count: int, initial: Mapping[str, str] | None = None) -> None:
        self._specs = {spec.name: spec for spec in _specs(connector_count, self._supported_languages)}
        # OCPP 1.6 keys are CiString50Type: case-insensitive. Each key by its case-folded name.
        self._folded = {name.casefold(): name for name in self._specs}
        self._values = {name: spec.default for name, spec in self._specs.items()}
        for name, value in (initial or {}).items():
            self._values[name] = value
        # Guards a key change may have to pass (e.g. SecurityProfile may only increase, needs certificates).
        self.guards: dict[str, Callable[[str, str], str | None]] = {}

    def _supported_languages(self) -> list[str]:
        return [item.strip() for item in self._values.get("SupportedLanguages", "").split(",") if item.strip()]

    def canonical(self, name: str) -> str | None:
        """The key as this charger spells it, for a name in any case (CiString); None if there is no such key."""
        if name in self._specs:
            return name
        folded = name.casefold()
        if folded in self._folded:
            return self._folded[folded]
        prefix = DEFAULT_PRICE_TEXT_PREFIX.casefold()
        if folded.startswith(prefix):
            for language in self._supported_languages():
                if folded == prefix + language.casefold():
                    return DEFAULT_PRICE_TEXT_PREFIX + language
        return None

    def _spec(self, name: str) -> KeySpec | None:
        """The key's spec; its ``name`` is the canonical spelling."""
        canonical = self.canonical(name)
        if canonical is None:
            return None
        spec = self._specs.get(canonical)
        if spec is not None:
            return spec
        return KeySpec(canonical, Access.RW, "", _california(parse_default_price_text, allow_empty=True))

    def _names(self) -> Iterator[str]:
        """Every key in report order; the DefaultPriceText,<lang> keys follow DefaultPrice."""
        for name in self._specs:
            yield name
            if name == "DefaultPrice":
                yield from (DEFAULT_PRICE_TEXT_PREFIX + language for language in self._supported_languages())

    def _value(self, name: str) -> str:
        if name in self._values:
            return self._values[name]
        spec = self._spec(name)
        if spec is None:
            raise KeyError(name)
        return self._values.get(spec.name, spec.default)

    def load(self, persisted: Mapping[str, str]) -> None:
        """Values persisted from earlier ChangeConfiguration calls; unknown or invalid ones are ignored."""
        for name, value in persisted.items():
            spec = self._spec(name)
            if spec is None:
                continue
            try:
                self._values[spec.name] = spec.parse(value)
            except InvalidValue as exc:
                log.warning("ignoring persisted OCPP key %s: %s", name, exc)

    def __getitem__(self, name: str) -> str:
        return self._value(name)

    def get_bool(self, name: str) -> bool:
        return self._value(name) == "true"

    def get_int(self, name: str) -> int:
        return int(self._value(name) or 0)

    def get_list(self, name: str) -> list[str]:
        return [item for item in self._value(name).split(",") if item]

    def set_internal(self, name: str, value: str) -> None:
        """Set a value the charger itself decided (HeartbeatInterval from BootNotification.conf)."""
        self._values[name] = value

    def report(self, keys: Iterable[str] | None) -> tuple[list[ReportedKey], list[str]]:
        """GetConfiguration: (configurationKey, unknownKey).

        No key list and an empty one both mean every key (CitrineOS always sends ``"key": []``); then write-only
        keys are left out, as a CSMS reading everything cannot use them. Asked for by name, a write-only key is
        known: it is listed without its value. Names are matched in any case (CiString) and answered as this
        charger spells them; a key named twice is answered once."""
        requested = list(keys or ())
        if not requested:
            every = [name for name in self._names() if self.access(name) is not Access.W]
            return [ReportedKey(name, self.access(name) is Access.R, self._value(name)) for name in every], []
        known: dict[str, ReportedKey] = {}
        unknown: list[str] = []
        for name in requested:
            spec = self._spec(name)
            if spec is None:
                if name not in unknown:
                    unknown.append(name)
            elif spec.name not in known:
                value = None if spec.access is Access.W else self._value(spec.name)
                known[spec.name] = ReportedKey(spec.name, spec.access is Access.R, value)
        return list(known.values()), unknown

    def access(self, name: str) -> Access | None:
        """R, RW or W (write-only); None for a key this charger does not have."""
        spec = self._spec(name)
        return None if spec is None else spec.access

    def table(self) -> list[tuple[str, Access, str]]:
        """Every key with its access and default, in report order (docs/ocpp16.md is checked against it)."""
        return [(name, spec.access, spec.default) for name in self._names() if (spec := self._spec(name))]

    def change(self, name: str, value: str) -> tuple[ChangeStatus, str | None]:
        """ChangeConfiguration: (status, value to persist or None). Logs why a value is rejected."""
        spec = self._spec(name)
        if spec is None:
            log.info("ChangeConfiguration: unknown key %s", name)
            return ChangeStatus.NotSupported, None
        name = spec.name
        if spec.access is Access.R:
            log.info("ChangeConfiguration: %s is read-only", name)
            return ChangeStatus.Rejected, None
        try:
            parsed = spec.parse(value)
        except InvalidValue as exc:
            shown = "(hidden)" if spec.access is Access.W else repr(value)
            log.warning("ChangeConfiguration: %s = %s rejected: %s", name, shown, exc)
            return ChangeStatus.Rejected, None
        guard = self.guards.get(name)
        if guard is not None:
            reason = guard(self._value(name), parsed)
            if reason is not None:
                log.warning("ChangeConfiguration: %s rejected: %s", name, reason)
                return ChangeStatus.Rejected, None
        self._values[name] = parsed
        status = ChangeStatus.RebootRequired if spec.reboot_required else ChangeStatus.Accepted
        return status, parsed

    def is_secret(self, name: str) -> bool:
        spec = self._spec(name)
        return spec is not None and spec.access is Access.W
