"""Consumer lag: strata_consumer_lag{topic,partition} for each partition this worker reads that an
operator watches, refreshed every LAG_INTERVAL_S by a timer. The offsets are asked for on Faust's
consumer thread, so the event loop never waits on the broker.

- Event partitions (the consumer group's): end offset - committed offset. A partition with no
  commit yet is consumed from its earliest offset (auto_offset_reset=earliest), so that is the
  committed side then.
- `items` partitions (the catalogue, a global table every worker reads to the end and never
  commits): end offset - position.

The changelogs of the worker's own tables are only read while recovering and are left out.
"""
from __future__ import annotations

import logging

import faust
from faust.types import TP

from streams import metrics
from streams.app import Strata

log = logging.getLogger(__name__)
LAG_INTERVAL_S = 3.0


class LagReporter:
    def __init__(self, app: faust.App, sources: set[str], catalogue: str):
        self.app = app
        self.sources = sources  # the event topics
        self.catalogue = catalogue  # the items topic
        self.reported: set[TP] = set()

    async def lags(self) -> dict[TP, int]:
        consumer = self.app.consumer
        assigned = consumer.assignment()
        sources = [tp for tp in assigned if tp.topic in self.sources]
        catalogue = [tp for tp in assigned if tp.topic == self.catalogue]
        watched = sources + catalogue
        if not watched:
            return {}
        # ListOffsets stays fresh while a backed-up partition is not being fetched; the embedded
        # broker's undercounts batches of several records, where the last fetch response's high
        # watermark is right. Neither is ever above the true end, so the larger is the end.
        fetched = {tp: consumer.highwater(tp) or 0 for tp in watched}
        listed = await consumer.highwaters(*watched)
        ends = {tp: max(fetched[tp], listed.get(tp) or 0) for tp in watched}
        # Faust's own record of the group's commits: read from the broker at each assignment,
        # updated at each commit, dropped on revocation (no public accessor exists).
        committed = {tp: consumer._committed_offset.get(tp) for tp in sources}
        never = [tp for tp, offset in committed.items() if offset is None]
        earliest = await consumer.earliest_offsets(*never) if never else {}
        consumed = {tp: earliest[tp] if offset is None else offset for tp, offset in committed.items()}
        for tp in catalogue:
            consumed[tp] = await consumer.position(tp)
        return {tp: max(0, ends[tp] - consumed[tp]) for tp in watched}

    async def tick(self) -> None:
        # Mid-rebalance the assignment is in flux; the next tick after it reports again.
        if self.app.rebalancing:
            return
        try:
            lags = await self.lags()
            still_assigned = self.app.consumer.assignment()  # a revocation may have come meanwhile
            for tp, lag in lags.items():
                if tp in still_assigned:
                    metrics.CONSUMER_LAG.labels(topic=tp.topic, partition=tp.partition).set(lag)
            self.forget(self.reported - (lags.keys() & still_assigned))
            self.reported = lags.keys() & still_assigned
        except Exception:  # noqa: BLE001 - monitoring must never stop the worker
            log.warning("consumer lag not updated this time", exc_info=True)

    def forget(self, lost: set[TP]) -> None:
        """Lost partitions' series disappear: a gauge left behind would report another worker's lag."""
        for tp in lost & self.reported:
            metrics.CONSUMER_LAG.remove(tp.topic, str(tp.partition))
        self.reported -= lost


def register(strata: Strata) -> None:
    reporter = LagReporter(strata.app, set(strata.source.topics), strata.settings.topic("items"))
    strata.app.timer(LAG_INTERVAL_S, name="consumer-lag")(reporter.tick)

    @strata.app.on_partitions_revoked.connect
    async def on_revoked(app, revoked: set[TP], **kwargs) -> None:
        reporter.forget(set(revoked))
