"""Faust's aiokafka consumer, with two changes.

Start at the earliest offset for real: while tables recover, Faust can fetch a source partition's
first records and drop them. With no committed offset, `perform_seek` then leaves the position
after those records, and they are never processed: a worker started after events were published
silently skipped them. Here a source partition without a committed offset is sought back to its
start after the seek.

Deliver a poll at a time: Faust's fetch loop races every message's delivery against the flow
being suspended (a rebalance) with `wait_first`, which makes four tasks and a wait per message;
at thousands of events a second that was the worker's largest single cost. Here the race is run
once per poll. A suspension still abandons what is left of the poll, as Faust abandons the message
in flight; those messages are fetched again after the rebalance's seek. Topics with a batch feed
(streams/feed.py) skip the streams altogether: their messages go to the feed once per poll.

A shorter fetch wait where the broker needs one (`Broker.fetch_max_wait_ms`): Faust fixes it at
1,500 ms, which on the embedded broker added ~0.4 s to every event's way to its profile.
"""
from __future__ import annotations

import asyncio
from typing import Optional

import aiokafka
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message
from mode import ServiceT

from streams.feed import BatchFeed

YIELD_EVERY = 100  # messages delivered between yields to the event loop, as Faust does


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        changelogs = self.app.tables.changelog_topics
        for tp in self.assignment():
            # Committed offset 0 is stored as None too; seeking to 0 is right for both.
            if tp.topic not in changelogs and self._committed_offset.get(tp) is None:
                # Offset 0 below a retention cut is out of range: auto_offset_reset=earliest applies.
                await self.seek(tp, 0)

    def untrack_messages(self, messages: list[Message]) -> None:
        """Messages dropped unhandled (a rebalance emptied the feed's queue): no longer pending, or
        the rebalance would wait for them until something let them go."""
        self._unacked_messages.difference_update(messages)

    def track_messages(self, messages: list[Message]) -> None:
        """track_message for a poll's messages of a batch feed: pending ack (a rebalance waits for
        them), and the sensor told once per partition (streams/metrics.Monitor)."""
        self._unacked_messages.update(messages)
        by_tp: dict[TP, list[Message]] = {}
        for message in messages:
            by_tp.setdefault(message.tp, []).append(message)
        for tp, of_tp in by_tp.items():
            self.app.monitor.on_messages_in(tp, of_tp)

    async def _drain_messages(self, fetcher: ServiceT) -> None:
        consumer_stopped, fetcher_stopped = self._stopped.is_set, fetcher._stopped.is_set  # type: ignore[attr-defined]
        try:
            while not (consumer_stopped() or fetcher_stopped()):
                self.diag.set_flag(CONSUMER_FETCHING)
                polled = [tp_message async for tp_message in self.getmany(timeout=1.0)]
                await self.sleep(0)
                if polled and not self.should_stop:
                    await self.wait_first(self._deliver(polled), self.suspend_flow.wait())
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
            self.log.info("Broker stopped consumer, shutting down...")
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise
            self.log.info("Consumer shutting down for user cancel.")
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, polled: list[tuple[TP, Message]]) -> None:
        """Faust's per-message steps: skip what was read before, record gaps in the offsets (for
        commits), commit every `commit_every` acks, hand the message to the streams; messages of
        a batch feed's topics are collected and handed to their feed once for the poll."""
        feeds = self.transport.feeds
        fed: dict[BatchFeed, list[Message]] = {}
        for n, (tp, message) in enumerate(polled, 1):
            if n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            if not self.flow_active:
                # A rebalance began while this poll was delivered: it dropped the read offsets,
                # and the seek that ends it fetches the rest again. Setting a read offset now would
                # outlive the rebalance and skip those records when they come back.
                return
            offset, read = message.offset, self._read_offset[tp]
            if read is not None and offset < read:
                continue
            if read and offset - read > 1 and self.app.topics.acks_enabled_for(message.topic):
                await self._add_gap(tp, read + 1, offset)
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                self._n_acked = 0
                await self.commit()
            feed = feeds.get(message.topic)
            if feed is None:
                await self.callback(message)
            else:
                fed.setdefault(feed, []).append(message)
            self._read_offset[tp] = offset
        for feed, messages in fed.items():
            await feed.put(messages)


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: "Transport") -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        if transport.fetch_max_wait_ms is not None:  # Faust fixes it at 1500 ms; read when the consumer starts
            consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        return consumer


class Transport(driver.Transport):
    Consumer = Consumer

    def __init__(self, *args, fetch_max_wait_ms: Optional[int] = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.feeds: dict[str, BatchFeed] = {}  # topic -> the feed its messages go to, past the streams
        self.fetch_max_wait_ms = fetch_max_wait_ms  # None: Faust's
