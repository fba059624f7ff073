"""OCPP 1.6 authorization rules: Local Authorization List, Authorization Cache, offline behaviour.

Table-driven: each row names the situation (settings, online or not, which card) and the exact outcome. OCTT
test-case ids (REFERENCE §6) are named where a row re-expresses one.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargepoint.core.ocpp_auth import (
    Authorizer,
    AuthOutcome,
    AuthSettings,
    AuthSource,
    CacheChange,
    IdTagEntry,
    InvalidIdAction,
    LocalDecision,
    LocalListResult,
    UpdateStatus,
    invalid_id_action,
    is_valid,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PAST = NOW - timedelta(days=1)
FUTURE = NOW + timedelta(days=1)

LIST = [
    IdTagEntry("LIST_OK", "Accepted", None, "GROUP"),
    IdTagEntry("LIST_FUT", "Accepted", FUTURE, None),
    IdTagEntry("LIST_EXP", "Accepted", PAST, None),
    IdTagEntry("LIST_BLK", "Blocked", None, None),
    IdTagEntry("LIST_INV", "Invalid", None, None),
    IdTagEntry("LIST_XPD", "Expired", None, None),
    IdTagEntry("BOTH", "Accepted", None, None),
]
CACHE = [
    IdTagEntry("CACHE_OK", "Accepted", FUTURE, "GROUP"),
    IdTagEntry("CACHE_EXP", "Accepted", PAST, None),
    IdTagEntry("CACHE_BLK", "Blocked", None, None),
    IdTagEntry("BOTH", "Blocked", None, None),
]

DEFAULT = AuthSettings()  # LocalAuthorizeOffline, cache and list on; no pre-authorize; no unknown offline
PRE = AuthSettings(local_pre_authorize=True)
UNKNOWN_OK = AuthSettings(allow_offline_tx_for_unknown_id=True)
NO_OFFLINE = AuthSettings(local_authorize_offline=False)
NO_OFFLINE_UNKNOWN_OK = AuthSettings(local_authorize_offline=False, allow_offline_tx_for_unknown_id=True)
NO_LIST = AuthSettings(local_auth_list_enabled=False)
NO_LIST_UNKNOWN_OK = AuthSettings(local_auth_list_enabled=False, allow_offline_tx_for_unknown_id=True)
NO_CACHE = AuthSettings(authorization_cache_enabled=False)
NO_CACHE_UNKNOWN_OK = AuthSettings(authorization_cache_enabled=False, allow_offline_tx_for_unknown_id=True)
PRE_NO_LIST = AuthSettings(local_pre_authorize=True, local_auth_list_enabled=False)
PRE_NO_CACHE = AuthSettings(local_pre_authorize=True, authorization_cache_enabled=False)
PRE_UNKNOWN_OK = AuthSettings(local_pre_authorize=True, allow_offline_tx_for_unknown_id=True)

A = LocalDecision.Accepted
R = LocalDecision.Rejected
ASK = LocalDecision.AskCsms
L = AuthSource.LocalList
C = AuthSource.Cache
U = AuthSource.OfflineUnknown
N = AuthSource.NoSource

ASK_OUTCOME = AuthOutcome(ASK, None, None, N)


def authorizer(auth_settings: AuthSettings = DEFAULT) -> Authorizer:
    return Authorizer(auth_settings, local_list_version=1, local_list=LIST, cache=CACHE)


# -- decide ----------------------------------------------------------------------------------------------

DECIDE_CASES = [
    # id, settings, online, idTag, expected
    # Offline, local list (§3.5.2, §3.5.3)
    ("offline list accepted", DEFAULT, False, "LIST_OK", AuthOutcome(A, "Accepted", "GROUP", L)),
    ("offline list accepted until expiry", DEFAULT, False, "LIST_FUT", AuthOutcome(A, "Accepted", None, L)),
    ("offline list expired by date", DEFAULT, False, "LIST_EXP", AuthOutcome(R, "Expired", None, L)),
    ("offline list blocked", DEFAULT, False, "LIST_BLK", AuthOutcome(R, "Blocked", None, L)),
    ("offline list invalid", DEFAULT, False, "LIST_INV", AuthOutcome(R, "Invalid", None, L)),
    ("offline list status expired", DEFAULT, False, "LIST_XPD", AuthOutcome(R, "Expired", None, L)),
    ("offline list blocked beats unknown-ok", UNKNOWN_OK, False, "LIST_BLK", AuthOutcome(R, "Blocked", None, L)),
    ("offline list expired beats unknown-ok", UNKNOWN_OK, False, "LIST_EXP", AuthOutcome(R, "Expired", None, L)),
    ("offline list wins over cache", DEFAULT, False, "BOTH", AuthOutcome(A, "Accepted", None, L)),
    # Offline, cache (§3.5.1, §3.5.3)
    ("offline cache accepted", DEFAULT, False, "CACHE_OK", AuthOutcome(A, "Accepted", "GROUP", C)),
    ("offline cache expired rejected", DEFAULT, False, "CACHE_EXP", AuthOutcome(R, "Expired", None, C)),
    ("offline cache expired beats unknown-ok", UNKNOWN_OK, False, "CACHE_EXP", AuthOutcome(R, "Expired", None, C)),
    ("offline cache blocked beats unknown-ok", UNKNOWN_OK, False, "CACHE_BLK", AuthOutcome(R, "Blocked", None, C)),
    # Offline, unknown (§3.5.3)
    ("offline unknown rejected", DEFAULT, False, "NOBODY", AuthOutcome(R, "Invalid", None, N)),
    ("offline unknown accepted", UNKNOWN_OK, False, "NOBODY", AuthOutcome(A, "Accepted", None, U)),
    # Offline without LocalAuthorizeOffline: valid local entries do not authorize; rejections still apply
    ("no local offline: list ok is unknown", NO_OFFLINE, False, "LIST_OK", AuthOutcome(R, "Invalid", None, N)),
    ("no local offline: cache ok is unknown", NO_OFFLINE, False, "CACHE_OK", AuthOutcome(R, "Invalid", None, N)),
    ("no local offline, unknown ok", NO_OFFLINE_UNKNOWN_OK, False, "LIST_OK", AuthOutcome(A, "Accepted", None, U)),
    ("no local offline: blocked stays", NO_OFFLINE_UNKNOWN_OK, False, "LIST_BLK", AuthOutcome(R, "Blocked", None, L)),
    ("no local offline: cache blk", NO_OFFLINE_UNKNOWN_OK, False, "CACHE_BLK", AuthOutcome(R, "Blocked", None, C)),
    # Disabled stores are not consulted at all
    ("list disabled: list ok unknown", NO_LIST, False, "LIST_OK", AuthOutcome(R, "Invalid", None, N)),
    ("list disabled: blocked is unknown", NO_LIST_UNKNOWN_OK, False, "LIST_BLK", AuthOutcome(A, "Accepted", None, U)),
    ("list disabled: cache used", NO_LIST, False, "BOTH", AuthOutcome(R, "Blocked", None, C)),
    ("cache disabled: cache ok unknown", NO_CACHE, False, "CACHE_OK", AuthOutcome(R, "Invalid", None, N)),
    ("cache disabled: blk is unknown", NO_CACHE_UNKNOWN_OK, False, "CACHE_BLK", AuthOutcome(A, "Accepted", None, U)),
    ("cache disabled: list still used", NO_CACHE, False, "LIST_OK", AuthOutcome(A, "Accepted", "GROUP", L)),
    # Online without LocalPreAuthorize: always ask the CSMS
    ("online list ok asks", DEFAULT, True, "LIST_OK", ASK_OUTCOME),
    ("online list blocked asks", DEFAULT, True, "LIST_BLK", ASK_OUTCOME),
    ("online cache ok asks", DEFAULT, True, "CACHE_OK", ASK_OUTCOME),
    ("online unknown asks", DEFAULT, True, "NOBODY", ASK_OUTCOME),
    ("online unknown-ok still asks", UNKNOWN_OK, True, "NOBODY", ASK_OUTCOME),
    # Online with LocalPreAuthorize (TC_007 cache, TC_008 list)
    ("TC_008 pre list accepted", PRE, True, "LIST_OK", AuthOutcome(A, "Accepted", "GROUP", L)),
    ("pre list blocked", PRE, True, "LIST_BLK", AuthOutcome(R, "Blocked", None, L)),
    ("pre list expired by date", PRE, True, "LIST_EXP", AuthOutcome(R, "Expired", None, L)),
    ("pre list wins over cache", PRE, True, "BOTH", AuthOutcome(A, "Accepted", None, L)),
    ("TC_007 pre cache accepted", PRE, True, "CACHE_OK", AuthOutcome(A, "Accepted", "GROUP", C)),
    ("pre cache expired asks", PRE, True, "CACHE_EXP", ASK_OUTCOME),
    ("pre cache blocked asks", PRE, True, "CACHE_BLK", ASK_OUTCOME),
    ("pre unknown asks", PRE_UNKNOWN_OK, True, "NOBODY", ASK_OUTCOME),
    ("pre list disabled asks", PRE_NO_LIST, True, "LIST_OK", ASK_OUTCOME),
    ("pre list disabled: cache used", PRE_NO_LIST, True, "CACHE_OK", AuthOutcome(A, "Accepted", "GROUP", C)),
    ("pre cache disabled asks", PRE_NO_CACHE, True, "CACHE_OK", ASK_OUTCOME),
    # idTags are case-sensitive and compared exactly
    ("case: offline lower list is unknown", UNKNOWN_OK, False, "list_ok", AuthOutcome(A, "Accepted", None, U)),
    ("case: offline lower blk is unknown", UNKNOWN_OK, False, "list_blk", AuthOutcome(A, "Accepted", None, U)),
    ("case: offline lower cache unknown", DEFAULT, False, "cache_ok", AuthOutcome(R, "Invalid", None, N)),
    ("case: pre lower asks", PRE, True, "Cache_Ok", ASK_OUTCOME),
    ("exact: trailing space is another tag", DEFAULT, False, "LIST_OK ", AuthOutcome(R, "Invalid", None, N)),
]


@pytest.mark.parametrize(
    ("auth_settings", "online", "id_tag", "expected"),
    [case[1:] for case in DECIDE_CASES],
    ids=[case[0] for case in DECIDE_CASES],
)
def test_decide(auth_settings: AuthSettings, online: bool, id_tag: str, expected: AuthOutcome) -> None:
    assert authorizer(auth_settings).decide(id_tag, NOW, online) == expected


def test_settings_are_replaceable_by_change_configuration() -> None:
    auth = authorizer(DEFAULT)
    assert auth.decide("CACHE_OK", NOW, online=True) == ASK_OUTCOME
    auth.settings = dataclasses.replace(auth.settings, local_pre_authorize=True)
    assert auth.decide("CACHE_OK", NOW, online=True).decision is A


@pytest.mark.parametrize(
    ("expiry", "valid"),
    [(None, True), (NOW + timedelta(microseconds=1), True), (NOW, False), (NOW - timedelta(microseconds=1), False)],
    ids=["no expiry", "just before expiry", "at expiry", "just after expiry"],
)
def test_expiry_boundary(expiry: datetime | None, valid: bool) -> None:
    assert is_valid(IdTagEntry("T", "Accepted", expiry), NOW) is valid
    auth = Authorizer(DEFAULT, local_list=[IdTagEntry("T", "Accepted", expiry)])
    assert auth.decide("T", NOW, online=False).decision is (A if valid else R)


def test_expiry_in_another_timezone_compares_by_instant() -> None:
    plus_two = datetime(2025, 3, 1, 13, 30, tzinfo=timezone(timedelta(hours=2)))  # 11:30Z
    auth = Authorizer(DEFAULT, cache=[IdTagEntry("T", "Accepted", plus_two)])
    assert auth.decide("T", NOW, online=False) == AuthOutcome(R, "Expired", None, C)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        authorizer().decide("LIST_OK", datetime(2025, 3, 1, 12, 0), online=False)


# -- Authorization Cache ---------------------------------------------------------------------------------


def test_tc_007_answer_is_cached_then_used_with_local_pre_authorize() -> None:
    auth = Authorizer(PRE)
    assert auth.decide("CARD", NOW, online=True) == ASK_OUTCOME
    changes = auth.csms_answered("CARD", "Accepted", FUTURE, "G", NOW)
    assert changes == [CacheChange(put=IdTagEntry("CARD", "Accepted", FUTURE, "G"))]
    assert auth.decide("CARD", NOW, online=True) == AuthOutcome(A, "Accepted", "G", C)
    assert auth.decide("CARD", NOW, online=False) == AuthOutcome(A, "Accepted", "G", C)


def test_negative_answers_are_cached_too() -> None:
    auth = Authorizer(UNKNOWN_OK, cache=[IdTagEntry("CARD", "Accepted")])
    changes = auth.csms_answered("CARD", "Blocked", None, None, NOW)
    assert changes == [CacheChange(put=IdTagEntry("CARD", "Blocked"))]
    assert auth.decide("CARD", NOW, online=False) == AuthOutcome(R, "Blocked", None, C)


def test_concurrent_tx_is_cached_as_accepted() -> None:
    auth = Authorizer(DEFAULT)
    assert auth.csms_answered("CARD", "ConcurrentTx", None, None, NOW) == [
        CacheChange(put=IdTagEntry("CARD", "Accepted"))
    ]


def test_empty_parent_is_stored_as_none() -> None:
    auth = Authorizer(DEFAULT)
    assert auth.csms_answered("CARD", "Accepted", None, "", NOW) == [CacheChange(put=IdTagEntry("CARD", "Accepted"))]


def test_disabled_cache_is_not_written() -> None:
    auth = Authorizer(NO_CACHE)
    assert auth.csms_answered("CARD", "Accepted", None, None, NOW) == []
    assert auth.cache_entries() == []


def test_ids_in_the_local_list_are_not_cached() -> None:
    auth = authorizer(DEFAULT)
    assert auth.csms_answered("LIST_BLK", "Accepted", None, None, NOW) == []
    assert "LIST_BLK" not in {e.id_tag for e in auth.cache_entries()}


def test_ids_in_a_disabled_local_list_are_cached() -> None:
    auth = authorizer(NO_LIST)
    assert auth.csms_answered("LIST_BLK", "Accepted", None, None, NOW) == [
        CacheChange(put=IdTagEntry("LIST_BLK", "Accepted"))
    ]


def test_list_match_is_case_sensitive_for_caching() -> None:
    auth = authorizer(DEFAULT)
    assert auth.csms_answered("list_blk", "Accepted", None, None, NOW) == [
        CacheChange(put=IdTagEntry("list_blk", "Accepted"))
    ]


def _cache(*tags_and_statuses: tuple[str, str]) -> list[IdTagEntry]:
    return [IdTagEntry(tag, status) for tag, status in tags_and_statuses]


EVICTION_CASES = [
    # id, initial cache (oldest first), max, answers (tag, status), expected deletions, expected cache order
    ("oldest goes", _cache(("A", "Accepted"), ("B", "Accepted"), ("C", "Accepted")), 3, [("D", "Accepted")], ["A"],
     ["B", "C", "D"]),
    ("invalid goes first", _cache(("A", "Accepted"), ("B", "Blocked"), ("C", "Accepted")), 3, [("D", "Accepted")],
     ["B"], ["A", "C", "D"]),
    ("refreshed entry is young", _cache(("A", "Accepted"), ("B", "Accepted")), 2,
     [("A", "Accepted"), ("C", "Accepted")], ["B"], ["A", "C"]),
    ("new entry is never the victim", _cache(("A", "Accepted"), ("B", "Accepted")), 2, [("C", "Blocked")], ["A"],
     ["B", "C"]),
    ("update in place evicts nothing", _cache(("A", "Accepted"), ("B", "Accepted")), 2, [("A", "Blocked")], [],
     ["B", "A"]),
    ("shrunk capacity evicts several", _cache(("A", "Accepted"), ("B", "Accepted"), ("C", "Accepted")), 1,
     [("D", "Accepted")], ["A", "B", "C"], ["D"]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("initial", "max_entries", "answers", "deleted", "order"),
    [case[1:] for case in EVICTION_CASES],
    ids=[case[0] for case in EVICTION_CASES],
)
def test_cache_eviction(
    initial: list[IdTagEntry], max_entries: int, answers: list[tuple[str, str]], deleted: list[str], order: list[str]
) -> None:
    auth = Authorizer(AuthSettings(cache_max_entries=max_entries), cache=initial)
    changes: list[CacheChange] = []
    for tag, status in answers:
        changes += auth.csms_answered(tag, status, None, None, NOW)
    assert [c.delete for c in changes if c.delete is not None] == deleted
    assert [e.id_tag for e in auth.cache_entries()] == order


def test_expired_entries_are_evicted_before_valid_ones() -> None:
    initial = [IdTagEntry("A", "Accepted", FUTURE), IdTagEntry("B", "Accepted", PAST)]
    auth = Authorizer(AuthSettings(cache_max_entries=2), cache=initial)
    changes = auth.csms_answered("C", "Accepted", None, None, NOW)
    assert changes[1:] == [CacheChange(delete="B")]


def test_zero_capacity_cache_stores_nothing() -> None:
    auth = Authorizer(AuthSettings(cache_max_entries=0))
    assert auth.csms_answered("A", "Accepted", None, None, NOW) == []


def test_tc_061_clear_cache() -> None:
    auth = authorizer(PRE)
    assert auth.decide("CACHE_OK", NOW, online=True).decision is A
    assert auth.clear_cache() is True
    assert auth.cache_entries() == []
    assert auth.decide("CACHE_OK", NOW, online=True) == ASK_OUTCOME
    assert auth.decide("LIST_OK", NOW, online=True).decision is A  # the list is not the cache


def test_clear_cache_while_disabled_clears_so_nothing_stale_returns() -> None:
    auth = authorizer(NO_CACHE)
    assert auth.clear_cache() is True
    auth.settings = DEFAULT
    assert auth.decide("CACHE_BLK", NOW, online=False) == AuthOutcome(R, "Invalid", None, N)


@settings(max_examples=200, deadline=None)
@given(
    max_entries=st.integers(min_value=1, max_value=4),
    answers=st.lists(
        st.tuples(st.sampled_from(["A", "a", "B", "C", "D", "E"]), st.sampled_from(["Accepted", "Blocked"])),
        max_size=20,
    ),
)
def test_cache_changes_replayed_on_a_store_match_the_cache(max_entries: int, answers: list[tuple[str, str]]) -> None:
    auth = Authorizer(AuthSettings(cache_max_entries=max_entries))
    store: dict[str, IdTagEntry] = {}
    for tag, status in answers:
        for change in auth.csms_answered(tag, status, None, None, NOW):
            if change.put is not None:
                assert change.delete is None
                store[change.put.id_tag] = change.put
            else:
                assert change.delete is not None
                del store[change.delete]
        assert len(auth.cache_entries()) <= max_entries
    assert sorted(auth.cache_entries(), key=lambda e: e.id_tag) == sorted(store.values(), key=lambda e: e.id_tag)


# -- Local Authorization List ----------------------------------------------------------------------------


def test_tc_042_1_version_is_minus_one_when_disabled() -> None:
    assert authorizer(NO_LIST).local_list_version() == -1


def test_tc_042_2_version_is_zero_when_empty() -> None:
    assert Authorizer(DEFAULT).local_list_version() == 0


def test_tc_043_1_not_supported_when_disabled() -> None:
    auth = authorizer(NO_LIST)
    result = auth.send_local_list(5, "Full", [{"idTag": "X", "idTagInfo": {"status": "Accepted"}}])
    assert result.status == "NotSupported"
    auth.settings = DEFAULT
    assert auth.local_list_version() == 1
    assert auth.local_list_entries() == sorted(LIST, key=lambda e: e.id_tag)


def test_tc_043_2_version_mismatch() -> None:
    auth = Authorizer(DEFAULT)
    assert auth.send_local_list(2, "Full", [{"idTag": "A", "idTagInfo": {"status": "Accepted"}}]).status == "Accepted"
    assert auth.local_list_version() == 2
    diff = [{"idTag": "B", "idTagInfo": {"status": "Accepted"}}]
    assert auth.send_local_list(5, "Differential", diff).status == "Accepted"
    assert auth.local_list_version() == 5
    assert auth.send_local_list(3, "Differential", [{"idTag": "C"}]).status == "VersionMismatch"
    assert auth.send_local_list(5, "Differential", [{"idTag": "C"}]).status == "VersionMismatch"
    assert auth.local_list_version() == 5
    assert [e.id_tag for e in auth.local_list_entries()] == ["A", "B"]


def test_full_update_may_lower_the_version() -> None:
    auth = Authorizer(DEFAULT, local_list_version=9)
    assert auth.send_local_list(1, "Full", []).status == "Accepted"
    assert auth.local_list_version() == 1


def test_tc_043_full_then_differential_and_tc_008_use() -> None:
    auth = Authorizer(PRE)
    full = [
        {"idTag": "A", "idTagInfo": {"status": "Accepted", "parentIdTag": "G"}},
        {"idTag": "B", "idTagInfo": {"status": "Blocked"}},
        {"idTag": "C", "idTagInfo": {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00Z"}},
    ]
    result = auth.send_local_list(1, "Full", full)
    expected_full: list[IdTagEntry | str] = [
        IdTagEntry("A", "Accepted", None, "G"),
        IdTagEntry("B", "Blocked"),
        IdTagEntry("C", "Accepted", datetime(2030, 1, 1, tzinfo=UTC)),
    ]
    assert result == LocalListResult(UpdateStatus.Accepted, True, 1, expected_full)
    assert auth.decide("A", NOW, online=True) == AuthOutcome(A, "Accepted", "G", L)

    diff = [{"idTag": "B", "idTagInfo": {"status": "Accepted"}}, {"idTag": "C"}, {"idTag": "NOT_THERE"}]
    result = auth.send_local_list(2, "Differential", diff)
    assert result == LocalListResult(UpdateStatus.Accepted, False, 2, [IdTagEntry("B", "Accepted"), "C", "NOT_THERE"])
    assert auth.local_list_entries() == [IdTagEntry("A", "Accepted", None, "G"), IdTagEntry("B", "Accepted")]


@pytest.mark.parametrize("empty", [None, []], ids=["absent", "empty"])
def test_empty_full_update_clears_and_empty_differential_only_bumps_version(
    empty: list[dict[str, object]] | None,
) -> None:
    auth = authorizer()
    assert auth.send_local_list(2, "Differential", empty).status == "Accepted"
    assert len(auth.local_list_entries()) == len(LIST)
    assert auth.local_list_version() == 2
    result = auth.send_local_list(3, "Full", empty)
    assert result == LocalListResult(UpdateStatus.Accepted, True, 3, [])
    assert auth.local_list_entries() == []


def test_naive_expiry_date_is_read_as_utc() -> None:
    auth = Authorizer(DEFAULT)
    auth.send_local_list(
        1, "Full", [{"idTag": "A", "idTagInfo": {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00"}}]
    )
    assert auth.local_list_entries()[0].expiry_date == datetime(2030, 1, 1, tzinfo=UTC)


def test_id_tags_differing_in_case_are_distinct_entries() -> None:
    auth = Authorizer(DEFAULT)
    entries = [
        {"idTag": "abc", "idTagInfo": {"status": "Accepted"}},
        {"idTag": "ABC", "idTagInfo": {"status": "Blocked"}},
    ]
    assert auth.send_local_list(1, "Full", entries).status == "Accepted"
    assert auth.decide("abc", NOW, online=False).decision is A
    assert auth.decide("ABC", NOW, online=False).decision is R


OK = {"status": "Accepted"}
SMALL = AuthSettings(send_local_list_max_length=2, local_auth_list_max_length=3)

FAILED_CASES = [
    # id, settings, version, updateType, entries
    ("TC_043_3 more than SendLocalListMaxLength", SMALL, 2, "Full",
     [{"idTag": t, "idTagInfo": OK} for t in ("X", "Y", "Z")]),
    ("result longer than LocalAuthListMaxLength", SMALL, 2, "Differential",
     [{"idTag": t, "idTagInfo": OK} for t in ("X", "Y")]),
    ("duplicate idTag", DEFAULT, 2, "Full", [{"idTag": "X", "idTagInfo": OK}, {"idTag": "X", "idTagInfo": OK}]),
    ("duplicate idTag in differential", DEFAULT, 2, "Differential", [{"idTag": "X", "idTagInfo": OK}, {"idTag": "X"}]),
    ("full entry without idTagInfo", DEFAULT, 2, "Full", [{"idTag": "X"}]),
    ("unknown status", DEFAULT, 2, "Full", [{"idTag": "X", "idTagInfo": {"status": "accepted"}}]),
    ("missing status", DEFAULT, 2, "Full", [{"idTag": "X", "idTagInfo": {}}]),
    ("idTag too long", DEFAULT, 2, "Full", [{"idTag": "X" * 21, "idTagInfo": OK}]),
    ("empty idTag", DEFAULT, 2, "Full", [{"idTag": "", "idTagInfo": OK}]),
    ("idTag not a string", DEFAULT, 2, "Full", [{"idTag": 1234, "idTagInfo": OK}]),
    ("idTag missing", DEFAULT, 2, "Full", [{"idTagInfo": OK}]),
    ("item not an object", DEFAULT, 2, "Full", ["X"]),
    ("idTagInfo not an object", DEFAULT, 2, "Full", [{"idTag": "X", "idTagInfo": "Accepted"}]),
    ("bad expiryDate", DEFAULT, 2, "Full", [{"idTag": "X", "idTagInfo": {"status": "Accepted", "expiryDate": "soon"}}]),
    ("expiryDate not a string", DEFAULT, 2, "Full",
     [{"idTag": "X", "idTagInfo": {"status": "Accepted", "expiryDate": 5}}]),
    ("parentIdTag too long", DEFAULT, 2, "Full",
     [{"idTag": "X", "idTagInfo": {"status": "Accepted", "parentIdTag": "P" * 21}}]),
    ("unknown updateType", DEFAULT, 2, "full", [{"idTag": "X", "idTagInfo": OK}]),
    ("negative version", DEFAULT, -1, "Full", [{"idTag": "X", "idTagInfo": OK}]),
]  # fmt: skip


@pytest.mark.parametrize(
    ("auth_settings", "version", "update_type", "entries"),
    [case[1:] for case in FAILED_CASES],
    ids=[case[0] for case in FAILED_CASES],
)
def test_send_local_list_failed_changes_nothing(
    auth_settings: AuthSettings, version: int, update_type: str, entries: list[object]
) -> None:
    initial = [IdTagEntry("K1", "Accepted"), IdTagEntry("K2", "Blocked")]
    auth = Authorizer(auth_settings, local_list_version=1, local_list=initial)
    result = auth.send_local_list(version, update_type, entries)
    assert result.status == "Failed"
    assert result.entries == []
    assert auth.local_list_version() == 1
    assert auth.local_list_entries() == initial


def test_list_at_exactly_max_length_is_accepted() -> None:
    auth = Authorizer(SMALL, local_list_version=1, local_list=[IdTagEntry("K1", "Accepted")])
    entries = [{"idTag": t, "idTagInfo": OK} for t in ("X", "Y")]
    assert auth.send_local_list(2, "Differential", entries).status == "Accepted"
    assert len(auth.local_list_entries()) == 3


# -- the local list against a straightforward model --------------------------------------------------------

TAGS = ["A", "a", "B", "C", "D"]
STATUSES = ["Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"]
MODEL_SETTINGS = AuthSettings(send_local_list_max_length=3, local_auth_list_max_length=4)

item_strategy = st.builds(
    lambda tag, info: {"idTag": tag} if info is None else {"idTag": tag, "idTagInfo": info},
    st.sampled_from(TAGS),
    st.one_of(
        st.none(),
        st.builds(
            lambda status, parent: {"status": status} if parent is None else {"status": status, "parentIdTag": parent},
            st.sampled_from(STATUSES),
            st.one_of(st.none(), st.sampled_from(["G", "g"])),
        ),
    ),
)
request_strategy = st.tuples(
    st.integers(min_value=-1, max_value=8),
    st.sampled_from(["Full", "Differential"]),
    st.one_of(st.none(), st.lists(item_strategy, max_size=4)),
)


def model_send(
    model: dict[str, tuple[str, str | None]],
    model_version: int,
    request: tuple[int, str, list[dict[str, object]] | None],
) -> tuple[str, dict[str, tuple[str, str | None]], int]:
    version, update_type, entries = request
    items = entries or []
    if version < 0:
        return "Failed", model, model_version
    if update_type == "Differential" and version <= model_version:
        return "VersionMismatch", model, model_version
    if len(items) > MODEL_SETTINGS.send_local_list_max_length:
        return "Failed", model, model_version
    tags = [item["idTag"] for item in items]
    if len(set(tags)) != len(tags):
        return "Failed", model, model_version
    if update_type == "Full" and any("idTagInfo" not in item for item in items):
        return "Failed", model, model_version
    new = {} if update_type == "Full" else dict(model)
    for item in items:
        tag = str(item["idTag"])
        info = item.get("idTagInfo")
        if isinstance(info, dict):
            new[tag] = (info["status"], info.get("parentIdTag"))
        else:
            new.pop(tag, None)
    if len(new) > MODEL_SETTINGS.local_auth_list_max_length:
        return "Failed", model, model_version
    return "Accepted", new, version


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(request_strategy, max_size=12))
def test_local_list_matches_model_and_persisted_form(
    requests: list[tuple[int, str, list[dict[str, object]] | None]],
) -> None:
    auth = Authorizer(MODEL_SETTINGS)
    model: dict[str, tuple[str, str | None]] = {}
    model_version = 0
    stored: dict[str, IdTagEntry] = {}  # what Store.local_list_update would hold
    stored_version = 0
    for request in requests:
        status, model, model_version = model_send(model, model_version, request)
        result = auth.send_local_list(*request)
        assert result.status == status
        if result.status == "Accepted":
            if result.full:
                stored = {}
            for entry in result.entries:
                if isinstance(entry, str):
                    stored.pop(entry, None)
                else:
                    stored[entry.id_tag] = entry
            stored_version = result.version
        actual = {e.id_tag: (e.status, e.parent_id_tag) for e in auth.local_list_entries()}
        assert actual == model
        assert auth.local_list_version() == model_version == stored_version
        assert {t: (e.status, e.parent_id_tag) for t, e in stored.items()} == model


@settings(max_examples=300, deadline=None)
@given(
    status=st.sampled_from(STATUSES),
    expired=st.booleans(),
    online=st.booleans(),
    flags=st.tuples(*[st.booleans()] * 5),
    in_list=st.booleans(),
)
def test_an_invalid_known_entry_is_never_accepted(
    status: str, expired: bool, online: bool, flags: tuple[bool, bool, bool, bool, bool], in_list: bool
) -> None:
    entry = IdTagEntry("T", status, PAST if expired else None)
    auth_settings = AuthSettings(*flags)
    auth = Authorizer(auth_settings, local_list=[entry] if in_list else [], cache=[] if in_list else [entry])
    outcome = auth.decide("T", NOW, online)
    consulted = auth_settings.local_auth_list_enabled if in_list else auth_settings.authorization_cache_enabled
    if consulted and not is_valid(entry, NOW):
        assert outcome.decision is not A
    if online and not auth_settings.local_pre_authorize:
        assert outcome == ASK_OUTCOME


# -- LocalListConflict -------------------------------------------------------------------------------------

CONFLICT_CASES = [
    ("list accepted, csms blocked", DEFAULT, "LIST_OK", "Blocked", True),
    ("list accepted, csms accepted", DEFAULT, "LIST_OK", "Accepted", False),
    ("list accepted, csms concurrent", DEFAULT, "LIST_OK", "ConcurrentTx", False),
    ("list blocked, csms accepted", DEFAULT, "LIST_BLK", "Accepted", True),
    ("list expired by date, csms accepted", DEFAULT, "LIST_EXP", "Accepted", True),
    ("not in list", DEFAULT, "NOBODY", "Blocked", False),
    ("list disabled", NO_LIST, "LIST_OK", "Blocked", False),
]


@pytest.mark.parametrize(
    ("auth_settings", "id_tag", "status", "conflict"),
    [case[1:] for case in CONFLICT_CASES],
    ids=[case[0] for case in CONFLICT_CASES],
)
def test_local_list_conflict(auth_settings: AuthSettings, id_tag: str, status: str, conflict: bool) -> None:
    assert authorizer(auth_settings).local_list_conflict(id_tag, status, NOW) is conflict


# -- stopping with another card (TC_068, TC_069) -----------------------------------------------------------

STOP_CASES = [
    ("TC_068 same idTag", "CARD", None, "CARD", None, True),
    ("TC_068 same idTag, parents differ", "CARD", "G1", "CARD", "G2", True),
    ("TC_068 other idTag, no parents", "OTHER", None, "CARD", None, False),
    ("TC_069 same parent", "OTHER", "G", "CARD", "G", True),
    ("different parents", "OTHER", "G1", "CARD", "G2", False),
    ("presented has no parent", "OTHER", None, "CARD", "G", False),
    ("session has no parent", "OTHER", "G", "CARD", None, False),
    ("empty parents are no parents", "OTHER", "", "CARD", "", False),
    ("parent card itself is not its children", "G", None, "CARD", "G", False),
    ("idTag case differs", "card", None, "CARD", None, False),
    ("parent case differs", "OTHER", "g", "CARD", "G", False),
]


@pytest.mark.parametrize(
    ("presented", "presented_parent", "session_tag", "session_parent", "allowed"),
    [case[1:] for case in STOP_CASES],
    ids=[case[0] for case in STOP_CASES],
)
def test_stop_allowed(
    presented: str, presented_parent: str | None, session_tag: str, session_parent: str | None, allowed: bool
) -> None:
    assert Authorizer.stop_allowed(presented, presented_parent, session_tag, session_parent) is allowed


PARENT_CASES = [
    ("valid list entry", DEFAULT, "LIST_OK", "GROUP"),
    ("valid cache entry", DEFAULT, "CACHE_OK", "GROUP"),
    ("list entry without parent", DEFAULT, "LIST_FUT", None),
    ("blocked list entry", DEFAULT, "LIST_BLK", None),
    ("expired cache entry", DEFAULT, "CACHE_EXP", None),
    ("unknown", DEFAULT, "NOBODY", None),
    ("list disabled", NO_LIST, "LIST_OK", None),
    ("cache disabled", NO_CACHE, "CACHE_OK", None),
    ("case differs", DEFAULT, "list_ok", None),
]


@pytest.mark.parametrize(
    ("auth_settings", "id_tag", "parent"),
    [case[1:] for case in PARENT_CASES],
    ids=[case[0] for case in PARENT_CASES],
)
def test_parent_of(auth_settings: AuthSettings, id_tag: str, parent: str | None) -> None:
    assert authorizer(auth_settings).parent_of(id_tag, NOW) == parent


def test_tc_069_with_local_data() -> None:
    auth = Authorizer(
        DEFAULT, cache=[IdTagEntry("START", "Accepted", None, "FLEET"), IdTagEntry("MATE", "Accepted", None, "FLEET")]
    )
    assert auth.stop_allowed("MATE", auth.parent_of("MATE", NOW), "START", auth.parent_of("START", NOW))


# -- invalid id after start (TC_037_2, TC_037_3) -----------------------------------------------------------

INVALID_ID_CASES = [
    ("TC_037_3 stop at once", True, None, 0, InvalidIdAction.Stop),
    ("stop ignores max energy", True, 1000, 10, InvalidIdAction.Stop),
    ("stop even above max energy", True, 1000, 5000, InvalidIdAction.Stop),
    ("TC_037_2 no max: suspend at once", False, None, 0, InvalidIdAction.Suspend),
    ("no max: suspend whatever delivered", False, None, 5000, InvalidIdAction.Suspend),
    ("below max: continue", False, 1000, 0, InvalidIdAction.Continue),
    ("just below max: continue", False, 1000, 999, InvalidIdAction.Continue),
    ("at max: suspend", False, 1000, 1000, InvalidIdAction.Suspend),
    ("above max: suspend", False, 1000, 1500, InvalidIdAction.Suspend),
    ("max zero: suspend", False, 0, 0, InvalidIdAction.Suspend),
    ("negative max reads as zero", False, -5, 0, InvalidIdAction.Suspend),
]


@pytest.mark.parametrize(
    ("stop_on_invalid", "max_energy_Wh", "delivered_Wh", "action"),
    [case[1:] for case in INVALID_ID_CASES],
    ids=[case[0] for case in INVALID_ID_CASES],
)
def test_invalid_id_action(
    stop_on_invalid: bool, max_energy_Wh: int | None, delivered_Wh: int, action: InvalidIdAction
) -> None:
    assert invalid_id_action(stop_on_invalid, max_energy_Wh, delivered_Wh) == action
    assert invalid_id_action(stop_on_invalid, max_energy_Wh, delivered_Wh) == str(action)  # plain-string compatible


def test_negative_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="cache_max_entries"):
        AuthSettings(cache_max_entries=-1)


@pytest.mark.parametrize("where", ["list", "cache"])
@pytest.mark.parametrize(("status", "expiry"), [("Blocked", None), ("Accepted", PAST)], ids=["blocked", "expired"])
def test_parent_of_an_invalid_card_is_not_given(where: str, status: str, expiry: datetime | None) -> None:
    entry = IdTagEntry("T", status, expiry, "FLEET")
    auth = Authorizer(DEFAULT, local_list=[entry] if where == "list" else [], cache=[entry] if where == "cache" else [])
    assert auth.parent_of("T", NOW) is None
