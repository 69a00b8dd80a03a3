"""streams/tables.publish on the embedded broker: producer batches, and the end offset the broker
reports afterwards (what a table's recovery reads up to) is still the true end."""
import asyncio
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from ops.broker import EmbeddedBroker
from streams.tables import Record, publish

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


class _FaustProducer:
    """aiokafka's producer behind the send signature of Faust's, which is what publish calls."""

    def __init__(self, producer: AIOKafkaProducer):
        self._producer = producer

    async def send(self, topic, key, value, partition, timestamp, headers):
        return await self._producer.send(topic, value, key=key, partition=partition)


async def _end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
        return {tp.partition: offset for tp, offset in ends.items()}
    finally:
        await consumer.stop()


async def _scenario(bootstrap: str) -> tuple[dict, dict, list]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic("plain", 2, 1), NewTopic("published", 2, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    await producer.start()
    try:
        records = [Record(f"k{i}".encode(), b"v" * 100, i % 2) for i in range(40)]
        # Control: the same records in ordinary producer batches.
        await asyncio.gather(*[await producer.send("plain", r.value, key=r.key, partition=r.partition)
                               for r in records])
        offsets = await publish(SimpleNamespace(producer=_FaustProducer(producer)), "published", records)
    finally:
        await producer.stop()
    return (await _end_offsets(bootstrap, "plain", 2), await _end_offsets(bootstrap, "published", 2), offsets)


def test_publish_batches_and_the_broker_still_reports_the_true_end_offset(tmp_path):
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        plain, published, offsets = asyncio.run(_scenario(broker.bootstrap))
    # The broker's fault that publish works around: after a multi-record batch, a wrong end.
    assert plain != {0: 20, 1: 20}, "the broker now reports end offsets right: publish's last-record step can go"
    assert published == {0: 20, 1: 20}
    assert sorted(offsets[0::2]) == list(range(20)) and sorted(offsets[1::2]) == list(range(20))
