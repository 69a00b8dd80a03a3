"""`strata bench ingest`: worker throughput against a reference aiokafka loop, and event-to-profile delay.

Everything runs on the embedded broker in one process tree, so the ratio (worker / reference)
is the figure that travels between machines; absolute events/s depend on the box.
"""
from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import click

from model.datasets.synthetic import generate
from ops.broker import EmbeddedBroker
from ops.clients import producer, publish_events, publish_items, read_topic
from ops.process import WorkerProcess
from state.event import EVENT_TYPES
from streams.settings import Settings
from streams.topics import create_topics, event_topic


async def _reference_loop(bootstrap: str, topics: list[str], sink: str, n: int, group: str) -> float:
    """What a plain, well-written aiokafka service pays to move every event on: per poll, one
    send per record without waiting for each, one flush, one commit. Events/s."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=group)
    prod = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=5)
    await consumer.start()
    await prod.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        seen, started = 0, None
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            if not batches:
                continue
            if started is None:
                started = time.perf_counter()
            for records in batches.values():
                for r in records:
                    await prod.send(sink, key=r.key, value=r.value)  # enqueues; delivery is the flush's
                seen += len(records)
            await prod.flush()
            await consumer.commit()
        return n / (time.perf_counter() - started)
    finally:
        await consumer.stop()
        await prod.stop()


def _worker_rate(broker: EmbeddedBroker, settings: Settings, workdir: Path, events: list[dict], run: int) -> float:
    """Events/s from the first accepted event to the last, all events published beforehand."""
    worker = WorkerProcess(broker.url, workdir / f"w{run}", workdir / f"w{run}.log",
                           env={"STRATA_APP_ID": settings.app_id, "STRATA_TOPIC_PREFIX": settings.topic_prefix})
    worker.start()
    try:
        worker.wait_ready()
        first = None
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            n = worker.accepted_events()
            if n > 0 and first is None:
                first = (time.perf_counter(), n)
            if n >= len(events):
                t0, n0 = first
                return (n - n0) / max(time.perf_counter() - t0, 1e-9)
            time.sleep(0.02)
        raise TimeoutError(worker.log_tail())
    finally:
        worker.stop()


def _delays(broker: EmbeddedBroker, settings: Settings, workdir: Path, events: list[dict], rate: float) -> list[float]:
    """Publish at `rate` events/s into a caught-up worker; per event, seconds until a profile covers it."""
    worker = WorkerProcess(broker.url, workdir / "delay", workdir / "delay.log",
                           env={"STRATA_APP_ID": settings.app_id, "STRATA_TOPIC_PREFIX": settings.topic_prefix,
                                "STRATA_PROFILE_INTERVAL_S": "1.0"})
    worker.start()
    try:
        worker.wait_ready()
        sent: dict[str, list[float]] = defaultdict(list)  # user -> send time of its k-th event
        covered: dict[str, list[tuple[int, float]]] = defaultdict(list)
        stop = threading.Event()

        def watch():
            for r in read_topic(settings.broker_info(), settings.topic("profiles"), idle_timeout=None,
                                deadline=time.monotonic() + 600):
                p = json.loads(r.value)
                covered[p["user_id"]].append((p["events_seen"], time.perf_counter()))
                if stop.is_set() and all(covered[u] and covered[u][-1][0] >= len(t) for u, t in sent.items()):
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        p = producer(settings.broker_info())
        start = time.perf_counter()
        for i, e in enumerate(events):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent[e["user_id"]].append(time.perf_counter())
            publish_events(p, settings, [e])
        stop.set()
        watcher.join(timeout=60)
        out = []
        for user, times in sent.items():
            for k, t in enumerate(times, 1):
                t_cov = next((tc for seen, tc in covered[user] if seen >= k), None)
                if t_cov is not None:
                    out.append(t_cov - t)
        return out
    finally:
        worker.stop()


def bench_ingest(n_events: int, n_users: int, runs: int) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-"))
    items, events = generate(n_events, n_users, seed=1)
    results = {"events": n_events, "users": n_users, "runs": runs, "reference": [], "worker": []}
    try:
        with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
            for run in range(runs):
                settings = Settings.from_env(broker=broker.url, topic_prefix=f"b{run}.", app_id=f"bench{run}")
                create_topics(settings)
                p = producer(settings.broker_info())
                publish_items(settings, items)
                t0 = time.perf_counter()
                publish_events(p, settings, events)
                click.echo(f"run {run + 1}/{runs}: published {n_events} events in {time.perf_counter() - t0:.1f} s")
                topics = [event_topic(settings, t) for t in EVENT_TYPES]
                reference = asyncio.run(_reference_loop(broker.bootstrap, topics, settings.topic("recommendations"),
                                                   n_events, group=f"bench-reference{run}"))
                worker = _worker_rate(broker, settings, workdir, events, run)
                results["reference"].append(reference)
                results["worker"].append(worker)
                click.echo(f"  reference aiokafka loop {reference:9.0f} ev/s   worker {worker:9.0f} ev/s   "
                           f"ratio {worker / reference:.2f}")
            settings = Settings.from_env(broker=broker.url, topic_prefix="delay.", app_id="benchdelay")
            create_topics(settings)
            publish_items(settings, items)
            _, trickle = generate(min(n_events, 3000), min(n_users, 300), seed=2)
            delays = sorted(_delays(broker, settings, workdir, trickle, rate=200.0))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results.update(
        reference_eps=statistics.median(results["reference"]), worker_eps=statistics.median(results["worker"]),
        ratio=statistics.median([w / r for w, r in zip(results["worker"], results["reference"])]),
        delay_events=len(delays), p50_s=delays[len(delays) // 2] if delays else None,
        p99_s=delays[int(len(delays) * 0.99)] if delays else None,
    )
    return results
