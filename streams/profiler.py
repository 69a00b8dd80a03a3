"""The profiler timer: dirty users of owned partitions -> batched inference off the loop -> profiles.

Every `profile_interval_s` it takes the users whose windows changed, runs the profile model on
them in batches in a worker thread, and writes each profile to the profiles table (whose
changelog is the `profiles` topic) with `version` one above the last, plus a recommendation
list. When this worker gains partitions (start, restart, rebalance) it rescans their windows
and profiles every user whose window is newer than their last profile.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from model.entry import resolve_entry
from model.profile import ProfileModel, profile_document
from model.recommend import recommend
from streams import metrics
from streams.app import Strata, apply_item_record
from streams.tables import on_partition, owned_partitions
from streams.topics import event_topic

log = logging.getLogger(__name__)


@dataclass
class _State:
    owned: set[int] = field(default_factory=set)
    items_loaded: bool = False


def _infer(model: ProfileModel, windows: list[list[dict]]) -> list[tuple[dict, dict]]:
    dists = model.predict(windows)
    return [(d, model.explain(entries)) for d, entries in zip(dists, windows)]


def _rescan(strata: Strata, partitions: set[int]) -> int:
    """Mark users of newly owned partitions whose window is newer than their last profile."""
    n = 0
    for key, doc in strata.windows.items():
        if doc.get("partition") not in partitions:
            continue
        last = strata.profiles.get(key)
        if last is None or last["events_seen"] < doc["events_seen"]:
            strata.dirty.mark(doc["partition"], key.decode())
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
        doc = strata.windows.get(user_id.encode())
        if doc and doc["entries"]:
            entries = [resolve_entry(e, strata.item_index, s.max_text_chars) for e in doc["entries"]]
            work.append((partition, user_id, since, doc, entries))
    if not work:
        return
    model = strata.model  # one model for the whole batch, even if a reload swaps it meanwhile
    started = time.perf_counter()
    results = await asyncio.get_running_loop().run_in_executor(strata.model_thread, _infer, model, [w[4] for w in work])
    metrics.INFERENCE_SECONDS.observe(time.perf_counter() - started)
    metrics.INFERENCE_BATCH.observe(len(work))

    owned = owned_partitions(strata.app, topic)
    now_ms = int(time.time() * 1000)
    for (partition, user_id, since, doc, entries), (dists, words) in zip(work, results):
        if partition not in owned:  # revoked meanwhile; the new owner rescans it
            continue
        last = strata.profiles.get(user_id.encode())
        version = (last["version"] if last else 0) + 1
        profile = profile_document(user_id, version, model.version, doc, dists, words, model.taxonomy, now_ms)
        with on_partition(strata.app, topic, partition):
            strata.profiles[user_id.encode()] = profile
        items = recommend(dists, model.taxonomy, strata.item_index, (e["item"] for e in entries),
                          s.recommendations)
        await strata.recommendations.send(
            key=user_id.encode(),
            value={"user_id": user_id, "profile_version": version, "model_version": model.version, "items": items},
        )
        metrics.PROFILES.inc()
        metrics.RECOMMENDATIONS.inc()
        metrics.EVENT_TO_PROFILE.observe(time.monotonic() - since)


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
                         sorted(gained), _rescan(strata, gained))
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
