"""`strata bench ingest`: throughput of N workers against a reference aiokafka loop, event-to-profile
delay, and what the workers hold per user (window state, resident memory).

Everything runs on the embedded broker in one process tree, so the ratio (workers / reference)
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
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import click

from model.datasets.synthetic import generate
from model.latest import CheckpointError, latest_version, point_latest
from ops.broker import EmbeddedBroker
from ops.clients import producer, publish_events, publish_items, read_topic
from ops.process import WorkerProcess
from state.event import EVENT_TYPES
from streams.settings import Broker, Settings
from streams.topics import create_topics, event_topic, windows_changelog

MB = 1024 * 1024
LOAD_SEED = 1  # the generated events every run publishes
DELAY_EVENTS, DELAY_RATE = 3000, 200.0  # the delay phase's trickle: events, and events/s


async def _reference_loop(broker: Broker, topics: list[str], sink: str, n: int, group: str) -> float:
    """What a plain, well-written aiokafka service pays to move every event on: per poll, one
    send per record without waiting for each, one flush, one commit. Events/s. It fetches with
    the workers' fetch wait on this broker."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, enable_auto_commit=False, group_id=group,
                                **broker.fetch_wait())
    prod = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks=1, linger_ms=5)
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


def checkpoints_root(checkpoint: Path, workdir: Path) -> Optional[Path]:
    """The checkpoints directory workers read (one holding LATEST, as STRATA_CHECKPOINTS_DIR), or
    None when `checkpoint` holds no checkpoint. `checkpoint` may also be one version directory, as
    `strata eval --checkpoint` takes: it then gets a root of its own in `workdir`."""
    if latest_version(checkpoint):
        return checkpoint
    if not (checkpoint / "config.json").is_file():
        return None
    root = workdir / "checkpoints"
    root.mkdir()
    (root / checkpoint.name).symlink_to(checkpoint.resolve(), target_is_directory=True)
    point_latest(root, checkpoint.name)
    return root


def _choose_model(profile_model: Optional[str], checkpoint: Optional[Path],
                  workdir: Path) -> tuple[str, Optional[Path]]:
    """("learned" or "baseline", the checkpoints directory workers read or None for the baseline)."""
    checkpoint = checkpoint or Settings.from_env().checkpoints_dir
    checkpoints = checkpoints_root(checkpoint, workdir)
    profile_model = profile_model or ("learned" if checkpoints else "baseline")
    if profile_model == "learned" and checkpoints is None:
        raise CheckpointError(f"the learned model needs a checkpoint: there is none in {checkpoint}")
    return profile_model, checkpoints if profile_model == "learned" else None


@contextmanager
def running_workers(broker: EmbeddedBroker, settings: Settings, workdir: Path, name: str, n: int,
                    env: dict) -> Iterator[list[WorkerProcess]]:
    """`n` workers of one group (same app id, topics and partitions), started together, stopped by PID."""
    workers: list[WorkerProcess] = []
    try:
        for i in range(n):
            workers.append(WorkerProcess(broker.url, workdir / f"{name}-{i}", workdir / f"{name}-{i}.log",
                                         partitions=settings.partitions, env=env).start())
        yield workers
    finally:
        for w in workers:
            w.stop()


def _ingest_rate(workers: list[WorkerProcess], total: int) -> float:
    """Events/s of all workers together, from the first accepted event to the last (all published beforehand)."""
    first = None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        for w in workers:
            if w.process.poll() is not None:
                raise RuntimeError(f"worker exited with {w.process.returncode}:\n{w.log_tail()}")
        n = sum(w.accepted_events() for w in workers)
        if n > 0 and first is None:
            first = (time.perf_counter(), n)
        if n >= total:
            t0, n0 = first
            if n0 >= total:
                raise RuntimeError(f"all {total} events were taken between two samples: bench more events")
            return (n - n0) / (time.perf_counter() - t0)
        time.sleep(0.1)  # each sample is a /metrics scrape, which costs the workers CPU
    raise TimeoutError("\n".join(w.log_tail() for w in workers))


def _served_model(workers: list[WorkerProcess], checkpoints: Optional[Path]) -> tuple[str, str]:
    """("learned" or "baseline", the version) the workers serve, read from their /metrics; raises when
    they disagree or when a checkpoint was asked for and a worker serves the baseline (a refused one)."""
    versions = {w.model_version() for w in workers}
    if len(versions) != 1 or None in versions:
        raise RuntimeError(f"workers serve different or unknown models: {versions}")
    version = versions.pop()
    if checkpoints is None:
        return "baseline", version
    if version != latest_version(checkpoints):
        raise RuntimeError(f"asked for checkpoint {latest_version(checkpoints)}, workers serve {version}:\n"
                           + workers[0].log_tail())
    return "learned", version


def _latest_window_sizes(settings: Settings) -> dict[str, int]:
    """Per user with a window, the encoded size of its latest record in the windows changelog."""
    sizes: dict[str, int] = {}
    for r in read_topic(settings.broker_info(), windows_changelog(settings), idle_timeout=1.5):
        if r.value is None:
            sizes.pop(r.key, None)
        else:
            sizes[r.key] = len(r.value)
    return {key.decode(): size for key, size in sizes.items()}


def _table_disk_bytes(data_dir: Path, table: str) -> int:
    """Bytes on disk of a worker's RocksDB directories of `table`: every partition it holds, standbys included."""
    return sum(f.stat().st_size for db in data_dir.glob(f"**/{table}-*.db") for f in db.rglob("*") if f.is_file())


def _worker_run(broker: EmbeddedBroker, settings: Settings, workdir: Path, events: list[dict], run: int,
                n_workers: int, env: dict, checkpoints: Optional[Path]) -> dict:
    """N workers through the published events: their events/s, then what they hold."""
    name = f"run{run}"
    with running_workers(broker, settings, workdir, name, n_workers, env) as workers:
        rate = _ingest_rate(workers, len(events))
        accepted = [int(w.accepted_events()) for w in workers]
        profile_model, version = _served_model(workers, checkpoints)
        rss_mb = [w.peak_rss_bytes() / MB for w in workers]  # before stopping: the process must be alive
    # Stopped: every window write is in the changelog and the table directories are closed.
    sizes = _latest_window_sizes(settings)
    disk = sum(_table_disk_bytes(workdir / f"{name}-{i}", "windows") for i in range(n_workers))
    active = len(sizes)
    return {
        "worker_eps": rate, "accepted_per_worker": accepted, "profile_model": profile_model,
        "model_version": version, "rss_mb_per_worker": rss_mb, "active_users": active,
        # What RocksDB holds per user before compression: each user's latest window record, as encoded.
        "state_bytes_per_user": statistics.mean(sizes.values()) if sizes else 0.0,
        # What the workers' windows tables take on disk (SSTs, WAL, RocksDB's own files, standby
        # copies when N > 1), per active user.
        "state_disk_bytes_per_user": disk / active if active else 0.0,
    }


def _caught_up(workers: list[WorkerProcess], total: int, timeout: float = 600.0) -> None:
    """Until the workers have accepted `total` events and profiled every user whose window changed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(w.accepted_events() for w in workers) >= total and all(
                w.metric("strata_dirty_users") == 0 for w in workers):
            return
        time.sleep(0.5)
    raise TimeoutError("\n".join(w.log_tail() for w in workers))


def _delays(broker: EmbeddedBroker, settings: Settings, workdir: Path, preload: list[dict], events: list[dict],
            rate: float, n_workers: int, env: dict, checkpoints: Optional[Path]) -> list[float]:
    """With `preload` ingested and profiled (the active users), publish `events` at `rate` events/s;
    per event, seconds until a profile covers it."""
    p = producer(settings.broker_info())
    publish_events(p, settings, preload)
    with running_workers(broker, settings, workdir, "delay", n_workers, env) as workers:
        for w in workers:
            w.wait_ready()
        _served_model(workers, checkpoints)  # the delays are the model's the results name
        _caught_up(workers, len(preload))
        before = Counter(e["user_id"] for e in preload)
        sent: dict[str, list[float]] = defaultdict(list)  # user -> send time of its k-th new event
        covered: dict[str, list[tuple[int, float]]] = defaultdict(list)  # user -> (new events covered, when)
        stop = threading.Event()

        def watch():
            for r in read_topic(settings.broker_info(), settings.topic("profiles"), idle_timeout=None,
                                deadline=time.monotonic() + 600):
                p = json.loads(r.value)
                covered[p["user_id"]].append((p["events_seen"] - before[p["user_id"]], time.perf_counter()))
                if stop.is_set() and all(covered[u] and covered[u][-1][0] >= len(t) for u, t in sent.items()):
                    return

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        start = time.perf_counter()
        for i, e in enumerate(events):
            wait = start + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            sent[e["user_id"]].append(time.perf_counter())
            publish_events(p, settings, [e])
        p.close()
        stop.set()
        watcher.join(timeout=60)
        out = []
        for user, times in sent.items():
            for k, t in enumerate(times, 1):
                t_cov = next((tc for seen, tc in covered[user] if seen >= k), None)
                if t_cov is not None:
                    out.append(t_cov - t)
        return out


def bench_ingest(n_events: int, n_users: int, runs: int, n_workers: int = 1, profile_model: Optional[str] = None,
                 checkpoint: Optional[Path] = None) -> dict:
    """`profile_model` None: the learned model when `checkpoint` (default: STRATA_CHECKPOINTS_DIR)
    holds a checkpoint, else the baseline."""
    workdir = Path(tempfile.mkdtemp(prefix="strata-bench-"))
    results = {"events": n_events, "users": n_users, "runs": runs, "workers": n_workers,
               "reference": [], "worker": [], "per_run": []}
    try:
        profile_model, checkpoints = _choose_model(profile_model, checkpoint, workdir)
        # Every run's workers profile with a 1 s timer while they ingest, as in production.
        model_env = {"STRATA_PROFILE_MODEL": profile_model, "STRATA_PROFILE_INTERVAL_S": "1.0",
                     **({"STRATA_CHECKPOINTS_DIR": str(checkpoints)} if checkpoints else {})}
        items, events = generate(n_events, n_users, seed=LOAD_SEED)
        with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
            for run in range(runs):
                settings = Settings.from_env(broker=broker.url, topic_prefix=f"b{run}.", app_id=f"bench{run}")
                env = {**model_env, "STRATA_APP_ID": settings.app_id, "STRATA_TOPIC_PREFIX": settings.topic_prefix}
                create_topics(settings)
                p = producer(settings.broker_info())
                publish_items(settings, items)
                t0 = time.perf_counter()
                publish_events(p, settings, events)
                p.close()
                click.echo(f"run {run + 1}/{runs}: published {n_events} events in {time.perf_counter() - t0:.1f} s")
                topics = [event_topic(settings, t) for t in EVENT_TYPES]
                reference = asyncio.run(_reference_loop(settings.broker_info(), topics,
                                                        settings.topic("recommendations"), n_events,
                                                        group=f"bench-reference{run}"))
                r = _worker_run(broker, settings, workdir, events, run, n_workers, env, checkpoints)
                results["reference"].append(reference)
                results["worker"].append(r["worker_eps"])
                results["per_run"].append(r)
                click.echo(f"  reference aiokafka loop {reference:9.0f} ev/s   {n_workers} worker(s) "
                           f"{r['worker_eps']:9.0f} ev/s (events taken: {r['accepted_per_worker']})   "
                           f"ratio {r['worker_eps'] / reference:.2f}")
            settings = Settings.from_env(broker=broker.url, topic_prefix="delay.", app_id="benchdelay")
            create_topics(settings)
            publish_items(settings, items)
            # Every user of the run active (a window and a profile), then a trickle among them.
            _, preload = generate(2 * n_users, n_users, seed=3)
            _, trickle = generate(DELAY_EVENTS, n_users, seed=2)  # at least 3 a user: cut to DELAY_EVENTS
            trickle = [{**e, "event_id": "delay-" + e["event_id"]} for e in trickle[:DELAY_EVENTS]]  # not replays
            env = {**model_env, "STRATA_APP_ID": settings.app_id, "STRATA_TOPIC_PREFIX": settings.topic_prefix}
            delays = sorted(_delays(broker, settings, workdir, preload, trickle, DELAY_RATE, n_workers, env,
                                    checkpoints))
            results["delay_active_users"] = len({e["user_id"] for e in preload})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    per_run = results["per_run"]
    worker_eps = statistics.median(results["worker"])
    results.update(
        reference_eps=statistics.median(results["reference"]), worker_eps=worker_eps,
        worker_eps_per_worker=worker_eps / n_workers,
        ratio=statistics.median([w / r for w, r in zip(results["worker"], results["reference"])]),
        profile_model=per_run[0]["profile_model"], model_version=per_run[0]["model_version"],
        active_users=statistics.median_low(r["active_users"] for r in per_run),
        state_bytes_per_user=statistics.median(r["state_bytes_per_user"] for r in per_run),
        state_disk_bytes_per_user=statistics.median(r["state_disk_bytes_per_user"] for r in per_run),
        # The k-th worker started in each run; rss_mb is the largest of them.
        rss_mb_per_worker=[statistics.median(r["rss_mb_per_worker"][k] for r in per_run) for k in range(n_workers)],
        rss_mb=statistics.median(max(r["rss_mb_per_worker"]) for r in per_run),
        delay_events=len(delays), p50_s=delays[len(delays) // 2] if delays else None,
        p99_s=delays[int(len(delays) * 0.99)] if delays else None,
    )
    return results
