"""Writing Faust tables on a chosen partition.

Faust routes a table write (RocksDB partition and changelog partition) by the *current event*.
Three places here write outside a plain one-event-at-a-time agent: the ingest agent writes each
user's window once per batch and records DLQ records, and the profiler timer records profiles.
Each knows the partition the user's events arrive on, and says so with `on_partition`.
"""
from __future__ import annotations

import time
import weakref
from contextlib import contextmanager
from typing import Iterator

import faust
from faust.streams import _current_event
from faust.types import TP
from faust.types.tuples import Message


@contextmanager
def on_partition(app: faust.App, topic: str, partition: int) -> Iterator[None]:
    message = Message(topic=topic, partition=partition, offset=-1, timestamp=time.time(),
                      timestamp_type=0, headers=[], key=None, value=None, checksum=None)
    event = faust.Event(app, None, None, [], message)
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def record_published(app: faust.App, table: faust.Table, source_topic: str, partition: int, key: bytes,
                     value: bytes, offset: int) -> None:
    """Write locally what the broker already holds at `offset` of the table's changelog.

    For tables whose changelog Strata publishes to itself (profiles, DLQ): publish first, record
    after the acknowledgement, with the persisted offset, so a crash in between is repaired by the
    table's recovery (which reads the changelog from the persisted offset on) and the local store
    is never ahead of the topic.
    """
    with on_partition(app, source_topic, partition):
        table.data[key] = value  # the local store only: the changelog has it already
    table.data.set_persisted_offset(TP(table.changelog_topic.get_topic_name(), partition), offset)


def owned_partitions(app: faust.App, topic: str) -> set[int]:
    """Partitions of `topic` actively assigned to this worker right now."""
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == topic}


class TopicBackedGlobalTable(faust.GlobalTable):
    """A GlobalTable whose changelog is a topic named by us (`items`), not `<app>-<table>-changelog`.

    Faust's assignor looks a global table's changelog up by the default name only; this makes
    it use the topic the table really reads.
    """

    def _changelog_topic_name(self) -> str:
        return self.changelog_topic.get_topic_name()
