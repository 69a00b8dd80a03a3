"""The queue between the consumer and the ingest batch handler (streams/feed.py)."""
import asyncio
from typing import NamedTuple

from mode.utils.queues import FlowControlEvent

from streams.feed import PollQueue


class Msg(NamedTuple):
    tp: str
    offset: int


def poll(tp: str, *offsets: int) -> list[Msg]:
    return [Msg(tp, o) for o in offsets]


def test_a_put_waiting_for_room_is_released_and_dropped_when_a_rebalance_empties_the_queue():
    async def scenario() -> list:
        flow = FlowControlEvent(initially_suspended=False)
        queue = PollQueue(2, flow)
        await queue.put(poll("t0", 1))
        await queue.put(poll("t0", 2))
        waiting = asyncio.create_task(queue.put(poll("t0", 3)))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # full: the consumer waits
        flow.suspend()
        flow.clear()  # a rebalance drops what the handler has not taken...
        await asyncio.wait_for(waiting, 1)  # ...and what was fetched before it began
        flow.resume()
        await queue.put(poll("t0", 1, 2, 3))  # fetched again after the rebalance's seek
        return await asyncio.wait_for(queue.take(10), 1)

    assert asyncio.run(scenario()) == poll("t0", 1, 2, 3)


def test_take_joins_waiting_polls_up_to_the_batch_size_and_a_put_waits_while_flow_is_suspended():
    async def scenario() -> tuple:
        flow = FlowControlEvent(initially_suspended=False)
        queue = PollQueue(4, flow)
        for p in (poll("t0", 1, 2), poll("t1", 1), poll("t0", 3, 4)):
            await queue.put(p)
        first = await queue.take(3)
        flow.suspend()
        held = asyncio.create_task(queue.put(poll("t1", 2)))
        await asyncio.sleep(0.01)
        assert not held.done()
        flow.resume()
        await asyncio.wait_for(held, 1)
        return first, await asyncio.wait_for(queue.take(3), 1)

    assert asyncio.run(scenario()) == (poll("t0", 1, 2) + poll("t1", 1), poll("t0", 3, 4) + poll("t1", 2))


def test_a_rebalance_drops_the_polls_queued_before_it_and_keeps_those_queued_after_its_seek():
    """Faust's order: suspend and clear when a rebalance starts; seek to the committed offsets and
    resume the source partitions; then resume the flow, which clears again. The polls fetched
    between that seek and the resume are fetched once only: the queue must keep them."""
    async def scenario() -> list:
        flow = FlowControlEvent(initially_suspended=False)
        queue = PollQueue(4, flow)
        await queue.put(poll("t0", 1))
        flow.suspend()
        flow.clear()  # a rebalance starts: offset 1 is fetched again after the seek
        flow.resume()  # table recovery resumes the flow for the changelogs
        await queue.put(poll("t0", 1, 2))
        flow.resume()  # the rebalance ends
        return await asyncio.wait_for(queue.take(10), 1)

    assert asyncio.run(scenario()) == poll("t0", 1, 2)


def test_records_fetched_again_after_the_seek_are_queued_once():
    """Fetched just before the seek that ends a rebalance and again after it, from the committed
    offsets: each record is queued (and tracked as a pending ack) once."""
    async def scenario() -> tuple:
        admitted = []
        queue = PollQueue(4, FlowControlEvent(initially_suspended=False), admit=admitted.extend)
        await queue.put(poll("t0", 5, 6, 7) + poll("t1", 3))  # before the seek
        await queue.put(poll("t0", 5, 6, 7, 8) + poll("t1", 3, 4))  # after it
        await queue.put(poll("t0", 6))  # nothing new: nothing queued
        return await asyncio.wait_for(queue.take(100), 1), admitted

    batch, admitted = asyncio.run(scenario())
    assert batch == admitted == poll("t0", 5, 6, 7) + poll("t1", 3) + poll("t0", 8) + poll("t1", 4)


def test_a_seek_below_what_was_queued_loses_nothing_and_a_rebalance_starts_afresh():
    async def scenario() -> tuple:
        dropped = []
        flow = FlowControlEvent(initially_suspended=False)
        queue = PollQueue(8, flow, drop=dropped.extend)
        await queue.put(poll("t0", 10, 11))
        await queue.put(poll("t0", 4, 5))  # sought below the queued run: 4 and 5 were never queued
        await queue.put(poll("t0", 6, 10, 12))  # 10 passes again (a copy), nothing is lost
        first = await asyncio.wait_for(queue.take(100), 1)
        await queue.put(poll("t0", 13))
        flow.suspend()
        flow.clear()  # a rebalance drops 13 (a pending ack no more) and forgets what was queued
        flow.resume()
        await queue.put(poll("t0", 12, 13))
        return first, await asyncio.wait_for(queue.take(100), 1), dropped

    first, after, dropped = asyncio.run(scenario())
    assert first == poll("t0", 10, 11, 4, 5, 6, 10, 12)
    assert dropped == poll("t0", 13) and after == poll("t0", 12, 13)
