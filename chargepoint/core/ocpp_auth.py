"""OCPP 1.6 authorization: Local Authorization List, Authorization Cache and offline rules. Pure, no I/O.

The runtime owns the clock, the connection state and the store; this module only decides. Time comes in as an
argument (timezone-aware), and every change that must survive a reboot comes back as data (:class:`CacheChange`,
:class:`LocalListResult`) for the runtime to write with :class:`~chargepoint.store.store.Store`.

The rules, with the OCPP 1.6 (edition 2) sections they come from:

**Deciding on a presented idTag** (:meth:`Authorizer.decide`):

- *Local Authorization List first* (§3.5.2), if ``LocalAuthListEnabled``. It is consulted when offline, or when
  online with ``LocalPreAuthorize``; online without ``LocalPreAuthorize`` every idTag goes to the CSMS
  (``Authorize.req``; §4.1 allows this for ids in the list). A list entry that is *valid* (status ``Accepted`` and
  ``expiryDate`` not reached) authorizes. A list entry that is not valid is rejected, online or offline: §3.5.3
  says ids in the list with another status "MUST be rejected", and the list is data the CSMS manages for us.
- *Authorization Cache next* (§3.5.1), if ``AuthorizationCacheEnabled``. A valid cache entry authorizes when
  online with ``LocalPreAuthorize``, or offline. A cache entry that is not valid (status not ``Accepted``, or
  expired by date) is *not* trusted online: the CSMS may have unblocked or renewed the card, so we ask it
  (``AskCsms``). Offline it is rejected: §3.5.3 "identifiers that were valid but are apparently expired due to
  passage of time MUST also be rejected", and a cached ``Blocked``/``Invalid`` answer is known, not unknown.
- *Offline acceptance from list or cache needs* ``LocalAuthorizeOffline`` (its definition covers both:
  "start a transaction for locally-authorized identifiers"). Without it a valid local entry is not enough and
  the id is treated as unknown; rejections still apply (a blocked card never becomes "unknown").
- *Online, otherwise*: ``AskCsms``.
- *Offline and unknown* (§3.5.3, Unknown Offline Authorization): ``Accepted`` with source ``offline_unknown``
  if ``AllowOfflineTxForUnknownId``, else rejected (status ``Invalid``).

idTags are compared exactly: OCPP 1.6 idTags are case-sensitive ``CiString20Type`` values (the "Ci" is
"case insensitive" only in name; the spec compares identifiers as strings and the CSMS decides what they are).
Normalising reader output (hex case, separators) is the RFID driver's job, before the idTag reaches us.

**Cache maintenance** (:meth:`Authorizer.csms_answered`, §3.5.1, §4.1, §4.8, §4.10): every ``IdTagInfo`` the CSMS
sends (Authorize.conf, StartTransaction.conf, StopTransaction.conf) updates the cache, valid or not ("the cache
contains all the latest received identifiers"), except for ids in the Local Authorization List (§4.8: the cache
entry is updated "if the idTag is not in the Local Authorization List"). ``ConcurrentTx`` is stored as
``Accepted``: it says the card is valid but busy *now* (it is "only relevant for a StartTransaction.req"),
which must not block that card tomorrow; OpenOCPP does the same.

*Eviction* when the cache holds more than ``cache_max_entries``: first entries that are no longer valid
(not ``Accepted`` or expired), then the valid ones, oldest first, where "oldest" is the least recently
*confirmed by the CSMS*. That is the order :meth:`Store.auth_cache_all` returns (``ORDER BY updated_at``), so it
survives a reboot. It is close to least-recently-used: each use of a card ends in a StartTransaction.conf or
StopTransaction.conf that refreshes its entry. The entry just written is never the one evicted.

**ClearCache** (§5.4): "Accepted if the Charge Point has executed the request, otherwise Rejected".
:meth:`Authorizer.clear_cache` always clears (also while the cache is disabled, so stale entries cannot come
back when it is re-enabled) and therefore always reports ``Accepted``. TC_061 needs ``Accepted``.

**Local list management** (§5.10, §5.15, §6.41): GetLocalListVersion answers -1 when the list is disabled
(TC_042_1) and the stored version otherwise, 0 until a list was ever installed (TC_042_2). SendLocalList: see
:meth:`Authorizer.send_local_list`.

**Stopping with another card** (§4.1 Authorize, ``IdTagInfo.parentIdTag``; TC_068, TC_069): see
:meth:`Authorizer.stop_allowed`.

**Invalid id after start** (§4.8 StartTransaction, config keys ``StopTransactionOnInvalidId`` and
``MaxEnergyOnInvalidId``; TC_037_2, TC_037_3): see :func:`invalid_id_action`.

Size: a third of it is this docstring, the rules with the sections of the specification they come from, kept beside
the code that applies them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

ID_TAG_MAX_LENGTH: Final = 20
"""OCPP 1.6 ``IdToken`` is a ``CiString20Type``."""


@dataclass(frozen=True, slots=True)
class IdTagEntry:
    """An idTag with its IdTagInfo, as held in the authorization cache or the local authorization list."""

    id_tag: str
    status: str  # OCPP AuthorizationStatus: Accepted, Blocked, Expired, Invalid, ConcurrentTx
    expiry_date: datetime | None = None
    parent_id_tag: str | None = None


class AuthorizationStatus(enum.StrEnum):
    """OCPP 1.6 ``AuthorizationStatus``."""

    Accepted = "Accepted"
    Blocked = "Blocked"
    Expired = "Expired"
    Invalid = "Invalid"
    ConcurrentTx = "ConcurrentTx"


class LocalDecision(enum.StrEnum):
    """What to do with a presented idTag."""

    Accepted = "Accepted"
    """Authorized locally: start (or stop) without waiting for the CSMS."""
    Rejected = "Rejected"
    """Refused locally; ``AuthOutcome.status`` says why."""
    AskCsms = "AskCsms"
    """Send Authorize.req and decide on its answer."""


class AuthSource(enum.StrEnum):
    """Where a decision came from."""

    LocalList = "local_list"
    Cache = "cache"
    OfflineUnknown = "offline_unknown"
    NoSource = "none"


class UpdateStatus(enum.StrEnum):
    """OCPP 1.6 ``UpdateStatus`` (SendLocalList.conf)."""

    Accepted = "Accepted"
    Failed = "Failed"
    NotSupported = "NotSupported"
    VersionMismatch = "VersionMismatch"


class UpdateType(enum.StrEnum):
    """OCPP 1.6 ``UpdateType`` (SendLocalList.req)."""

    Differential = "Differential"
    Full = "Full"


class InvalidIdAction(enum.StrEnum):
    """What to do with an ongoing transaction whose idTag the CSMS did not accept."""

    Stop = "stop"
    """Stop the transaction now, StopTransaction reason ``DeAuthorized``."""
    Suspend = "suspend"
    """Keep the transaction but deliver no more energy (PWM off / contactor open, SuspendedEVSE)."""
    Continue = "continue"
    """Keep charging for now; ask again at the next meter sample."""


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """The OCPP configuration keys that govern authorization (REFERENCE §4.2); replace it on ChangeConfiguration."""

    local_authorize_offline: bool = True
    """``LocalAuthorizeOffline``."""
    local_pre_authorize: bool = False
    """``LocalPreAuthorize``."""
    authorization_cache_enabled: bool = True
    """``AuthorizationCacheEnabled``."""
    local_auth_list_enabled: bool = True
    """``LocalAuthListEnabled``."""
    allow_offline_tx_for_unknown_id: bool = False
    """``AllowOfflineTxForUnknownId``."""
    local_auth_list_max_length: int = 10_000
    """``LocalAuthListMaxLength`` (read-only key): most entries the list may hold."""
    send_local_list_max_length: int = 1_000
    """``SendLocalListMaxLength`` (read-only key): most entries one SendLocalList.req may carry."""
    cache_max_entries: int = 1_000
    """Capacity of the Authorization Cache (no OCPP 1.6 key; our own limit)."""

    def __post_init__(self) -> None:
        for name in ("local_auth_list_max_length", "send_local_list_max_length", "cache_max_entries"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class AuthOutcome:
    """The decision for one presented idTag."""

    decision: LocalDecision
    status: str | None
    """The OCPP AuthorizationStatus behind a local decision; ``None`` for ``AskCsms``."""
    parent_id_tag: str | None
    source: AuthSource


@dataclass(frozen=True, slots=True)
class CacheChange:
    """One change of the Authorization Cache for the runtime to persist: exactly one of the two is set."""

    put: IdTagEntry | None = None
    """Write (insert or replace) this entry: ``Store.auth_cache_put``."""
    delete: str | None = None
    """Remove this idTag: ``Store.auth_cache_delete``."""


@dataclass(frozen=True, slots=True)
class LocalListResult:
    """The answer to a SendLocalList.req, and what to persist when it is ``Accepted``.

    On ``Accepted``, pass ``version``, ``entries`` and ``full`` to ``Store.local_list_update``; a ``str`` entry
    removes that idTag. On any other status nothing changed and there is nothing to persist.
    """

    status: UpdateStatus
    full: bool
    version: int
    entries: list[IdTagEntry | str] = field(default_factory=list)


def is_valid(entry: IdTagEntry, now: datetime) -> bool:
    """Whether an entry authorizes at ``now``: status ``Accepted`` and its expiryDate (if any) not reached."""
    if entry.status != AuthorizationStatus.Accepted:
        return False
    return entry.expiry_date is None or now < entry.expiry_date


def effective_status(entry: IdTagEntry, now: datetime) -> str:
    """The entry's status as of ``now``: an ``Accepted`` entry past its expiryDate reads ``Expired`` (§3.5.1)."""
    if entry.status == AuthorizationStatus.Accepted and not is_valid(entry, now):
        return AuthorizationStatus.Expired
    return entry.status


def invalid_id_action(
    stop_transaction_on_invalid_id: bool, max_energy_on_invalid_id_Wh: int | None, delivered_Wh: int
) -> InvalidIdAction:
    """What to do with an ongoing transaction after the CSMS answered its StartTransaction.req with an
    ``idTagInfo.status`` other than ``Accepted`` (typically one started offline: TC_037_2, TC_037_3).

    - ``StopTransactionOnInvalidId = true``: stop the transaction at once, StopTransaction reason
      ``DeAuthorized`` (§4.8; TC_037_3). The cable stays locked until the owner's card is presented, if the
      connector locks.
    - ``StopTransactionOnInvalidId = false``: the transaction goes on, but §4.8 says the Charge Point then "only
      stops energy delivery"; ``MaxEnergyOnInvalidId`` ("maximum energy in Wh delivered when an identifier is
      invalidated by the Central System after start of a transaction") lets delivery go on up to that amount.
      So: ``continue`` while ``delivered_Wh < MaxEnergyOnInvalidId``, then ``suspend``; without the key
      (``None``) ``suspend`` at once. The transaction ends normally later (EV disconnects, a card, RemoteStop).

    ``delivered_Wh`` is the energy of the whole transaction (meter now minus meterStart), including what was
    delivered before the CSMS answered: the cap limits what an invalid id gets in total. Call again at every
    meter sample while the answer is ``continue``.
    """
    if stop_transaction_on_invalid_id:
        return InvalidIdAction.Stop
    if max_energy_on_invalid_id_Wh is None or delivered_Wh >= max(0, max_energy_on_invalid_id_Wh):
        return InvalidIdAction.Suspend
    return InvalidIdAction.Continue


class Authorizer:
    """The authorization state of one charge point: Local Authorization List, Authorization Cache, settings.

    Build it at boot from ``Store.local_list_all()`` and ``Store.auth_cache_all()`` (oldest first), then feed
    it every presented idTag and every IdTagInfo the CSMS sends. Not thread-safe; use it from the event loop.
    """

    def __init__(
        self,
        settings: AuthSettings,
        local_list_version: int = 0,
        local_list: Iterable[IdTagEntry] = (),
        cache: Iterable[IdTagEntry] = (),
    ) -> None:
        self.settings = settings
        self._list_version = local_list_version
        self._list: dict[str, IdTagEntry] = {e.id_tag: e for e in local_list}
        # Insertion order = age: the first key is the least recently confirmed by the CSMS.
        self._cache: dict[str, IdTagEntry] = {}
        for entry in cache:
            self._cache.pop(entry.id_tag, None)
            self._cache[entry.id_tag] = entry

    # -- deciding ---------------------------------------------------------------------------------------

    def decide(self, id_tag: str, now: datetime, online: bool) -> AuthOutcome:
        """What to do with ``id_tag`` presented at ``now`` (see the module docstring for the rules)."""
        _require_aware(now)
        s = self.settings
        locally_usable = s.local_pre_authorize if online else True
        locally_accepting = s.local_pre_authorize if online else s.local_authorize_offline

        if s.local_auth_list_enabled and locally_usable:
            entry = self._list.get(id_tag)
            if entry is not None:
                if not is_valid(entry, now):
                    return _rejected(entry, now, AuthSource.LocalList)
                if locally_accepting:
                    return AuthOutcome(
                        LocalDecision.Accepted, AuthorizationStatus.Accepted, entry.parent_id_tag, AuthSource.LocalList
                    )
                return self._unknown(online)

        if s.authorization_cache_enabled and locally_usable:
            entry = self._cache.get(id_tag)
            if entry is not None:
                if is_valid(entry, now):
                    if locally_accepting:
                        return AuthOutcome(
                            LocalDecision.Accepted, AuthorizationStatus.Accepted, entry.parent_id_tag, AuthSource.Cache
                        )
                elif not online:
                    return _rejected(entry, now, AuthSource.Cache)
                # Online with a stale or negative cache entry: the CSMS may know better.

        return self._unknown(online)

    def _unknown(self, online: bool) -> AuthOutcome:
        if online:
            return AuthOutcome(LocalDecision.AskCsms, None, None, AuthSource.NoSource)
        if self.settings.allow_offline_tx_for_unknown_id:
            return AuthOutcome(LocalDecision.Accepted, AuthorizationStatus.Accepted, None, AuthSource.OfflineUnknown)
        return AuthOutcome(LocalDecision.Rejected, AuthorizationStatus.Invalid, None, AuthSource.NoSource)

    def _listed(self, id_tag: str) -> bool:
        return self.settings.local_auth_list_enabled and id_tag in self._list

    def parent_of(self, id_tag: str, now: datetime) -> str | None:
        """The parentIdTag of ``id_tag`` from the (enabled) list, else the (enabled) cache; ``None`` if unknown.

        Only a *valid* entry counts: a blocked or expired card must not stop a group-mate's transaction on
        local data. ``None`` means "ask the CSMS" (its Authorize.conf carries the parentIdTag).
        """
        _require_aware(now)
        if self.settings.local_auth_list_enabled and id_tag in self._list:
            entry = self._list[id_tag]
            return entry.parent_id_tag if is_valid(entry, now) else None
        if self.settings.authorization_cache_enabled:
            cached = self._cache.get(id_tag)
            if cached is not None and is_valid(cached, now):
                return cached.parent_id_tag
        return None

    @staticmethod
    def stop_allowed(
        presented: str, presented_parent: str | None, session_id_tag: str, session_parent: str | None
    ) -> bool:
        """Whether the presented card may stop a transaction started with ``session_id_tag``.

        Yes if it is the same idTag (TC_068), or if both have the same non-empty parentIdTag (TC_069). Exact
        comparison. ``presented_parent`` comes from :meth:`parent_of` or the CSMS's Authorize.conf; the runtime
        must only pass a parent of a card that is itself authorized.
        """
        if presented == session_id_tag:
            return True
        return bool(presented_parent) and presented_parent == session_parent

    # -- Authorization Cache ----------------------------------------------------------------------------

    def csms_answered(
        self,
        id_tag: str,
        status: str,
        expiry_date: datetime | None,
        parent_id_tag: str | None,
        now: datetime,
    ) -> list[CacheChange]:
        """Record an IdTagInfo the CSMS sent for ``id_tag``; returns the cache changes to persist, in order.

        Nothing changes when the cache is disabled or the idTag is in the (enabled) Local Authorization List.
        """
        _require_aware(now)
        if expiry_date is not None:
            _require_aware(expiry_date)
        s = self.settings
        if not s.authorization_cache_enabled or self._listed(id_tag) or s.cache_max_entries == 0:
            return []
        if status == AuthorizationStatus.ConcurrentTx:
            status = AuthorizationStatus.Accepted
        entry = IdTagEntry(id_tag, status, expiry_date, parent_id_tag or None)
        self._cache.pop(id_tag, None)
        self._cache[id_tag] = entry
        changes = [CacheChange(put=entry)]
        while len(self._cache) > s.cache_max_entries:
            victim = self._eviction_victim(now, keep=id_tag)
            del self._cache[victim]
            changes.append(CacheChange(delete=victim))
        return changes

    def _eviction_victim(self, now: datetime, keep: str) -> str:
        candidates = [tag for tag in self._cache if tag != keep]
        for tag in candidates:
            if not is_valid(self._cache[tag], now):
                return tag
        return candidates[0]

    def clear_cache(self) -> bool:
        """ClearCache: empty the cache; ``True`` = ``Accepted`` (always: see the module docstring).

        The runtime then calls ``Store.auth_cache_clear()``.
        """
        self._cache.clear()
        return True

    def cache_entries(self) -> list[IdTagEntry]:
        """The cache, least recently confirmed first."""
        return list(self._cache.values())

    # -- Local Authorization List -----------------------------------------------------------------------

    def local_list_version(self) -> int:
        """GetLocalListVersion: -1 when the list is disabled (TC_042_1), else the installed version (0: none)."""
        if not self.settings.local_auth_list_enabled:
            return -1
        return self._list_version

    def local_list_entries(self) -> list[IdTagEntry]:
        """The Local Authorization List, by idTag."""
        return [self._list[tag] for tag in sorted(self._list)]

    def local_list_conflict(self, id_tag: str, status: str, now: datetime) -> bool:
        """Whether a CSMS answer for ``id_tag`` contradicts the (enabled) list's entry for it (§3.5.2).

        On ``True`` the runtime reports StatusNotification connectorId 0, errorCode ``LocalListConflict``.
        Only the verdict counts (accepted or not): a different expiryDate alone is no conflict.
        """
        _require_aware(now)
        if not self.settings.local_auth_list_enabled:
            return False
        entry = self._list.get(id_tag)
        if entry is None:
            return False
        csms_accepts = status in (AuthorizationStatus.Accepted, AuthorizationStatus.ConcurrentTx)
        return csms_accepts != is_valid(entry, now)

    def send_local_list(self, version: int, update_type: str, entries: Sequence[object] | None) -> LocalListResult:
        """SendLocalList.req (``entries`` = its ``localAuthorizationList``, camelCase as on the wire).

        In order of checks:

        - ``NotSupported`` when ``LocalAuthListEnabled`` is false (TC_043_1).
        - ``Failed`` for an unknown updateType or a negative listVersion (-1 means "not supported").
        - ``VersionMismatch`` for a Differential whose listVersion is not above the installed one (TC_043_2).
          A Full update may carry any version (it is how the CSMS resynchronises, §5.15).
        - ``Failed`` (TC_043_3) for more entries than ``SendLocalListMaxLength``; a malformed entry (idTag not
          a 1..20 character string, idTagInfo not an object, unknown status, unparsable expiryDate,
          parentIdTag too long); a duplicate idTag (§5.15 "MUST be unique"); a Full entry without idTagInfo;
          a resulting list longer than ``LocalAuthListMaxLength``.
        - ``Accepted`` otherwise: Full replaces the list; Differential upserts entries with idTagInfo and deletes
          those without (deleting an absent idTag is fine). An empty or missing list with Full empties the
          list; with Differential it changes nothing but the version (§5.15).

        A naive expiryDate (no offset) is read as UTC. All or nothing: on any failure nothing changes.
        """
        current = self._list_version
        full = update_type == UpdateType.Full
        if not self.settings.local_auth_list_enabled:
            return LocalListResult(UpdateStatus.NotSupported, full, current)
        if update_type not in (UpdateType.Full, UpdateType.Differential) or version < 0:
            return LocalListResult(UpdateStatus.Failed, full, current)
        if not full and version <= current:
            return LocalListResult(UpdateStatus.VersionMismatch, full, current)
        items = entries or []
        if len(items) > self.settings.send_local_list_max_length:
            return LocalListResult(UpdateStatus.Failed, full, current)

        parsed: list[IdTagEntry | str] = []
        seen: set[str] = set()
        for item in items:
            try:
                one = _parse_item(item)
            except _MalformedError:
                return LocalListResult(UpdateStatus.Failed, full, current)
            tag = one if isinstance(one, str) else one.id_tag
            if tag in seen or (full and isinstance(one, str)):
                return LocalListResult(UpdateStatus.Failed, full, current)
            seen.add(tag)
            parsed.append(one)

        new_list: dict[str, IdTagEntry] = {} if full else dict(self._list)
        for one in parsed:
            if isinstance(one, str):
                new_list.pop(one, None)
            else:
                new_list[one.id_tag] = one
        if len(new_list) > self.settings.local_auth_list_max_length:
            return LocalListResult(UpdateStatus.Failed, full, current)

        self._list = new_list
        self._list_version = version
        return LocalListResult(UpdateStatus.Accepted, full, version, parsed)


def _rejected(entry: IdTagEntry, now: datetime, source: AuthSource) -> AuthOutcome:
    return AuthOutcome(LocalDecision.Rejected, effective_status(entry, now), entry.parent_id_tag, source)


def _require_aware(at: datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: authorization needs timezone-aware datetimes")


_STATUSES: Final = frozenset(AuthorizationStatus)


class _MalformedError(ValueError):
    """An ``AuthorizationData`` item that does not fit the SendLocalList.req schema."""


def _parse_item(item: object) -> IdTagEntry | str:
    """One ``AuthorizationData``: an entry, or a ``str`` when it has no idTagInfo (a deletion)."""
    if not isinstance(item, Mapping):
        raise _MalformedError("not an object")
    id_tag = item.get("idTag")
    if not isinstance(id_tag, str) or not 0 < len(id_tag) <= ID_TAG_MAX_LENGTH:
        raise _MalformedError(f"bad idTag {id_tag!r}")
    info = item.get("idTagInfo")
    if info is None:
        return id_tag
    if not isinstance(info, Mapping):
        raise _MalformedError("idTagInfo is not an object")
    status = info.get("status")
    if not isinstance(status, str) or status not in _STATUSES:
        raise _MalformedError(f"bad status {status!r}")
    parent = info.get("parentIdTag")
    if parent is not None and (not isinstance(parent, str) or len(parent) > ID_TAG_MAX_LENGTH):
        raise _MalformedError(f"bad parentIdTag {parent!r}")
    return IdTagEntry(id_tag, status, _parse_expiry(info.get("expiryDate")), parent or None)


def _parse_expiry(value: object) -> datetime | None:
    """``None`` when absent, else a timezone-aware datetime (naive is read as UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        at = value
    elif isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise _MalformedError(f"bad expiryDate {value!r}") from None
    else:
        raise _MalformedError(f"bad expiryDate {value!r}")
    if at.tzinfo is None or at.utcoffset() is None:
        at = at.replace(tzinfo=UTC)
    return at
