"""Two workers share the group: a second worker joins mid-stream and the first leaves gracefully
(two rebalances), and still every event is counted once and profile versions only rise."""
from __future__ import annotations

import time
from collections import defaultdict

import pytest

from model.datasets.synthetic import generate
from ops.clients import producer, publish_events, publish_items
from ops.soak import BIG_WINDOWS, check_windows, version_regressions

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]


def test_join_and_leave_rebalances_keep_every_event_exactly_once(cluster):
    items, events = generate(1500, 200, seed=21)
    first, second, third = events[:500], events[500:1000], events[1000:]
    publish_items(cluster.settings, items)
    p = producer(cluster.settings.broker_info())
    publish_events(p, cluster.settings, first)

    w1 = cluster.worker("w1", env=BIG_WINDOWS)
    w1.wait_ready()
    w2 = cluster.worker("w2", env=BIG_WINDOWS)  # joins while w1 works through `first`: rebalance
    w2.wait_ready()
    publish_events(p, cluster.settings, second)
    deadline = time.monotonic() + 60
    while w2.accepted_events() == 0:  # w2 owns partitions and takes events
        assert time.monotonic() < deadline, f"worker 2 took no events:\n{w2.log_tail()}"
        time.sleep(0.2)
    w1_accepted = w1.accepted_events()
    w1.stop()  # graceful leave, maybe mid-batch: rebalance again, w2 takes every partition
    assert w1_accepted > 0, w1.log_tail()
    publish_events(p, cluster.settings, third)

    published = defaultdict(list)
    for e in events:
        published[e["user_id"]].append(e["event_id"])
    expected = {u: len(ids) for u, ids in published.items()}
    cluster.wait_for_profiles(expected, timeout=120)

    found = check_windows(published, cluster.latest_windows())
    assert not found["lost"], f"{len(found['lost'])} events missing from windows, e.g. {found['lost'][:5]}"
    assert not found["duplicated"], f"{len(found['duplicated'])} held twice, e.g. {found['duplicated'][:5]}"
    assert not found["events_seen_mismatch"], found["events_seen_mismatch"][:5]
    regressions = version_regressions(cluster.profile_rows())
    assert not regressions, f"{len(regressions)} profile versions not above the last, e.g. {regressions[:5]}"
