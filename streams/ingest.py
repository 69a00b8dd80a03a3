"""Ingest: events.browse|purchase|review -> validate -> DLQ or the user's window.

The event topics reach `ingest_batch` through a batch feed (streams/feed.py), a poll at a time,
not one event at a time through a Faust agent. Each batch is grouped by user, and each user's
window is read, extended and written once per batch: one changelog record per user, not per
event, published for the whole batch together and written to RocksDB once the broker has it
(streams/tables.py).

No record can stop ingest. A record that fails validation goes to the DLQ with its reason;
one that raises anything else, alone or while its user's window is written, goes there too as
`internal` with the exception's class, and the batch goes on with the other users.
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Optional, Sequence

from faust.types import Message

from model.documents import dlq_document, dlq_key, encode, internal
from model.entry import make_entry
from state.event import Event, Rejected, Rejection, parse_event
from state.window import Window, WindowBounds
from streams import metrics
from streams.app import Strata
from streams.feed import BatchFeed
from streams.tables import Record, owned_partitions, publish, read_local, record_published
from streams.topics import partition_for

log = logging.getLogger(__name__)
SHOWN_KEY_CHARS = 80


def check_key(key: Optional[bytes], event: Event) -> None:
    """User-keyed topics must be keyed by user_id (byte for byte), or the user's events spread over
    partitions. (The event itself refuses a user_id among the keys Faust keeps its bookkeeping under.)"""
    if key is None or key != event.user_id.encode("utf-8"):
        shown = None if key is None else key[:SHOWN_KEY_CHARS].decode("utf-8", "replace")
        raise Rejected(Rejection("key_mismatch", f"record key {shown!r} is not the event's user_id "
                                 f"{event.user_id[:SHOWN_KEY_CHARS]!r}; key events by user_id", "user_id"))


def check_partition(key: bytes, partition: int, partitions: int) -> None:
    """A record must sit where Kafka's default partitioner puts its key, or its user has two windows."""
    expected = partition_for(key, partitions)
    if partition != expected:
        raise Rejected(Rejection(
            "wrong_partition", f"record is on partition {partition}, but murmur2 of its key gives {expected} of "
            f"{partitions}: use Kafka's default (murmur2) partitioner (librdkafka: partitioner=murmur2_random)",
            "user_id"))


def accept(strata: Strata, message, now_ms: int) -> Event:
    s = strata.settings
    event = parse_event(message.value, topic_type=strata.event_type_of(message.topic), max_bytes=s.max_event_bytes,
                        max_future_s=s.max_future_s, now_ms=now_ms)
    check_key(message.key, event)
    check_partition(message.key, message.partition, s.partitions)
    return event


def update_window(strata: Strata, bounds: WindowBounds, partition: int, user_id: str, events: list[Event],
                  now_ms: int) -> tuple[Window, Counter, int]:
    """The user's window read from the local store, extended and bounded: (window, the outcome of
    each event, entries evicted). Written by the caller, after its changelog record is published."""
    outcomes: Counter[tuple[str, str]] = Counter()
    raw = read_local(strata.windows, partition, user_id.encode())
    window = Window.decode(raw) if raw else Window(user_id)
    window.partition = partition
    for event in events:
        outcome = "accepted" if window.add(make_entry(event, strata.settings.max_text_chars), now_ms, bounds) \
            else "duplicate"
        outcomes[event.type, outcome] += 1
    return window, outcomes, window.trim(bounds)


@dataclass
class _UserWrite:
    topic: str
    members: list[tuple[Event, object]]  # (event, its message)
    window: Window
    outcomes: Counter
    evicted: int


async def ingest_batch(strata: Strata, messages: Sequence[Message]) -> None:
    now_ms = int(time.time() * 1000)
    metrics.INGEST_BATCH.observe(len(messages))
    outcomes: Counter[tuple[str, str]] = Counter()
    refused: list[tuple[object, Rejection]] = []
    # By (partition, user): the three event topics are co-partitioned, so one user's browse,
    # purchase and review events of a batch extend one window, read and written once.
    groups: dict[tuple[int, str], list[tuple[Event, object]]] = {}
    for message in messages:
        try:
            event = accept(strata, message, now_ms)
        except Rejected as rejected:
            refused.append((message, rejected.rejection))
            continue
        except Exception as exc:  # noqa: BLE001 - no record may stop ingest
            log.exception("ingest: record %s[%s]@%s raised", message.topic, message.partition, message.offset)
            refused.append((message, internal(exc)))
            continue
        groups.setdefault((message.partition, event.user_id), []).append((event, message))

    owned = {topic: owned_partitions(strata.app, topic) for topic in {m.topic for g in groups.values() for _, m in g}}
    writes: list[_UserWrite] = []
    records: list[Record] = []
    bounds = strata.settings.window_bounds
    for (partition, user_id), members in groups.items():
        topic = members[0][1].topic
        if partition not in owned[topic]:
            # Revoked while this batch was polled: the new owner replays these from its committed offset.
            continue
        try:
            window, counts, evicted = update_window(strata, bounds, partition, user_id, [e for e, _ in members], now_ms)
            if not any(outcome == "accepted" for _, outcome in counts):
                outcomes.update(counts)  # all replayed: the changelog has the window already
                continue
            records.append(Record(user_id.encode(), window.encode(), partition))
        except Exception as exc:  # noqa: BLE001
            log.exception("ingest: the window of a user with %d events could not be updated", len(members))
            refused.extend((message, internal(exc)) for _, message in members)
            continue
        writes.append(_UserWrite(topic, members, window, counts, evicted))

    results = await publish(strata.app, strata.windows.changelog_topic.get_topic_name(), records)
    owned = {topic: owned_partitions(strata.app, topic) for topic in owned}
    published = []
    for write, record, result in zip(writes, records, results):
        if isinstance(result, BaseException):
            log.error("ingest: the broker refused a window record (%s: %s); its events go to the DLQ",
                      type(result).__name__, result)
            refused.extend((message, internal(result)) for _, message in write.members)
            continue
        if record.partition not in owned[write.topic]:
            continue  # revoked meanwhile: the new owner restores the window from the changelog
        published.append((record, result))
        outcomes.update(write.outcomes)
        metrics.WINDOW_EVICTIONS.inc(write.evicted)
        metrics.WINDOW_EVENTS.observe(len(write.window))
        strata.dirty.mark(record.partition, write.window.user_id)
    try:
        record_published(strata.windows, published)
    finally:  # a failing local store (the changelog has the windows) must not keep refused records from the DLQ
        outcomes.update(await publish_refused(strata, refused, now_ms))
    for (event_type, outcome), n in outcomes.items():
        metrics.EVENTS.labels(event_type, outcome).inc(n)
    metrics.DIRTY_USERS.set(len(strata.dirty))


def _in_dlq(strata: Strata, message, key: bytes) -> bool:
    """Whether this record's DLQ record is already published: a replay after a crash or a rebalance.

    The DLQ table holds, per key, the last DLQ record published for it; offsets rise within a
    source partition, so a record at or below the last one's offset there was sent before.
    """
    last = read_local(strata.dlq, message.partition, key)
    try:
        source = json.loads(last)["source"] if last is not None else None
        return source is not None and (source["topic"], source["partition"]) == (message.topic, message.partition) \
            and source["offset"] >= message.offset
    except (ValueError, TypeError, KeyError):  # not a DLQ record of ours: publish
        return False


def in_source_order(refused: list[tuple[Message, Rejection]]) -> tuple[list, list]:
    """(refused records in offset order per source partition, each once; the second copies).

    In offset order, so the last DLQ record recorded per key is the highest. Once, because the
    feed's queue lets a copy through after a seek below what it queued (streams/feed.py), and the
    DLQ table, which catches copies in later batches, has neither copy of one batch yet."""
    once, copies, previous = [], [], None
    for item in sorted(refused, key=lambda r: (r[0].topic, r[0].partition, r[0].offset)):
        source = (item[0].topic, item[0].partition, item[0].offset)
        (copies if source == previous else once).append(item)
        previous = source
    return once, copies


async def publish_refused(strata: Strata, refused: list, now_ms: int) -> Counter:
    """Each refused record to the DLQ exactly once: published on its source partition's number,
    then recorded in the DLQ table once the broker has it (see streams/tables.py)."""
    outcomes: Counter[tuple[str, str]] = Counter()
    to_send, records = [], []
    once, copies = in_source_order(refused)
    for message, _ in copies:
        outcomes[strata.event_type_of(message.topic), "duplicate"] += 1
    for message, rejection in once:
        event_type = strata.event_type_of(message.topic)
        if message.partition not in owned_partitions(strata.app, message.topic):
            continue  # revoked meanwhile: the new owner replays it
        try:
            key = dlq_key(message.key)
            if _in_dlq(strata, message, key):
                outcomes[event_type, "duplicate"] += 1
                continue
            record = Record(key, encode(dlq_document(rejection, message.topic, message.partition, message.offset,
                                                     message.value, strata.settings.dlq_raw_bytes, now_ms)),
                            message.partition)
        except Exception:  # noqa: BLE001 - one DLQ record that cannot be built must not stop the others
            metrics.DLQ_SEND_FAILURES.inc()
            log.exception("ingest: could not build the DLQ record of %s[%s]@%s", message.topic,
                          message.partition, message.offset)
            continue
        to_send.append((message, rejection))
        records.append(record)
    results = await publish(strata.app, strata.dlq_topic.get_topic_name(), records)  # a DLQ outage must not stop valid events
    published = []
    for (message, rejection), record, result in zip(to_send, records, results):
        if isinstance(result, BaseException):
            metrics.DLQ_SEND_FAILURES.inc()
            log.error("ingest: the broker refused the DLQ record of %s[%s]@%s (%s: %s)", message.topic,
                      message.partition, message.offset, type(result).__name__, result)
            continue
        metrics.REJECTED.labels(rejection.code).inc()
        outcomes[strata.event_type_of(message.topic), "rejected"] += 1
        if message.partition in owned_partitions(strata.app, message.topic):
            published.append((record, result))
    try:
        record_published(strata.dlq, published)
    except Exception:  # noqa: BLE001 - published; only the dedupe memory missed it
        log.exception("ingest: recording published DLQ records failed")
    return outcomes


def register(strata: Strata) -> None:
    async def handle(messages: Sequence[Message]) -> None:
        await ingest_batch(strata, messages)

    BatchFeed(strata.app, strata.source, handle, strata.settings.ingest_batch, name="ingest")
