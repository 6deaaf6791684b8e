"""The event writer process's side: its own writer connection, each batch received stored in one
transaction (``store_events``, as the writer thread stores it), then answered.

The parent (gateway/ingest/writer_process.py) forms the batches and sends each as one message over
a socketpair: its length, then a pickle of ``(batch id, outbox time, event row tuples, outbox
batches)``. The row tuples are ``event_row``'s (the stored record's fields, so no address and no user
agent ever crosses), ~2 µs an event to pickle against ~7 µs for the dataclasses. Each answer is
``(batch id, seconds the transaction took, failure)``, the failure being ``(error type, text, storage
failure cause or None)``. The process exits when its socket closes, so it never outlives the parent.
"""

from __future__ import annotations

import pickle
import signal
import socket
import struct
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.storage.events import store_events
from gateway.storage.location import DatabaseLocation
from gateway.storage.records import AnonymousEvent, OutboxBatch, event_row
from gateway.storage.store import failure_cause, open_store

_HEADER = struct.Struct("!I")  # each message: its length, then the pickle
#: The batch id of the child's first answer: connected, ready for batches.
READY = 0
#: What went wrong with a batch: error type, its text, and the storage failure behind it (or None).
Failure = tuple[str, str, str | None]
#: An answer: batch id, seconds the transaction took, and the failure when it failed.
Answer = tuple[int, float, Failure | None]


def encode_batch(
    batch_id: int, now: datetime | None, events: Sequence[AnonymousEvent], outbox: Sequence[OutboxBatch] = ()
) -> bytes:
    """One batch as the child reads it (``now``: when the outbox rows are queued)."""
    outbox_rows = [(batch.forwarder, batch.payload, batch.event_count) for batch in outbox]
    body = pickle.dumps((batch_id, now, list(map(event_row, events)), outbox_rows), protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def decode_answers(inbox: bytearray) -> list[Answer]:
    """Take every complete answer off the front of ``inbox`` (what the parent has read so far)."""
    answers: list[Answer] = []
    while len(inbox) >= _HEADER.size:
        (size,) = _HEADER.unpack_from(inbox)
        end = _HEADER.size + size
        if len(inbox) < end:
            break
        answers.append(pickle.loads(inbox[_HEADER.size : end]))  # noqa: S301 - our own child, over a socketpair
        del inbox[:end]
    return answers


def run_writer(sock: socket.socket, location: DatabaseLocation) -> None:
    """Store each batch received in one transaction and answer it, until the socket closes.

    SIGINT is ignored: Ctrl-C reaches the whole process group, and the parent, which shuts down
    gracefully, decides when the last batch has been written (it closes the socket then).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    store = open_store(location)  # never opened: only its writer connection and transaction statement
    connection = store.connect_writer()  # the store's own kind of writer connection, in this process
    try:
        _answer(sock, (READY, 0.0, None))
        while (message := _receive(sock)) is not None:
            batch_id, now, rows, outbox_rows = message
            events = [AnonymousEvent(*row) for row in rows]
            outbox = [OutboxBatch(*row) for row in outbox_rows]
            started = time.perf_counter()
            failure: Failure | None = None
            try:
                store.run_batch(connection, lambda writer: store_events(writer, events, outbox, now=now))  # noqa: B023 - run at once
            except Exception as error:  # noqa: BLE001 - answered to the parent, which fails the batch's requests
                failure = (type(error).__name__, str(error), failure_cause(error))
            _answer(sock, (batch_id, time.perf_counter() - started, failure))
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent is gone: nothing we stored was acknowledged after this
    finally:
        connection.close()
        sock.close()


def _answer(sock: socket.socket, answer: Answer) -> None:
    body = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(body)) + body)


def _receive(sock: socket.socket) -> tuple[int, datetime | None, list[tuple[Any, ...]], list[tuple[Any, ...]]] | None:
    header = _read_exactly(sock, _HEADER.size)
    if header is None:
        return None
    body = _read_exactly(sock, _HEADER.unpack(header)[0])
    if body is None:
        return None
    return pickle.loads(body)  # type: ignore[no-any-return]  # noqa: S301 - from our parent, over a socketpair


def _read_exactly(sock: socket.socket, size: int) -> bytearray | None:
    """``size`` bytes, or None at end of file (the parent closed the socket or died)."""
    data = bytearray(size)
    view = memoryview(data)
    got = 0
    while got < size:
        count = sock.recv_into(view[got:])
        if not count:
            return None
        got += count
    return data
