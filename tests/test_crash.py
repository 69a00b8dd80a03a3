"""kill -9 mid-stream, restart (keeping, then deleting, the data dir): nothing lost, nothing twice."""
from __future__ import annotations

import shutil
import threading
import time
from collections import Counter, defaultdict

import pytest

from model.datasets.synthetic import generate
from ops.clients import producer, publish_events, publish_items

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]

# Windows large enough to hold every event, so "exactly once" can be checked entry by entry.
BIG_WINDOWS = {"STRATA_WINDOW_MAX_EVENTS": "5000", "STRATA_WINDOW_MAX_BYTES": "900000"}


def _publish_in_background(cluster, events):
    p = producer(cluster.settings.broker_info())
    thread = threading.Thread(target=publish_events, args=(p, cluster.settings, events), daemon=True)
    thread.start()
    return thread


def _crash_mid_stream(cluster, worker, events, min_accepted):
    """Publish `events` while the worker runs, and SIGKILL it once it has taken some of them."""
    thread = _publish_in_background(cluster, events)
    deadline = time.monotonic() + 60
    while worker.accepted_events() < min_accepted:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.05)
    worker.kill()
    thread.join(timeout=60)


def test_kill_9_and_restart_keeps_every_event_exactly_once(cluster):
    items, events = generate(2400, 100, seed=11)
    first, second, third = events[:800], events[800:1600], events[1600:]
    publish_items(cluster.settings, items)

    worker = cluster.worker("w1", env=BIG_WINDOWS)
    worker.wait_ready()
    publish_events(producer(cluster.settings.broker_info()), cluster.settings, first)
    _crash_mid_stream(cluster, worker, second, min_accepted=len(first) + 100)

    # Restart on the same data dir: RocksDB is kept, the changelog fills in the rest.
    worker = cluster.worker("w1", env=BIG_WINDOWS)
    worker.wait_ready()
    _crash_mid_stream(cluster, worker, third, min_accepted=100)

    # Restart with the data dir gone: everything comes back from the changelogs.
    shutil.rmtree(cluster.tmp / "w1")
    worker = cluster.worker("w1", env=BIG_WINDOWS)
    worker.wait_ready()

    expected = Counter(e["user_id"] for e in events)
    cluster.wait_for_profiles(dict(expected), timeout=120)  # raises unless every profile covers every event

    published = defaultdict(list)
    for e in events:
        published[e["user_id"]].append(e["event_id"])
    windows = cluster.latest_windows()
    for user, ids in published.items():
        held = [entry["id"] for entry in windows[user]["entries"]]
        assert len(held) == len(set(held)), f"{user}: an event is in the window twice"
        assert sorted(held) == sorted(ids), f"{user}: window differs from what was published"
        assert windows[user]["events_seen"] == len(ids)

    # Profile versions only ever rise, across both crashes.
    for user, versions in cluster.profile_versions().items():
        assert versions == sorted(versions) and len(set(versions)) == len(versions), (user, versions)
