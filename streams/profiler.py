"""The profiler timer: dirty users of owned partitions -> batched inference off the loop -> profiles.

Every `profile_interval_s` it takes the users whose windows changed, runs the profile model on
them in batches on the model thread, and publishes each profile with `version` one above the
last, plus a recommendation list.

Publish, then record: a batch's profiles go to the `profiles` topic first; only once the broker
has acknowledged them are they written to the local profiles table (whose changelog *is* that
topic) together with the table's persisted offset. A crash before the acknowledgement leaves the
user's window newer than the recorded profile, so the rescan profiles the user again; a crash
after it is repaired by the table's recovery, which reads the topic from the persisted offset on.
Either way the topic never lacks a profile the worker believes it published, and versions never
repeat or go back. Ownership is checked again before a batch is published and before each record.

When this worker gains partitions (start, restart, rebalance) it rescans their windows, in chunks
that yield to the event loop, and profiles every user whose window is newer than their profile.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from functools import partial

import msgspec

from model.serve import profile_batch
from state.window import Window
from streams import metrics, trails
from streams.app import Strata, apply_item_record
from streams.tables import Record, owned_partitions, publish, read_local, record_published
from streams.topics import event_topic

log = logging.getLogger(__name__)
RESCAN_CHUNK = 500


@dataclass
class _State:
    owned: set[int] = field(default_factory=set)
    items_loaded: bool = False


class _Profiled(msgspec.Struct):
    """What the profiler reads of a recorded profile (the rest of the document is skipped)."""

    version: int
    events_seen: int


def _profiled(strata: Strata, partition: int, key: bytes) -> _Profiled:
    """The user's last recorded profile; version 0 and events_seen -1 when there is none."""
    raw = read_local(strata.profiles, partition, key)
    return msgspec.json.decode(raw, type=_Profiled) if raw else _Profiled(0, -1)


async def _rescan(strata: Strata, partitions: set[int]) -> int:
    """Mark users of newly owned partitions whose window is newer than their last profile."""
    n = 0
    for i, (key, raw) in enumerate(strata.windows.items()):
        if i % RESCAN_CHUNK == RESCAN_CHUNK - 1:
            await asyncio.sleep(0)  # a big table must not stall heartbeats and ingest
        try:
            window = Window.decode(raw)
            if window.partition in partitions and _profiled(strata, window.partition, key).events_seen < window.events_seen:
                strata.dirty.mark(window.partition, window.user_id)
                n += 1
        except Exception:  # noqa: BLE001 - one unreadable record must not stop the rescan
            log.exception("profiler: skipping an unreadable window during the rescan")
    return n


def _load_items(strata: Strata) -> None:
    """What the items table holds locally; later records arrive through its changelog callback."""
    for key, value in strata.items.items():
        apply_item_record(strata.item_index, key, value)


async def _profile_batch(strata: Strata, batch: list[tuple[int, str, float]], topic: str) -> None:
    s = strata.settings
    work, windows, versions = [], [], []
    for partition, user_id, since in batch:
        key = user_id.encode()
        raw = read_local(strata.windows, partition, key)
        window = Window.decode(raw) if raw else None
        if window is not None and len(window):
            version = _profiled(strata, partition, key).version
            work.append((partition, since))
            windows.append(window)
            versions.append(version)
    if not work:
        return
    model = strata.slot.model  # one model for the whole batch, even if a reload swaps it meanwhile
    started = time.perf_counter()
    results = await asyncio.get_running_loop().run_in_executor(
        strata.slot.thread, partial(profile_batch, model, windows, versions, strata.item_index, int(time.time() * 1000),
                                    s.max_text_chars, s.profile_top_k, s.recommendations))
    metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
    metrics.INFERENCE_BATCH.observe(len(work))

    todo, records = [], []
    owned = owned_partitions(strata.app, topic)
    for (partition, since), done in zip(work, results):
        # Revoked meanwhile, or a rebalance under way (the new owner rescans it).
        if strata.app.rebalancing or partition not in owned:
            metrics.PROFILES_SKIPPED.inc()
            strata.dirty.mark(partition, done.user_id, since)
            continue
        todo.append((partition, since, done))
        records.append(Record(done.user_id.encode(), done.profile, partition))

    results = await publish(strata.app, strata.profiles_topic.get_topic_name(), records)
    recommendations = strata.recommendations.get_topic_name()
    owned = owned_partitions(strata.app, topic)
    published = []
    for (partition, since, done), record, result in zip(todo, records, results):
        if isinstance(result, BaseException):  # not on the topic: profile the user again
            log.error("profiler: the broker refused a profile (%s: %s); the user is profiled again",
                      type(result).__name__, result)
            strata.dirty.mark(partition, done.user_id, since)
            continue
        try:
            await strata.app.producer.send(recommendations, record.key, done.recommendations, None, None, None)
            metrics.RECOMMENDATIONS.inc()
        except Exception:  # noqa: BLE001 - the profile stands; the next profile brings new recommendations
            log.exception("profiler: publishing recommendations failed")
        if partition not in owned:  # the new owner restores it from the topic
            continue
        published.append((record, result))
        trails.record(s, done)
        metrics.PROFILES.inc()
        metrics.EVENT_TO_PROFILE.observe(time.monotonic() - since)
    record_published(strata.profiles, published)


async def _one_by_one(strata: Strata, batch: list[tuple[int, str, float]], topic: str) -> None:
    """After a failed batch: each user alone, so one user the model cannot profile (logged and
    counted) does not keep the others from their profiles. When every user of a larger batch
    fails alike, the cause is not theirs: they stay dirty and are tried again next tick.
    (Broker failures never get here: sends are handled per user.)"""
    failed = []
    for user in batch:
        try:
            await _profile_batch(strata, [user], topic)
        except Exception as exc:  # noqa: BLE001
            failed.append((user, exc))
    if len(failed) == len(batch) > 1:
        for partition, user_id, since in batch:
            strata.dirty.mark(partition, user_id, since)
        return
    for (partition, user_id, _), exc in failed:
        metrics.PROFILE_FAILURES.inc()
        log.error("profiler: user %r on partition %d cannot be profiled (%s: %s); skipped until their next event",
                  user_id[:80], partition, type(exc).__name__, exc)


def register(strata: Strata) -> None:
    s = strata.settings
    topic = event_topic(s, "browse")
    state = _State()
    recovery = strata.app.tables.recovery

    @strata.app.timer(s.profile_interval_s, name="profiler")
    async def profiler() -> None:
        # Mid-rebalance the assignment and the tables may be stale: profile once it is settled.
        if strata.app.rebalancing or recovery.in_recovery or not recovery.completed.is_set():
            return
        owned = owned_partitions(strata.app, topic)
        if owned != state.owned:
            strata.dirty.forget(owned)
            gained = owned - state.owned
            state.owned = owned
            if gained:
                log.info("profiler: partitions %s gained, %d users need a profile",
                         sorted(gained), await _rescan(strata, gained))
        if not state.items_loaded:
            _load_items(strata)
            state.items_loaded = True
        todo = strata.dirty.take(owned)
        for i in range(0, len(todo), s.inference_batch):
            batch = todo[i:i + s.inference_batch]
            try:
                await _profile_batch(strata, batch, topic)
            except Exception:  # noqa: BLE001
                log.exception("profiler: a batch of %d users failed; profiling them one by one", len(batch))
                await _one_by_one(strata, batch, topic)
        metrics.DIRTY_USERS.set(len(strata.dirty))
