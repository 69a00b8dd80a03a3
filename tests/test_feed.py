"""The queue between the consumer and the ingest batch handler (streams/feed.py)."""
import asyncio

from mode.utils.queues import FlowControlEvent

from streams.feed import PollQueue


def test_a_put_waiting_for_room_goes_on_when_a_rebalance_empties_the_queue():
    async def scenario() -> list:
        flow = FlowControlEvent(initially_suspended=False)
        queue = PollQueue(2, flow)
        await queue.put(["a"])
        await queue.put(["b"])
        waiting = asyncio.create_task(queue.put(["c"]))
        await asyncio.sleep(0.01)
        assert not waiting.done()  # full: the consumer waits
        flow.suspend()
        flow.clear()  # a rebalance drops what the handler has not taken
        await asyncio.wait_for(waiting, 1)
        return await asyncio.wait_for(queue.take(10), 1)

    assert asyncio.run(scenario()) == ["c"]


def test_take_joins_waiting_polls_up_to_the_batch_size_and_a_put_waits_while_flow_is_suspended():
    async def scenario() -> tuple:
        flow = FlowControlEvent(initially_suspended=False)
        queue = PollQueue(4, flow)
        for poll in (["a", "b"], ["c"], ["d", "e"]):
            await queue.put(poll)
        first = await queue.take(3)
        flow.suspend()
        held = asyncio.create_task(queue.put(["f"]))
        await asyncio.sleep(0.01)
        assert not held.done()
        flow.resume()  # empties the queue, as Faust does when a rebalance ends
        await asyncio.wait_for(held, 1)
        return first, await asyncio.wait_for(queue.take(3), 1)

    assert asyncio.run(scenario()) == (["a", "b", "c"], ["f"])
