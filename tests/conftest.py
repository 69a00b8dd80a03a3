"""Fixtures: a real Tansu broker process per test, and workers as real child processes."""
from __future__ import annotations

import json
import time
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import jsonschema
import pytest

from model.documents import encode, json_schemas, schema_file
from ops.broker import EmbeddedBroker
from ops.clients import read_topic
from ops.process import WorkerProcess
from ops.soak import decode_window
from streams.settings import Settings
from streams.topics import create_topics, windows_changelog


# A valid event of the user every malformed record claims; and every kind of bad record.
GOOD = {"event_id": "x", "user_id": "bad-user", "type": "browse", "ts": "2026-11-01T00:00:00Z", "text": "三体"}


def malformed_records() -> list[tuple[str, bytes | None, bytes, str]]:
    """(topic, key, value, expected error code) for each kind of bad record."""
    def ev(**changes):
        doc = {**GOOD, **changes}
        return encode({k: v for k, v in doc.items() if v is not None})

    key = b"bad-user"
    return [
        ("events.browse", key, b"{not json", "bad_json"),
        ("events.browse", key, b'{"text": "\xff\xfe broken"}', "bad_utf8"),
        ("events.browse", key, ev(event_id="m1", user_id=None), "missing_field"),
        ("events.browse", key, ev(event_id="m2", ts=None), "missing_field"),
        ("events.browse", key, ev(event_id="m3", text=None), "no_content"),
        ("events.browse", key, ev(event_id=12345), "wrong_type"),
        ("events.browse", key, ev(event_id="m5", attrs={"dwell_ms": "long"}), "wrong_type"),
        ("events.review", key, ev(event_id="m6", type="review", attrs={"rating": 9}), "out_of_range"),
        ("events.purchase", key, ev(event_id="m7"), "type_mismatch"),
        ("events.browse", key, ev(event_id="m8", type="click"), "unknown_type"),
        ("events.browse", key, ev(event_id="m9", ts="2099-01-01T00:00:00Z"), "future_timestamp"),
        ("events.browse", key, ev(event_id="m10", ts="yesterday"), "bad_timestamp"),
        ("events.browse", key, ev(event_id="m11", text="x" * 70_000), "too_large"),
        ("events.browse", key, b"[1, 2, 3]", "wrong_type"),
        ("events.browse", b"someone-else", ev(event_id="m12"), "key_mismatch"),
        # Hostile ones: each of these once stopped the ingest agent and cost other users their events.
        ("events.browse", key, ev(event_id="m13").replace("三体".encode(), b"\\ud83d hi"), "bad_unicode"),
        ("events.browse", key, ev(event_id="m14").replace(b'"2026-11-01T00:00:00Z"', b"9" * 400), "number_too_large"),
        ("events.browse", key, ev(event_id="m15").replace(b"}", b', "n": ' + b"7" * 5000 + b"}"), "number_too_large"),
        ("events.browse", key, ev(event_id="m16", text="字" * 300_000), "too_large"),  # 900 KB
        ("events.browse", key, ev(event_id="m17", text="call 13812345678 " + "x" * 66_000), "too_large"),
    ]


@lru_cache(maxsize=None)
def shipped_schema(name: str) -> jsonschema.Draft202012Validator:
    """A validator for the committed schemas/ file of a document (event, item, profile, recommendations,
    dlq): what producers and consumers validate against."""
    path = Path(__file__).parent.parent / "schemas" / schema_file(json_schemas()[name])
    return jsonschema.Draft202012Validator(json.loads(path.read_text("utf-8")))


class Cluster:
    def __init__(self, broker: EmbeddedBroker, tmp: Path):
        self.broker = broker
        self.tmp = tmp
        self.settings = Settings.from_env(broker=broker.url, partitions=4)
        self.workers: list[WorkerProcess] = []

    def worker(self, name: str = "w1", env: dict | None = None) -> WorkerProcess:
        w = WorkerProcess(self.broker.url, self.tmp / name, self.tmp / f"{name}.log", env=env)
        self.workers.append(w)
        return w.start()

    def records(self, topic: str, idle: float = 1.5) -> list:
        return list(read_topic(self.settings.broker_info(), self.settings.topic(topic), idle_timeout=idle))

    def latest_profiles(self) -> dict[str, dict]:
        return {r.key.decode(): json.loads(r.value) for r in self.records("profiles")}

    def profile_versions(self) -> dict[str, list[int]]:
        versions = defaultdict(list)
        for r in self.records("profiles"):
            versions[r.key.decode()].append(json.loads(r.value)["version"])
        return versions

    def profile_rows(self) -> list[tuple[int, int, str, int]]:
        """(partition, offset, user, version) of every record of the profiles topic."""
        return [(r.partition, r.offset, r.key.decode(), json.loads(r.value)["version"])
                for r in self.records("profiles") if r.value is not None]

    def latest_windows(self) -> dict[str, dict]:
        """The windows table as its changelog holds it: what a restore would give (decoded as the
        worker decodes it: a dict with at least `entries` and `events_seen`)."""
        records = read_topic(self.settings.broker_info(), windows_changelog(self.settings), idle_timeout=1.5)
        return {r.key.decode(): decode_window(r.value) for r in records}

    def wait_for_profiles(self, expected: dict[str, int], timeout: float = 90.0) -> dict[str, dict]:
        """Until every user's latest profile covers `expected[user]` events (or the timeout)."""
        deadline = time.monotonic() + timeout
        latest: dict[str, dict] = {}
        while time.monotonic() < deadline:
            latest = self.latest_profiles()
            if all(latest.get(u, {}).get("events_seen") == n for u, n in expected.items()):
                return latest
            time.sleep(1.0)
        behind = {u: (latest.get(u, {}).get("events_seen"), n) for u, n in expected.items()
                  if latest.get(u, {}).get("events_seen") != n}
        raise AssertionError(f"{len(behind)} users without an up-to-date profile, e.g. "
                             f"{list(behind.items())[:5]} (seen, expected)\n"
                             + "\n".join(w.log_tail(15) for w in self.workers))


def generated_histories(n_events: int, n_users: int, seed: int) -> dict:
    """Generated events as training histories, items resolved through the catalogue."""
    from model.datasets.synthetic import generate
    from model.training.data import load_histories
    from state.event import Item
    from state.items import ItemIndex

    items, events = generate(n_events, n_users, seed=seed, end_ms=1_790_000_000_000)
    index = ItemIndex()
    for i in items:
        index.put(Item.model_validate(i))
    histories, invalid = load_histories([json.dumps(e, ensure_ascii=False) for e in events], index)
    assert invalid == 0
    return histories


def tiny_checkpoint(histories: dict, root: Path, seed: int = 0) -> Path:
    """A real checkpoint from the smallest training that writes one (seconds), in `root`, LATEST naming it."""
    from model.taxonomy import Taxonomy
    from model.training.trainer import TrainConfig, train

    config = TrainConfig(encoder="cnn-lstm", d_model=16, text_dim=16, heads=2, cuts_per_user=4, max_events=32,
                         epochs=1, progress=False, seed=seed)
    return train(histories, Taxonomy.load(), root, config)[0]


@pytest.fixture
def cluster(tmp_path):
    with EmbeddedBroker(log_path=tmp_path / "broker.log") as broker:
        c = Cluster(broker, tmp_path)
        create_topics(c.settings)
        try:
            yield c
        finally:
            for w in c.workers:
                w.stop()
