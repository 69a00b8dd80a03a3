"""Writing Faust tables: publish to the changelog first, record locally once the broker has it.

Every table Strata writes (windows, profiles, DLQ) is written the same way: a batch of records
goes to the table's changelog topic (`publish`), and only the acknowledged ones are written to
the local RocksDB store with the persisted offset (`record_published`). The local store is then
never ahead of its changelog, and a crash in between is repaired by the table's recovery, which
reads the changelog from the persisted offset on.

Faust routes a local table read or write by the *current event*; these happen outside a plain
one-event-at-a-time agent, for a batch, so they name the partition themselves.
"""
from __future__ import annotations

from typing import Iterable, NamedTuple, Optional, Sequence, Union

import faust
import rocksdict


class Record(NamedTuple):
    key: bytes
    value: Optional[bytes]
    partition: int


async def publish(app: faust.App, topic: str, records: Sequence[Record]) -> list[Union[int, BaseException]]:
    """Send `records` in producer batches and wait for the broker: per record, its offset or why it failed.

    Each partition's last record is sent alone once the others are acknowledged, so every
    partition written ends with a one-record batch. The embedded broker answers ListOffsets(LATEST)
    wrongly after a multi-record batch, and table recovery reads a changelog up to that offset; a
    crash between the two steps leaves only records whose source events were not yet committed,
    which are replayed. On Kafka this costs one more round trip per call.
    """
    producer = app.producer  # not Topic.send: its per-message bookkeeping costs more than the send
    last = {r.partition: i for i, r in enumerate(records)}
    alone = set(last.values())
    results: list[Union[int, BaseException, None]] = [None] * len(records)
    for step in ([i for i in range(len(records)) if i not in alone], sorted(alone)):
        pending = []
        for i in step:
            key, value, partition = records[i]
            try:
                pending.append((i, await producer.send(topic, key, value, partition, None, None)))
            except Exception as exc:  # noqa: BLE001 - reported per record
                results[i] = exc
        for i, delivery in pending:
            try:
                results[i] = (await delivery).offset
            except Exception as exc:  # noqa: BLE001
                results[i] = exc
    return results  # type: ignore[return-value]


def _store(table: faust.Table, partition: int):
    """The RocksDB database (rocksdict, raw mode) of one partition of `table` on this worker.

    Faust routes a table's own reads and writes by the current event, which these batch writers
    do not have; they know the partition, and go to Faust's per-partition store directly."""
    return table.data._db_for_partition(partition)


def read_local(table: faust.Table, partition: int, key: bytes) -> Optional[bytes]:
    return _store(table, partition).get(key)


def record_published(table: faust.Table, published: Iterable[tuple[Record, int]]) -> None:
    """Write locally what the broker holds at the given offsets of the table's changelog: per
    partition one RocksDB write batch, the records and the persisted offset together."""
    batches: dict[int, rocksdict.WriteBatch] = {}
    offsets: dict[int, int] = {}
    for record, offset in published:
        batch = batches.get(record.partition)
        if batch is None:
            batch = batches[record.partition] = rocksdict.WriteBatch(raw_mode=True)
        if record.value is None:
            batch.delete(record.key)
        else:
            batch.put(record.key, record.value)
        offsets[record.partition] = max(offset, offsets.get(record.partition, offset))
    for partition, batch in batches.items():
        batch.put(table.data.offset_key, str(offsets[partition]).encode())
        _store(table, partition).write(batch)


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
