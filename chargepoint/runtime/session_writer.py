"""The single writer of session changes: begin, meter reading, end, each with the transaction messages the CSMS
adapter builds for it, in one SQLite transaction.

Writes are queued so that disk latency never sits in the safety path; the queue is drained to the end at
shutdown, so a write once queued is never dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chargepoint.logfields import log_fields
from chargepoint.ports.csms import TransactionJournal
from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.runtime.signed_metering import SignedMetering
from chargepoint.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _StoreOp:
    kind: str  # begin | meter | end
    connector_id: int
    args: dict[str, Any]


class SessionWriter:
    def __init__(self, store: Store, connectors: Mapping[int, ConnectorRuntime],
                 signed: SignedMetering | None = None) -> None:
        self.store = store
        self.connectors = connectors
        self.signed = signed  # where meters sign: the end of a session waits for its signed dataset
        self.journal: TransactionJournal | None = None  # the CSMS adapter's, once one is attached
        self._ops: asyncio.Queue[_StoreOp | None] = asyncio.Queue()

    def put(self, connector_id: int, kind: str, **args: Any) -> None:
        self._ops.put_nowait(_StoreOp(kind, connector_id, args))

    def close(self) -> None:
        """No more writes: ``run`` ends once the queued ones are done."""
        self._ops.put_nowait(None)

    async def flush(self) -> None:
        """Wait until every queued write is done (used before answering session queries)."""
        await self._ops.join()

    async def run(self) -> None:
        """Runs until it takes the ``close`` sentinel, so queued writes are never dropped."""
        session_ids: dict[int, str] = {}
        while (op := await self._ops.get()) is not None:
            try:
                await self._write(op, session_ids)
            finally:
                self._ops.task_done()
        self._ops.task_done()

    async def _write(self, op: _StoreOp, session_ids: dict[int, str]) -> None:
        c = self.connectors[op.connector_id]
        journal = self.journal
        if op.kind == "begin":
            messages = None
            reservation_id = op.args.pop("reservation_id", None)
            if journal is not None:
                messages = journal.start_messages(
                    op.connector_id, op.args["id_tag"], op.args["meter_start_Wh"], op.args["started_at"],
                    reservation_id,
                )
            record = await self.store.begin_session(op.connector_id, **op.args, messages=messages)
            if reservation_id is not None:
                await self.store.reservation_delete(reservation_id)
            session_ids[op.connector_id] = record.session_id
            log.info("connector %d: session %s recorded", op.connector_id, record.session_id,
                     extra=log_fields(connector=op.connector_id, session=record.session_id))
            if c.session is not None and c.session.started_at == op.args["started_at"]:
                c.session.session_id = record.session_id
        elif op.kind == "meter" and op.connector_id in session_ids:
            await self.store.record_meter(session_ids[op.connector_id], **op.args)
        elif op.kind == "end" and op.connector_id in session_ids:
            signed = None if self.signed is None else await self.signed.end(op.connector_id)
            await self.store.end_session(
                session_ids.pop(op.connector_id), **op.args,
                messages=None if journal is None else journal.stop_messages, signed=signed,
            )
        if journal is not None:
            journal.journal_changed()
