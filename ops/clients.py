"""Plain Kafka clients for the CLI and tests: publish events and items, read a topic."""
from __future__ import annotations

import socket
import time
from typing import Iterable, Iterator, Optional

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from model.documents import encode
from state.event import EVENT_TYPES
from streams.settings import Broker, Settings
from streams.topics import event_topic


class BrokerUnreachable(ConnectionError):
    pass


def wait_for_broker(broker: Broker, timeout_s: float) -> None:
    """Return once a host of `broker` accepts a TCP connection; BrokerUnreachable after timeout_s.

    Kafka clients retry for 30 s and log every refused connection before they fail; this fails
    within timeout_s with one message. Each host gets a share of the time left, so one that drops
    packets does not use it all; refused connections are retried, as a broker may be starting.
    The first failure is the one reported: later attempts may only have had a sliver of time.
    """
    deadline = time.monotonic() + timeout_s
    first: Optional[OSError] = None
    while True:
        for host in broker.hosts:
            share = (deadline - time.monotonic()) / len(broker.hosts)
            if share <= 0:
                raise BrokerUnreachable(f"cannot reach the broker at {broker} within {timeout_s:g} s "
                                        f"({first.strerror or first})")
            name, _, port = host.rpartition(":")
            try:
                socket.create_connection((name, int(port)), timeout=share).close()
                return
            except OSError as exc:
                first = first or exc
        time.sleep(max(0.0, min(0.1, deadline - time.monotonic())))


def producer(broker: Broker, restorable: bool = False) -> KafkaProducer:
    """`restorable`: the topic is read back to its end offset (a table's changelog, like `items`).

    The embedded broker mis-reports end offsets when a batch holds several records, so records
    for such topics go one per batch there. Event topics are never read to their end, so they
    keep normal batching, which the embedded broker also needs to serve fetches quickly.
    """
    if broker.embedded and restorable:
        batching = dict(batch_size=0)
    else:
        batching = dict(linger_ms=5, batch_size=64 * 1024)
    return KafkaProducer(**broker.kafka_python(acks="all", client_id="strata-produce", **batching))


def topic_for_event(settings: Settings, doc: dict) -> Optional[str]:
    t = doc.get("type") if isinstance(doc, dict) else None
    return event_topic(settings, t) if t in EVENT_TYPES else None


def publish_items(settings: Settings, items: Iterable[dict]) -> int:
    p = producer(settings.broker_info(), restorable=True)
    n = 0
    for item in items:
        p.send(settings.topic("items"), key=item["item_id"].encode(), value=encode(item))
        n += 1
    p.close()
    return n


def publish_events(p: KafkaProducer, settings: Settings, events: Iterable[dict], progress=None) -> int:
    """Each event to its type's topic, keyed by user_id."""
    n = 0
    for doc in events:
        p.send(topic_for_event(settings, doc), key=doc["user_id"].encode(), value=encode(doc))
        n += 1
        if progress is not None:
            progress.update(1)
    p.flush()
    return n


def read_topic(
    broker: Broker, topic: str, *, from_end: bool = False, idle_timeout: float = 5.0,
    max_messages: Optional[int] = None, deadline: Optional[float] = None,
) -> Iterator:
    """Records of every partition of `topic` (no consumer group), until idle, max or deadline."""
    consumer = KafkaConsumer(**broker.kafka_python(enable_auto_commit=False, group_id=None, client_id="strata-tail",
                                                   **broker.fetch_wait()))
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise ValueError(f"topic {topic!r} does not exist on {broker}; run `strata topics create`")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        (consumer.seek_to_end if from_end else consumer.seek_to_beginning)(*tps)
        seen, last = 0, time.monotonic()
        while True:
            now = time.monotonic()
            if deadline is not None and now > deadline:
                return
            if idle_timeout is not None and now - last > idle_timeout:
                return
            for records in consumer.poll(timeout_ms=200).values():
                for record in records:
                    last = time.monotonic()
                    yield record
                    seen += 1
                    if max_messages is not None and seen >= max_messages:
                        return
    finally:
        consumer.close()
