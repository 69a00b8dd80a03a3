"""A batch feed: the consumer's polls of some topics handed to one batch handler, past Faust's streams.

A Faust agent receives its topics one event at a time: per message the conductor makes an Event,
queues it, and the stream takes it out, runs its sensors and acks it. At thousands of events a
second that machinery cost the ingest path more than its own work. The consumer
(streams/consumer.py) hands a feed's messages over a poll at a time instead; the feed's task
takes up to `max_batch` of them, awaits the handler, and only then acks them, so offsets are
committed only for messages handled (at-least-once, as with the agent).

Rebalances keep Faust's rules: when one starts, Faust's flow control empties the queue
(PollQueue), so a revocation drops what is not yet taken (those messages were not acked and are
fetched again, from the committed offsets, by whoever owns them next), and Faust waits for the
batch in hand to be acked before the partitions move. The handler itself must skip partitions
revoked while it worked (streams/ingest.py does). When a rebalance ends the queue is kept: see
PollQueue.clear.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Awaitable, Callable, Sequence

import faust
from faust.types import TP, Message
from mode.utils.queues import FlowControlEvent

log = logging.getLogger(__name__)

Handler = Callable[[Sequence[Message]], Awaitable[None]]
QUEUED_POLLS = 4  # polls waiting for the handler before the consumer waits: bounded memory, a full pipe


class PollQueue:
    """The polls waiting for the handler, at most `size`; emptied when a rebalance starts. Unlike an
    asyncio.Queue, emptying it also wakes a consumer waiting for room: a full queue emptied under a
    waiting put left both sides waiting for good.

    Each record is queued once between two rebalances. Ending one, Faust resumes the partitions
    and then seeks them to the committed offsets, so the consumer can fetch a run of records just
    before that seek and again after it; the second copy is left out here. (The windows would drop
    it by event id, but the DLQ's memory is one record per key and missed copies of a record
    refused beside another of the same key.) `admit` is called with what is queued, `drop` with
    what a rebalance drops unhandled."""

    def __init__(self, size: int, flow_control: FlowControlEvent,
                 admit: Callable[[list[Message]], None] = lambda messages: None,
                 drop: Callable[[list[Message]], None] = lambda messages: None) -> None:
        self._polls: deque[list[Message]] = deque()
        self._size, self._flow_control, self._admit, self._drop = size, flow_control, admit, drop
        self._not_empty, self._not_full = asyncio.Event(), asyncio.Event()
        self._clears = 0
        # Per partition, the first and last offsets of the run queued since the last clear.
        self._queued: dict[TP, tuple[int, int]] = {}
        flow_control.manage_queue(self)

    def clear(self) -> None:
        """Faust's flow control calls this when it suspends the flow (a rebalance starts) and again
        when it resumes it. Only the first may drop polls: those are fetched again after the seek
        to the committed offsets that ends the rebalance. By the resume, that seek is done and the
        source partitions are fetching again; a poll queued since then is never fetched again, so
        dropping it lost its events (the kill -9 soak caught this after a restore from a wiped data
        dir)."""
        if self._flow_control.is_active():
            return
        dropped = list(self._polls)
        self._polls.clear()
        self._queued.clear()
        self._clears += 1
        self._not_full.set()
        for poll in dropped:
            self._drop(poll)

    async def put(self, poll: list[Message]) -> None:
        await self._flow_control.acquire()  # not while a rebalance is under way
        clears = self._clears
        while len(self._polls) >= self._size:
            self._not_full.clear()
            await self._not_full.wait()
        if self._clears != clears:
            return  # fetched before a rebalance began: fetched again after its seek
        poll = self._first_copies(poll)
        if poll:
            self._admit(poll)
            self._polls.append(poll)
            self._not_empty.set()

    def _first_copies(self, poll: list[Message]) -> list[Message]:
        """`poll` less the records inside the run already queued for their partition. A partition's
        records arrive in offset order from wherever it was sought, so that run holds every record
        between its ends; a seek below it starts a new run (copies then pass, nothing is lost)."""
        queued, first = self._queued, []
        for message in poll:
            tp, offset = message.tp, message.offset
            run = queued.get(tp)
            if run is None or offset < run[0]:
                queued[tp] = (offset, offset)
            elif offset > run[1]:
                queued[tp] = (run[0], offset)
            else:
                continue
            first.append(message)
        return first

    async def take(self, max_messages: int) -> list[Message]:
        """The oldest poll, joined by those behind it while under `max_messages`."""
        while not self._polls:
            self._not_empty.clear()
            await self._not_empty.wait()
        batch = self._polls.popleft()
        while self._polls and len(batch) < max_messages:
            batch.extend(self._polls.popleft())
        self._not_full.set()
        return batch


class BatchFeed:
    def __init__(self, app: faust.App, topic: faust.TopicT, handler: Handler, max_batch: int, name: str) -> None:
        self.app, self.handler, self.max_batch, self.name = app, handler, max_batch, name
        self.topics = frozenset(topic.topics)
        # Pending acks (a rebalance waits for them) from when a message is queued.
        self._queue = PollQueue(QUEUED_POLLS, app.flow_control,
                                admit=lambda messages: app.consumer.track_messages(messages),
                                drop=lambda messages: app.consumer.untrack_messages(messages))
        app.topics.add(topic)  # subscribed like an agent's topic, acks enabled
        app.transport.feeds.update((t, self) for t in self.topics)
        app.task(self._run)

    async def put(self, messages: list[Message]) -> None:
        """From the consumer: one poll's messages of the feed's topics, in offset order per partition."""
        await self._queue.put(messages)

    async def _run(self) -> None:
        consumer, monitor = self.app.consumer, self.app.monitor
        while not self.app.should_stop:
            batch = await self._queue.take(self.max_batch)
            for start in range(0, len(batch), self.max_batch):
                chunk = batch[start:start + self.max_batch]
                try:
                    await self.handler(chunk)
                except Exception as exc:  # noqa: BLE001
                    # The handler deals with every record's own faults; what reaches here is the
                    # worker's (its local store failing). Unacked, the batch is replayed after a
                    # restart, which restores the store from the changelogs.
                    log.exception("%s: a batch of %d messages failed; stopping the worker", self.name, len(chunk))
                    await self.app.crash(exc)
                    return
                for message in chunk:
                    consumer.ack(message)
                monitor.on_messages_out(chunk)
