"""Monitoring: consumer lag, the alert rules (promtool), Alertmanager's routing (amtool), and a real
Prometheus scraping a real worker that answers every dashboard panel's and every alert's query."""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from types import SimpleNamespace

from faust.types import TP
from prometheus_client import REGISTRY

from streams.lag import LagReporter

BROWSE, ITEMS, CHANGELOG = "events.browse", "items", "strata-windows-changelog"


class FakeConsumer:
    """The part of Faust's consumer the lag reporter reads, with offsets set by the test."""

    def __init__(self, assigned: set[TP], fetched: dict, listed: dict, committed: dict, earliest: dict,
                 positions: dict):
        self.assigned, self.fetched, self.listed = assigned, fetched, listed
        self._committed_offset = defaultdict(lambda: None, committed)
        self.earliest, self.positions = earliest, positions

    def assignment(self) -> set[TP]:
        return set(self.assigned)

    def highwater(self, tp: TP):
        return self.fetched.get(tp)

    async def highwaters(self, *tps: TP) -> dict:
        return {tp: self.listed[tp] for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> dict:
        return {tp: self.earliest[tp] for tp in tps}

    async def position(self, tp: TP) -> int:
        return self.positions[tp]


def lag_series() -> dict[tuple[str, str], float]:
    return {(s.labels["topic"], s.labels["partition"]): s.value
            for m in REGISTRY.collect() if m.name == "strata_consumer_lag" for s in m.samples}


def tp(topic: str, partition: int) -> TP:
    return TP(topic, partition)


def test_lag_is_end_minus_committed_for_events_and_end_minus_position_for_items():
    consumer = FakeConsumer(
        assigned={tp(BROWSE, 0), tp(BROWSE, 1), tp(BROWSE, 2), tp(ITEMS, 0), tp(CHANGELOG, 0)},
        # 0: the embedded broker's ListOffsets undercounts; the fetch response's high watermark is right.
        # 1: not fetched lately (backed up); ListOffsets is fresh.
        fetched={tp(BROWSE, 0): 100, tp(BROWSE, 1): 95, tp(BROWSE, 2): 50, tp(ITEMS, 0): 10},
        listed={tp(BROWSE, 0): 1, tp(BROWSE, 1): 120, tp(BROWSE, 2): 50, tp(ITEMS, 0): 10, tp(CHANGELOG, 0): 9},
        committed={tp(BROWSE, 0): 90, tp(BROWSE, 1): 90},  # 2: never committed, consumed from its start
        earliest={tp(BROWSE, 2): 5},
        positions={tp(ITEMS, 0): 7},
    )
    reporter = LagReporter(SimpleNamespace(consumer=consumer, rebalancing=False), {BROWSE}, ITEMS)
    asyncio.run(reporter.tick())
    assert lag_series() == {(BROWSE, "0"): 10, (BROWSE, "1"): 30, (BROWSE, "2"): 45, (ITEMS, "0"): 3}

    # A partition lost in a rebalance: its series goes at once, and stays gone on the next tick.
    reporter.forget({tp(BROWSE, 1)})
    consumer.assigned -= {tp(BROWSE, 1)}
    assert (BROWSE, "1") not in lag_series()
    asyncio.run(reporter.tick())
    assert set(lag_series()) == {(BROWSE, "0"), (BROWSE, "2"), (ITEMS, "0")}
    # Lost without the signal (the assignment shrank between ticks): gone on the next tick.
    consumer.assigned -= {tp(BROWSE, 2), tp(ITEMS, 0)}
    asyncio.run(reporter.tick())
    assert set(lag_series()) == {(BROWSE, "0")}
    reporter.forget({tp(BROWSE, 0)})
    assert lag_series() == {}


def test_a_failing_lag_tick_is_logged_and_the_worker_goes_on(caplog):
    class BrokenConsumer(FakeConsumer):
        async def highwaters(self, *tps: TP) -> dict:
            raise ConnectionError("broker gone")

    consumer = BrokenConsumer({tp(BROWSE, 0)}, {}, {}, {}, {}, {})
    reporter = LagReporter(SimpleNamespace(consumer=consumer, rebalancing=False), {BROWSE}, ITEMS)
    with caplog.at_level(logging.WARNING, logger="streams.lag"):
        asyncio.run(reporter.tick())  # does not raise
    assert "consumer lag not updated" in caplog.text and "broker gone" in caplog.text
    assert lag_series() == {}
