"""End to end on a real broker: valid events become layered profiles, malformed records land in the DLQ."""
from __future__ import annotations

import base64
import json
from collections import Counter

import pytest
from conftest import GOOD, malformed_records, shipped_schema
from kafka import KafkaProducer

from model.datasets.synthetic import generate
from model.documents import encode, scrub_bytes
from ops.clients import producer, publish_events, publish_items
from streams.topics import partition_for

pytestmark = [pytest.mark.broker, pytest.mark.timeout(240)]

TOKEN = "pipeline-secret"


def test_events_become_layered_profiles_and_bad_records_reach_the_dlq(cluster):
    items, events = generate(2400, 120, seed=3)
    expected = Counter(e["user_id"] for e in events)
    assert len(expected) >= 100 and len(events) >= 2000
    p = producer(cluster.settings.broker_info())
    publish_items(cluster.settings, items)
    # Half before the worker's group exists (it must start from the earliest offset), half after.
    publish_events(p, cluster.settings, events[:1200])

    worker = cluster.worker(env={"STRATA_HTTP_TOKEN": TOKEN})
    startup = worker.wait_ready(timeout=30)
    # Start-up on the embedded broker takes seconds, not Faust's default 30 s group timeouts.
    assert startup < 20, f"worker took {startup:.1f} s to become ready"
    publish_events(p, cluster.settings, events[1200:])
    bad = malformed_records()
    raw = KafkaProducer(bootstrap_servers=cluster.broker.bootstrap, batch_size=0, max_request_size=2 << 20)
    for topic, key, value, _ in bad:
        raw.send(topic, key=key, value=value)
    # A valid event on the wrong partition for its key (librdkafka's default partitioner does this).
    misplaced = encode({**GOOD, "event_id": "m18"})
    wrong = (partition_for(b"bad-user", cluster.settings.partitions) + 1) % cluster.settings.partitions
    raw.send("events.browse", key=b"bad-user", value=misplaced, partition=wrong)
    bad.append(("events.browse", b"bad-user", misplaced, "wrong_partition"))
    # A valid 60 KB event: accepted, its text cut to the bound.
    big = {**GOOD, "event_id": "big-1", "user_id": "big-user", "text": "三体 刘慈欣 " * 3500}  # 60 KB
    raw.send("events.browse", key=b"big-user", value=encode(big))
    expected["big-user"] = 1
    raw.flush()

    profiles = cluster.wait_for_profiles(dict(expected))
    for user, profile in profiles.items():
        if user not in expected:
            continue
        shipped_schema("profile").validate(profile)  # the documents consumers get meet the shipped schemas
        assert set(profile["layers"]) == {"surface", "middle", "deep"}
        assert profile["schema_version"] == 2
        for layer, doc in profile["layers"].items():
            assert len(doc["top"]) == 5 and abs(sum(x["p"] for x in doc["top"]) + doc["rest"] - 1.0) < 1e-3, (user, layer)
            assert doc["top"] == sorted(doc["top"], key=lambda x: -x["p"]) and 0 <= doc["inferred"] <= 1
        assert profile["keywords"]["surface"], user
        assert profile["window"]["events"] == min(expected[user], 128)
    assert "bad-user" not in profiles  # no malformed record produced state

    dlq = [json.loads(r.value) for r in cluster.records("events.dlq")]
    assert len(dlq) == len(bad)
    for entry in dlq:
        shipped_schema("dlq").validate(entry)
    # The DLQ keeps a bounded copy (8 KiB by default) and the original size.
    by_raw = {base64.b64decode(d["raw"]): d for d in dlq}
    for topic, key, value, code in bad:
        entry = by_raw[scrub_bytes(value, 8192)]
        assert entry["error"]["code"] == code, (value[:60], entry["error"])
        assert entry["error"]["message"] and entry["raw_bytes"] == len(value) and entry["schema_version"] == 1
        assert entry["source"]["topic"] == topic
    # No valid event was rejected: the accepted count is exactly what was published.
    assert worker.accepted_events() == len(events) + 1
    assert all(b"13812345678" not in base64.b64decode(d["raw"]) for d in dlq)  # DLQ copies are scrubbed
    assert worker.metric("strata_events_rejected_total") == len(bad)

    # The owning worker serves the latest profile over HTTP, to holders of the token only.
    user = next(iter(expected))
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, body = worker.get(f"/profiles/{user}", headers=auth)
    assert status == 200 and json.loads(body)["events_seen"] == expected[user]
    shipped_schema("profile").validate(json.loads(body))
    status, body = worker.get("/profiles/nobody/", headers=auth)
    assert status == 404 and b"no profile" in body
    assert worker.get(f"/profiles/{user}")[0] == 401
    assert worker.get(f"/profiles/{user}", headers={"Authorization": "Bearer wrong"})[0] == 401
    assert worker.get("/profiles/" + "u" * 129, headers=auth)[0] == 400
    # Faust's own pages that serve raw tables or the cluster layout are off; metrics and readiness stay.
    for path in (f"/table/windows/{user}/", "/table/", "/router/", "/graph/", "/stats/"):
        assert worker.get(path)[0] == 404, path
    assert worker.get("/metrics")[0] == 200 and worker.get("/ready/")[0] == 200
    assert listen_addresses(worker.web_port) == {"127.0.0.1"}

    recs = {r.key.decode(): json.loads(r.value) for r in cluster.records("recommendations")}
    for doc in recs.values():
        shipped_schema("recommendations").validate(doc)
    assert recs[user]["items"] and recs[user]["profile_version"] >= 1
    seen_items = {e["item_id"] for e in events if e["user_id"] == user}
    assert not seen_items & {i["item_id"] for i in recs[user]["items"]}


def listen_addresses(port: int) -> set[str]:
    """IPv4 addresses with a socket listening on `port`, from /proc/net/tcp (state 0A is LISTEN)."""
    found = set()
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        addr, _, hex_port = local.partition(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(addr))))
    return found


def test_worker_refuses_to_start_without_its_topics(tmp_path):
    from ops.broker import EmbeddedBroker
    from ops.process import WorkerProcess

    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        w = WorkerProcess(broker.url, tmp_path / "w", tmp_path / "w.log").start()
        assert w.process.wait(timeout=30) != 0
        log = w.log_path.read_text()
        assert "missing topic 'events.browse'" in log and "strata topics create" in log
