"""The ingest agent: events.browse|purchase|review -> validate -> DLQ or the user's window.

Each batch of polled events is grouped by user, and each user's window is read, extended and
written once per batch (one RocksDB write and one changelog record per user, not per event).
"""
from __future__ import annotations

import base64
import time
from collections import Counter
from typing import Optional

from model.entry import make_entry
from state.event import Event, Rejected, Rejection, iso_ms, parse_event
from state.window import Window
from streams import metrics
from streams.app import Strata
from streams.codec import encode
from streams.tables import on_partition


def dlq_record(rejection: Rejection, topic: str, partition: int, offset: int, raw: Optional[bytes]) -> dict:
    return {
        "error": rejection.as_dict(),
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "raw": base64.b64encode(raw or b"").decode("ascii"),
        "at": iso_ms(int(time.time() * 1000)),
    }


def check_key(key: Optional[bytes], event: Event) -> None:
    """User-keyed topics must be keyed by user_id, or the user's events spread over partitions."""
    if key is None or key.decode("utf-8", "replace") != event.user_id:
        shown = None if key is None else key.decode("utf-8", "replace")
        raise Rejected(Rejection("key_mismatch", f"record key {shown!r} is not the event's user_id "
                                 f"{event.user_id!r}; key events by user_id", "user_id"))


async def ingest_batch(strata: Strata, events: list) -> None:
    s = strata.settings
    now_ms = int(time.time() * 1000)
    metrics.INGEST_BATCH.observe(len(events))
    outcomes: Counter[tuple[str, str]] = Counter()
    groups: dict[tuple[str, int, str], list[Event]] = {}
    for ev in events:
        msg = ev.message
        event_type = strata.event_type_of(msg.topic)
        try:
            event = parse_event(msg.value, topic_type=event_type, max_bytes=s.max_event_bytes,
                                max_future_s=s.max_future_s, now_ms=now_ms)
            check_key(msg.key, event)
        except Rejected as rejected:
            r = rejected.rejection
            await strata.dlq.send(key=msg.key, value=encode(dlq_record(r, msg.topic, msg.partition, msg.offset,
                                                                      msg.value)))
            outcomes[event_type, "rejected"] += 1
            metrics.REJECTED.labels(r.code).inc()
            continue
        groups.setdefault((msg.topic, msg.partition, event.user_id), []).append(event)

    bounds = s.window_bounds
    for (topic, partition, user_id), user_events in groups.items():
        with on_partition(strata.app, topic, partition):
            doc = strata.windows.get(user_id.encode())
            window = Window.from_dict(doc) if doc else Window(user_id)
            added = 0
            for event in user_events:
                if window.add(make_entry(event, strata.item_index, s.max_text_chars), now_ms, bounds):
                    added += 1
                    outcomes[event.type, "accepted"] += 1
                else:
                    outcomes[event.type, "duplicate"] += 1
            # Written even when every event was a duplicate: a replay after a crash means the
            # local RocksDB may hold a window its changelog never received, and this write is
            # what brings the changelog (and so any future restore) up to date.
            metrics.WINDOW_EVICTIONS.inc(window.trim(bounds))
            # The partition is kept so a rescan after a rebalance knows where to write the profile.
            strata.windows[user_id.encode()] = {**window.to_dict(), "partition": partition}
        if added:
            strata.dirty.mark(partition, user_id)
        metrics.WINDOW_EVENTS.observe(len(window.entries))
    for (event_type, outcome), n in outcomes.items():
        metrics.EVENTS.labels(event_type, outcome).inc(n)
    metrics.DIRTY_USERS.set(len(strata.dirty))


def register(strata: Strata) -> None:
    s = strata.settings

    @strata.app.agent(strata.source, name="ingest")
    async def ingest(stream):
        async for events in stream.take_events(s.ingest_batch, within=s.ingest_within_s):
            await ingest_batch(strata, events)
