"""`strata soak`: workers killed with -9 (data dirs sometimes wiped) while valid and hostile records
stream in; then every published event is checked against the windows changelog, the profiles
topic and the DLQ. The checks are pure functions over plain data (unit-tested by hand)."""
from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Optional

from state.window import Window
from streams.settings import MAX_WINDOW_BYTES
from streams.topics import partition_for

# Windows large enough to hold every event, so "exactly once" can be checked entry by entry: as
# many bytes as the worker allows one window record (the heaviest generated user needs ~130 KB).
BIG_WINDOWS = {"STRATA_WINDOW_MAX_EVENTS": "5000", "STRATA_WINDOW_MAX_BYTES": str(MAX_WINDOW_BYTES)}
MAX_REQUEST_BYTES = 8 * 1024 * 1024  # the 2 MB hostile record must fit (the embedded broker takes 3 MB)
COUNTS = ("lost", "duplicated", "events_seen_mismatch", "stale_profiles", "version_regressions",
          "dlq_missing", "dlq_duplicated", "dlq_unexpected", "worker_exits")


def hostile_records(rounds: int, partitions: int, now_ms: int) -> list[tuple]:
    """(kind, event type of the topic, key, value, explicit partition or None); each unique by round."""
    from state.event import iso_ms

    out = []
    for r in range(rounds):
        def doc(kind, **changes) -> dict:
            d = {"event_id": f"m-{kind}-{r}", "user_id": f"bad-{kind}-{r}", "type": "browse",
                 "ts": iso_ms(now_ms - 60_000), "text": f"hostile {kind} {r}"}
            return {k: v for k, v in {**d, **changes}.items() if v is not None}

        def add(kind, value, topic="browse", key="", partition=None):
            key = f"bad-{kind}-{r}".encode() if key == "" else key
            out.append((kind, topic, key, value if value is None or isinstance(value, bytes)
                        else json.dumps(value).encode(), partition))

        nested = '{"event_id": "m-deep-%d", "attrs": %s}' % (r, "[" * 25_000 + "]" * 25_000)
        add("bad_json", b'{"event_id": "m-bad_json-%d", oops' % r)
        add("bad_utf8", b'{"event_id": "m-bad_utf8-%d", "text": "\xff\xfe broken"}' % r)
        add("missing_user_id", doc("missing_user_id", user_id=None))
        add("missing_ts", doc("missing_ts", ts=None))
        add("no_content", doc("no_content", text=None))
        add("int_event_id", doc("int_event_id", event_id=7_000_000 + r))
        add("str_dwell", doc("str_dwell", attrs={"dwell_ms": "long"}))
        add("json_array", b"[1, 2, %d]" % r)
        add("type_vs_topic", doc("type_vs_topic", type="purchase"), topic="review")
        add("unknown_type", doc("unknown_type", type="click"))
        add("future_ts", doc("future_ts", ts="2099-01-01T00:00:00Z"))
        add("key_mismatch", doc("key_mismatch"), key=b"someone-else-%d" % r)
        add("no_key", doc("no_key"), key=None)
        add("70kb", doc("70kb", text="x" * 70_000))
        add("2mb", doc("2mb", text="y" * 2_000_000))
        add("lone_surrogate", doc("lone_surrogate", text="\ud83d hi"))  # json.dumps writes "\ud83d"
        add("5000_digit_int", json.dumps(doc("5000_digit_int", attrs={"dwell_ms": 0})).replace(
            '"dwell_ms": 0', '"dwell_ms": ' + "9" * 5000).encode())
        add("400_digit_ts", doc("400_digit_ts", ts=int("9" * 400)))
        add("nan", doc("nan", attrs={"price": float("nan")}))  # json.dumps writes NaN
        add("deep_nesting", nested.encode())
        add("empty_value", b"")  # rejected as `empty`, like a null value
        add("null_value", None)
        key = f"bad-wrong_partition-{r}".encode()
        add("wrong_partition", doc("wrong_partition"), key=key,
            partition=(partition_for(key, partitions) + 1) % partitions)
    return out


# ---------------------------------------------------------------- pure checks

def decode_window(raw: Optional[bytes]) -> Optional[dict]:
    """A windows-changelog value as a dict with `entries` (dicts with `id`) and `events_seen`,
    through the worker's own decoder when it has one."""
    if raw is None:
        return None
    w = Window.decode(raw)
    return {"user_id": w.user_id, "partition": w.partition, "events_seen": w.events_seen,
            "entries": [e.to_json() for e in w.entries]}


def check_windows(published: Mapping[str, Iterable[str]], windows: Mapping[str, Optional[dict]]) -> dict:
    """lost: published ids missing from their user's window; duplicated: ids held more than once;
    events_seen_mismatch: users whose window's events_seen is not the published count."""
    lost, duplicated, mismatch = [], [], []
    for user, ids in published.items():
        ids = set(ids)
        w = windows.get(user) or {}
        held = Counter(e["id"] for e in w.get("entries", []))
        lost += [(user, i) for i in sorted(ids - set(held))]
        duplicated += [(user, i, n) for i, n in held.items() if n > 1]
        if w.get("events_seen") != len(ids):
            mismatch.append((user, w.get("events_seen"), len(ids)))
    return {"lost": lost, "duplicated": duplicated, "events_seen_mismatch": mismatch}


def stale_profiles(expected: Mapping[str, int], latest_seen: Mapping[str, int]) -> list:
    """Users whose latest profile's events_seen is not what was published for them."""
    return [(u, latest_seen.get(u), n) for u, n in expected.items() if latest_seen.get(u) != n]


def version_regressions(rows: Iterable[tuple]) -> list:
    """rows: (partition, offset, user, version). In offset order per partition, each record of a
    user whose version is not strictly above the previous one seen for that user."""
    last: dict[str, int] = {}
    bad = []
    for partition, offset, user, version in sorted(rows, key=lambda r: (r[0], r[1])):
        if user in last and not version > last[user]:
            bad.append((user, partition, offset, last[user], version))
        last[user] = version
    return bad


def check_dlq(values: Iterable[Optional[bytes]], malformed: Mapping[tuple, str]) -> dict:
    """malformed: (topic, partition, offset) -> kind. missing: malformed records with no DLQ record carrying an error
    code; duplicated: those with more than one; unexpected: DLQ records of any other source."""
    seen, coded, codes, ats, unexpected = Counter(), Counter(), defaultdict(set), defaultdict(list), []
    for value in values:
        try:
            doc = json.loads(value)
            src = doc["source"]
            source = (src["topic"], int(src["partition"]), int(src["offset"]))
            code = doc["error"]["code"]
        except (TypeError, ValueError, KeyError) as exc:
            unexpected.append(("unreadable", repr(exc)[:80]))
            continue
        if source not in malformed:
            unexpected.append((source, code))
            continue
        seen[source] += 1
        coded[source] += bool(code)
        codes[malformed[source]].add(code)
        ats[source].append(doc.get("at"))
    return {"dlq_missing": [(s, k) for s, k in malformed.items() if not coded[s]],
            "dlq_duplicated": [(s, malformed[s], n, ats[s]) for s, n in seen.items() if n > 1],
            "dlq_unexpected": unexpected, "codes": {k: sorted(v) for k, v in sorted(codes.items())}}


# ---------------------------------------------------------------- reading topics

class TopicReader:
    """Every partition of a topic from the beginning, read on demand (no consumer group)."""

    def __init__(self, bootstrap, topic: str):
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                      client_id="strata-soak", max_partition_fetch_bytes=16 << 20,
                                      fetch_max_bytes=64 << 20)
        parts = self.consumer.partitions_for_topic(topic)
        if not parts:
            raise ValueError(f"no topic {topic!r}")
        self.tps = [TopicPartition(topic, p) for p in sorted(parts)]
        self.consumer.assign(self.tps)
        self.consumer.seek_to_beginning(*self.tps)

    def drain(self, idle: float = 2.0, limit_s: float = 180.0) -> Iterator:
        """Records so far, in offset order per partition: until idle and at least at the end offsets
        (which the embedded broker under-reports after multi-record batches: only a floor)."""
        floor = self.consumer.end_offsets(self.tps)
        start = last = time.monotonic()
        while time.monotonic() - start < limit_s:
            for records in self.consumer.poll(timeout_ms=200).values():
                for r in records:
                    last = time.monotonic()
                    yield r
            if time.monotonic() - last > idle and all(self.consumer.position(tp) >= floor[tp] for tp in self.tps):
                return
        raise TimeoutError(f"{self.tps[0].topic}: not read to its end within {limit_s:.0f}s")

    def close(self) -> None:
        self.consumer.close()


# ---------------------------------------------------------------- the run

def _publish(producer, schedule: list, duration: float, stop: threading.Event, sent: list, log) -> None:
    """Paced evenly over `duration` seconds; `sent` gets (kind, ident, future) per record."""
    t0 = time.monotonic()
    for i, (kind, ident, topic, key, value, partition) in enumerate(schedule):
        if stop.is_set():
            return
        time.sleep(max(0.0, t0 + duration * i / len(schedule) - time.monotonic()))
        try:
            sent.append((kind, ident, producer.send(topic, key=key, value=value, partition=partition)))
        except Exception as exc:  # refused by the client before sending
            log(f"producer: {kind} record {ident} not sent: {exc!r}")
        if i % 1000 == 999:
            log(f"producer: {i + 1}/{len(schedule)} records sent")
    producer.flush()


def _acked(sent: list, log) -> tuple[dict, dict]:
    """(user -> valid event ids, source -> hostile kind) of the records the broker acknowledged."""
    published, malformed = defaultdict(set), {}
    for kind, ident, future in sent:
        try:
            m = future.get(timeout=60)
        except Exception as exc:
            log(f"producer: {kind} record {ident} failed: {exc!r}")
            continue
        if kind == "valid":
            published[ident[0]].add(ident[1])
        else:
            malformed[(m.topic, m.partition, m.offset)] = kind
    return published, malformed


def _worker(broker_url: str, data_dir: Path, port: int, partitions: int, log, why: str = ""):
    """A worker on `data_dir` (log beside it); with `why`, waits until it is ready and says so."""
    from ops.process import WorkerProcess

    w = WorkerProcess(broker_url, data_dir, data_dir.with_suffix(".log"), web_port=port, partitions=partitions,
                      env=BIG_WINDOWS).start()
    if why:
        log(f"{why}: ready again after {w.wait_ready(timeout=180):.1f}s")
    return w


def _exited(procs: list, i: int, exits: list, log) -> bool:
    """A worker that died without being killed: counted, with its log's tail."""
    rc = procs[i].process.poll()
    if rc is not None:
        exits.append((i, rc))
        log(f"worker {i} exited by itself (rc {rc}):\n{procs[i].log_tail(20)}")
    return rc is not None


def _await_profiles(reader: TopicReader, expected: dict, timeout: float, log) -> tuple[list, list]:
    """Reads `profiles` until every user's latest events_seen is as published, or the timeout:
    ((partition, offset, user, version) of every record, the users still behind)."""
    rows, latest, deadline, shown = [], {}, time.monotonic() + timeout, time.monotonic()
    while True:
        for r in reader.drain(idle=1.0):
            if r.value is not None:
                doc, user = json.loads(r.value), r.key.decode("utf-8", "replace")
                rows.append((r.partition, r.offset, user, doc["version"]))
                latest[user] = doc["events_seen"]
        behind = stale_profiles(expected, latest)
        if not behind or time.monotonic() > deadline:
            return rows, behind
        if time.monotonic() - shown > 10:
            shown = time.monotonic()
            log(f"waiting for profiles: {len(behind)} of {len(expected)} users behind, e.g. {behind[:3]}")
        time.sleep(1.0)


def run_soak(cycles: int = 3, workers: int = 2, events: int = 6000, users: int = 500, seed: int = 0,
             json_out: Optional[Path] = None, profile_timeout: float = 180.0, log=None) -> dict:
    """The whole soak; returns the summary (its COUNTS are all 0 when nothing went wrong)."""
    from kafka import KafkaProducer

    from model.datasets.synthetic import generate
    from ops.broker import EmbeddedBroker, free_port
    from ops.clients import publish_items
    from streams.settings import Settings
    from streams.topics import create_topics, event_topic, windows_changelog

    t_start = time.monotonic()
    log = log or (lambda m: print(f"[soak {time.strftime('%H:%M:%S')} {time.monotonic() - t_start:6.1f}s] {m}",
                                  file=sys.stderr, flush=True))
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="strata-soak-"))
    broker = EmbeddedBroker(log_path=work / "broker.log")
    procs, readers, stop, producer, thread, ok = [], [], threading.Event(), None, None, False
    try:
        broker.start()
        settings = Settings.from_env(broker=broker.url)
        n = settings.partitions
        create_topics(settings)
        items, valid = generate(events, users, seed=seed)
        publish_items(settings, items)
        log(f"broker {broker.url}, {len(items)} items published; work dir {work}")
        procs = [_worker(broker.url, work / f"w{i}", free_port(), n, log) for i in range(workers)]
        for w in procs:
            w.wait_ready(timeout=120)
        log(f"{workers} workers ready")

        bad = hostile_records(max(1, round(events / 3000)), n, int(time.time() * 1000))
        schedule = [("valid", (e["user_id"], e["event_id"]), event_topic(settings, e["type"]), e["user_id"].encode(),
                     json.dumps(e, ensure_ascii=False).encode(), None) for e in valid]
        for kind, etype, key, value, partition in bad:
            entry = (kind, kind, event_topic(settings, etype), key, value, partition)
            schedule.insert(rng.randrange(len(schedule) + 1), entry)
        duration, sent = max(20.0, 15.0 * cycles), []
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=5, batch_size=64 * 1024,
                                 max_request_size=MAX_REQUEST_BYTES, client_id="strata-soak")
        thread = threading.Thread(target=_publish, args=(producer, schedule, duration, stop, sent, log), daemon=True)
        pub_start = time.monotonic()
        thread.start()
        log(f"publishing {len(valid)} valid and {len(bad)} hostile records over ~{duration:.0f}s")

        exits = []
        for c in range(cycles):  # one kill at a random moment in each slice of the publishing period
            time.sleep(max(0.0, pub_start + duration * (c + rng.random()) / cycles - time.monotonic()))
            i, wipe = rng.randrange(workers), rng.random() < 0.4
            _exited(procs, i, exits, log)
            wiping = ", wiping its data dir" if wipe else ""
            log(f"cycle {c + 1}/{cycles}: kill -9 worker {i} ({len(sent)} records sent){wiping}")
            procs[i].kill()
            if wipe:
                shutil.rmtree(procs[i].data_dir, ignore_errors=True)
            procs[i] = _worker(broker.url, procs[i].data_dir, procs[i].web_port, n, log, f"cycle {c + 1}: worker {i}")
            time.sleep(rng.uniform(2, 6))
        thread.join()
        published, malformed = _acked(sent, log)
        expected = {u: len(ids) for u, ids in published.items()}
        log(f"publishing done: {sum(expected.values())} valid events of {len(expected)} users, "
            f"{len(malformed)} hostile records acknowledged")
        for i, w in enumerate(procs):
            if _exited(procs, i, exits, log):
                procs[i] = _worker(broker.url, w.data_dir, w.web_port, n, log, f"worker {i}")

        readers.append(TopicReader(broker.bootstrap, settings.topic("profiles")))
        rows, behind = _await_profiles(readers[-1], expected, profile_timeout, log)
        log(f"profiles: {len(rows)} records, {len(behind)} users behind; reading the windows changelog and the DLQ")
        readers.append(TopicReader(broker.bootstrap, windows_changelog(settings)))
        raw = {r.key.decode("utf-8", "replace"): r.value for r in readers[-1].drain()}
        windows = {k: decode_window(v) for k, v in raw.items()}
        readers.append(TopicReader(broker.bootstrap, settings.topic("events.dlq")))
        found = {**check_windows(published, windows), "stale_profiles": behind,
                 "version_regressions": version_regressions(rows),
                 **check_dlq([r.value for r in readers[-1].drain()], malformed), "worker_exits": exits}
        summary = {"cycles": cycles, "workers": workers, "events": sum(expected.values()), "users": len(expected),
                   "malformed": len(malformed), **{k: len(found[k]) for k in COUNTS},
                   "wall_s": round(time.monotonic() - t_start, 1)}
        log(f"DLQ codes by hostile kind: {found['codes']}")
        log(f"hostile records that reached a window: {sorted(k for k in windows if k.startswith('bad-'))}")
        for k in COUNTS:
            if found[k]:
                log(f"{k}: {len(found[k])}, e.g. {found[k][:6]}")
        ok = not any(summary[k] for k in COUNTS)
        for i, w in enumerate(procs if not ok else []):
            log(f"worker {i} log tail:\n{w.log_tail(25)}")
        if json_out:
            Path(json_out).write_text(json.dumps(summary, indent=1) + "\n")
        return summary
    finally:  # every exit path, Ctrl-C included
        stop.set()
        if thread is not None:
            thread.join(timeout=10)
        for r in readers:
            r.close()
        if producer is not None:
            producer.close(timeout=5)
        stoppers = [threading.Thread(target=w.stop) for w in procs]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join()
        broker.stop()
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"logs kept in {work}")
