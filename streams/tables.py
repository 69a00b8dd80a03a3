"""Writing Faust tables on a chosen partition.

Faust routes a table write (RocksDB partition and changelog partition) by the *current event*.
Two places here write outside a plain one-event-at-a-time agent: the ingest agent writes each
user's window once per batch, and the profiler timer writes profiles. Both know the partition
the user's events arrive on, and say so with `on_partition`.
"""
from __future__ import annotations

import time
import weakref
from contextlib import contextmanager
from typing import Iterator

import faust
from faust.streams import _current_event
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
