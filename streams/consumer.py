"""Faust's aiokafka consumer, made to start a new consumer group at the earliest offset for real.

While tables recover, Faust can fetch a source partition's first records and drop them. With
no committed offset, `perform_seek` then leaves the position after those records, and they are
never processed: a worker started after events were published silently skipped them. Here a
source partition without a committed offset is sought back to its start after the seek.
"""
from __future__ import annotations

from faust.transport.drivers import aiokafka as driver


class Consumer(driver.Consumer):
    async def perform_seek(self) -> None:
        await super().perform_seek()
        changelogs = self.app.tables.changelog_topics
        for tp in self.assignment():
            # Committed offset 0 is stored as None too; seeking to 0 is right for both.
            if tp.topic not in changelogs and self._committed_offset.get(tp) is None:
                # Offset 0 below a retention cut is out of range: auto_offset_reset=earliest applies.
                await self.seek(tp, 0)


class Transport(driver.Transport):
    Consumer = Consumer
