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
repeat or go back. Ownership is checked again right before each publish and each record.

When this worker gains partitions (start, restart, rebalance) it rescans their windows, in chunks
that yield to the event loop, and profiles every user whose window is newer than their profile.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field

from faust.types import TP

from model.entry import complete
from model.profile import ProfileModel, profile_document
from model.recommend import recommend
from state.window import Entry, Window
from streams import metrics
from streams.app import Strata, apply_item_record
from streams.codec import encode
from streams.tables import on_partition, owned_partitions
from streams.topics import event_topic

log = logging.getLogger(__name__)
RESCAN_CHUNK = 500


@dataclass
class _State:
    owned: set[int] = field(default_factory=set)
    items_loaded: bool = False


def _infer(model: ProfileModel, windows: list[list[Entry]]) -> list[tuple[dict, dict]]:
    dists = model.predict(windows)
    return [(d, model.explain(entries)) for d, entries in zip(dists, windows)]


def _profiled_events(strata: Strata, key: bytes) -> int:
    raw = strata.profiles.get(key)
    return json.loads(raw)["events_seen"] if raw else -1


async def _rescan(strata: Strata, partitions: set[int]) -> int:
    """Mark users of newly owned partitions whose window is newer than their last profile."""
    n = 0
    for i, (key, raw) in enumerate(strata.windows.items()):
        if i % RESCAN_CHUNK == RESCAN_CHUNK - 1:
            await asyncio.sleep(0)  # a big table must not stall heartbeats and ingest
        window = Window.decode(raw)
        if window.partition in partitions and _profiled_events(strata, key) < window.events_seen:
            strata.dirty.mark(window.partition, window.user_id)
            n += 1
    return n


def _load_items(strata: Strata) -> None:
    """What the items table holds locally; later records arrive through its changelog callback."""
    for key, value in strata.items.items():
        apply_item_record(strata.item_index, key, value)


async def _profile_batch(strata: Strata, batch: list[tuple[int, str, float]], topic: str) -> None:
    s = strata.settings
    work = []
    for partition, user_id, since in batch:
        raw = strata.windows.get(user_id.encode())
        window = Window.decode(raw) if raw else None
        if window is not None and window.entries:
            window.entries = [complete(e, strata.item_index, s.max_text_chars) for e in window.entries]
            work.append((partition, since, window))
    if not work:
        return
    model = strata.slot.model  # one model for the whole batch, even if a reload swaps it meanwhile
    started = time.perf_counter()
    results = await asyncio.get_running_loop().run_in_executor(strata.slot.thread, _infer, model,
                                                               [w.entries for _, _, w in work])
    metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
    metrics.INFERENCE_BATCH.observe(len(work))

    now_ms = int(time.time() * 1000)
    published = []
    for (partition, since, window), (dists, words) in zip(work, results):
        if partition not in owned_partitions(strata.app, topic):  # revoked meanwhile; the new owner rescans it
            metrics.PROFILES_SKIPPED.inc()
            continue
        try:
            published.append((partition, since, window.user_id,
                              await _publish(strata, model, partition, window, dists, words, now_ms)))
        except Exception:  # noqa: BLE001 - one user's failure must not cost the others their profiles
            log.exception("profiler: publishing the profile of a user on partition %d failed", partition)
            strata.dirty.mark(partition, window.user_id, since)

    for partition, since, user_id, (key, profile, delivery) in published:
        try:
            offset = (await delivery).offset
        except Exception:  # noqa: BLE001 - not on the topic: profile the user again
            log.exception("profiler: the broker refused a profile; the user is profiled again")
            strata.dirty.mark(partition, user_id, since)
            continue
        if partition not in owned_partitions(strata.app, topic):  # the new owner restores it from the topic
            continue
        with on_partition(strata.app, topic, partition):
            strata.profiles.data[key] = profile  # the local record only: the topic has it already
        strata.profiles.data.set_persisted_offset(TP(strata.profiles_topic.get_topic_name(), partition), offset)
        metrics.PROFILES.inc()
        metrics.RECOMMENDATIONS.inc()
        metrics.EVENT_TO_PROFILE.observe(time.monotonic() - since)


async def _publish(strata: Strata, model: ProfileModel, partition: int, window: Window, dists, words, now_ms: int):
    """Send one user's profile and recommendations; (key, profile bytes, the profile's delivery future)."""
    key = window.user_id.encode()
    last = strata.profiles.get(key)
    version = (json.loads(last)["version"] if last else 0) + 1
    profile = encode(profile_document(window.user_id, version, model.version, window, dists, words,
                                      model.taxonomy, now_ms))
    delivery = await strata.profiles_topic.send(key=key, value=profile, partition=partition)
    items = recommend(dists, model.taxonomy, strata.item_index, (e.item for e in window.entries),
                      strata.settings.recommendations)
    await strata.recommendations.send(key=key, value=encode(
        {"user_id": window.user_id, "profile_version": version, "model_version": model.version, "items": items}))
    return key, profile, delivery


def register(strata: Strata) -> None:
    s = strata.settings
    topic = event_topic(s, "browse")
    state = _State()
    recovery = strata.app.tables.recovery

    @strata.app.timer(s.profile_interval_s, name="profiler")
    async def profiler() -> None:
        if recovery.in_recovery or not recovery.completed.is_set():
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
            except Exception:
                # Never lose the users: they stay dirty and are tried again next tick.
                log.exception("profiler: a batch of %d users failed; retrying next tick", len(batch))
                for partition, user_id, since in batch:
                    strata.dirty.mark(partition, user_id, since)
        metrics.DIRTY_USERS.set(len(strata.dirty))
