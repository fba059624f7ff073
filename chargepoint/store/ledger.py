"""The tamper-evident ledger: every finished session and every payment step, hash-chained and optionally signed.

Each record holds its sequence number, time, kind, body (canonical JSON) and the hash of the record before it;
its own hash is SHA-256 over all of that, so changing, removing or reordering any record breaks every hash after
it. With a device key (Ed25519, ``<storage.dir>/ledger.key``, 0600) each hash is also signed: rewriting the
whole chain then needs the key, which never leaves the charger. Records are appended in the same SQLite
transaction as the change they record (a session's end, a payment step), so the ledger and the books never
disagree after a power cut.

``verify`` reads a chain and names the first record that is altered, missing, out of order or wrongly signed.
What a chain alone cannot show is records cut off at its end: compare the head (``chargepoint ledger verify``
prints it) with one kept elsewhere, e.g. in the operator's exports.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

GENESIS: Final = "0" * 64
KEY_FILE: Final = "ledger.key"
"""The device key's file name in the state directory."""
PUBLIC_KEY_KV: Final = "ledger.public_key"


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    seq: int
    at: str
    kind: str
    body: dict[str, Any]
    prev_hash: str
    hash: str
    signature: str | None

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "body": self.body, "prev_hash": self.prev_hash,
                "hash": self.hash, "signature": self.signature}


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    records: int
    head_seq: int | None
    head_hash: str | None
    problem: str | None = None  # the first one found
    signed: bool = False


def canonical(body: Mapping[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def record_hash(seq: int, at: str, kind: str, body_text: str, prev_hash: str) -> str:
    return hashlib.sha256("\n".join((str(seq), at, kind, prev_hash, body_text)).encode()).hexdigest()


class LedgerSigner:
    """The device key that signs each record's hash."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path) -> LedgerSigner:
        """The key at ``path``, made (0600, atomically) on first use."""
        if path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError(f"{path} is not an Ed25519 private key")
            return cls(key)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        temp = path.with_name(path.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
        return cls(key)

    @property
    def public_key_b64(self) -> str:
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def sign(self, hash_hex: str) -> str:
        return base64.b64encode(self._key.sign(bytes.fromhex(hash_hex))).decode()


def public_key_of(path: Path) -> str | None:
    """The public half of the device key at ``path`` (base64), or None if it cannot be read."""
    try:
        return LedgerSigner.load_or_create(path).public_key_b64 if path.exists() else None
    except (OSError, ValueError):
        return None


def append(conn: sqlite3.Connection, kind: str, body: Mapping[str, Any], at_text: str,
           signer: LedgerSigner | None) -> LedgerRecord:
    """Append one record (inside the caller's transaction)."""
    last = conn.execute("SELECT seq, hash FROM ledger ORDER BY seq DESC LIMIT 1").fetchone()
    seq = 1 if last is None else int(last["seq"]) + 1
    prev = GENESIS if last is None else str(last["hash"])
    body_text = canonical(body)
    digest = record_hash(seq, at_text, kind, body_text, prev)
    signature = None
    if signer is not None:
        signature = signer.sign(digest)
        conn.execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
                     (PUBLIC_KEY_KV, signer.public_key_b64))
    conn.execute("INSERT INTO ledger (seq, at, kind, body, prev_hash, hash, signature) VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (seq, at_text, kind, body_text, prev, digest, signature))
    return LedgerRecord(seq, at_text, kind, json.loads(body_text), prev, digest, signature)


def records(conn: sqlite3.Connection, since_seq: int = 0) -> list[LedgerRecord]:
    rows = conn.execute("SELECT seq, at, kind, body, prev_hash, hash, signature FROM ledger WHERE seq > ? "
                        "ORDER BY rowid", (since_seq,)).fetchall()
    return [LedgerRecord(int(r["seq"]), str(r["at"]), str(r["kind"]), _body(str(r["body"])), str(r["prev_hash"]),
                         str(r["hash"]), None if r["signature"] is None else str(r["signature"])) for r in rows]


def session_hashes(conn: sqlite3.Connection, session_ids: Iterable[str]) -> dict[str, tuple[int, str]]:
    """session_id -> (seq, hash) of its ledger record, for the sessions asked (the newest records searched)."""
    wanted = set(session_ids)
    found: dict[str, tuple[int, str]] = {}
    if not wanted:
        return found
    for row in conn.execute("SELECT seq, body, hash FROM ledger WHERE kind = 'session' ORDER BY seq DESC LIMIT ?",
                            (max(100, 4 * len(wanted)),)):
        session_id = _body(str(row["body"])).get("session_id")
        if session_id in wanted and session_id not in found:
            found[session_id] = (int(row["seq"]), str(row["hash"]))
    return found


def raw_rows(conn: sqlite3.Connection) -> list[tuple[int, str, str, str, str, str, str | None]]:
    """The rows as stored (body text untouched), in the order the file holds them."""
    return [(int(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), None if r[6] is None else str(r[6]))
            for r in conn.execute("SELECT seq, at, kind, body, prev_hash, hash, signature FROM ledger ORDER BY rowid")]


def verify(rows: Iterable[tuple[int, str, str, str, str, str, str | None]],
           public_key_b64: str | None) -> Verdict:
    """Check a chain, record by record; the verdict names the first problem."""
    key = None
    if public_key_b64:
        key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key_b64))
    expected_seq, prev_hash, count = 1, GENESIS, 0
    head: tuple[int, str] | None = None

    def bad(problem: str) -> Verdict:
        return Verdict(False, count, None if head is None else head[0], None if head is None else head[1], problem,
                       key is not None)

    for seq, at, kind, body_text, stored_prev, stored_hash, signature in rows:
        if seq != expected_seq:
            if seq > expected_seq:
                missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}-{seq - 1}"
                return bad(f"record {missing} missing (record {seq} follows record {expected_seq - 1})")
            return bad(f"record {seq} out of order (after record {expected_seq - 1})")
        if stored_prev != prev_hash:
            return bad(f"record {seq}: its previous hash is not record {seq - 1}'s (replaced or reordered)")
        if record_hash(seq, at, kind, body_text, stored_prev) != stored_hash:
            return bad(f"record {seq}: its contents do not match its hash (altered)")
        if key is not None:
            if signature is None:
                return bad(f"record {seq}: not signed")
            try:
                key.verify(base64.b64decode(signature), bytes.fromhex(stored_hash))
            except (InvalidSignature, ValueError):
                return bad(f"record {seq}: the signature does not match the device key")
        count += 1
        head = (seq, stored_hash)
        expected_seq, prev_hash = seq + 1, stored_hash
    return Verdict(True, count, None if head is None else head[0], None if head is None else head[1], None,
                   key is not None)


def _body(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"unreadable": text[:200]}
    return value if isinstance(value, dict) else {"value": value}
