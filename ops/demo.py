"""`strata demo`: the whole flow on one machine, start to finish, then everything stopped again."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

import click
from tqdm import tqdm

from model.datasets.synthetic import generate
from model.latest import latest_version
from model.taxonomy import Taxonomy
from model.training.data import load_histories
from model.training.trainer import TrainConfig, summary, train
from ops.broker import EmbeddedBroker
from ops.clients import producer, publish_events, publish_items, read_topic
from ops.process import WorkerProcess
from streams.settings import Settings
from streams.topics import create_topics


def _line(profile: dict) -> str:
    tops = "  ".join(
        f"{layer} {profile['layers'][layer]['top'][0]['label']} {profile['layers'][layer]['top'][0]['p']:.2f}"
        for layer in ("surface", "middle", "deep")
    )
    words = ",".join(profile["keywords"]["surface"][:3])
    return f"{profile['user_id']} v{profile['version']:<3} {tops}  [{words}]  {profile['model_version']}"


def _ensure_checkpoint(checkpoints: Path) -> None:
    """Train a small model on generated history (other users than the streamed ones) if none exists."""
    if latest_version(checkpoints):
        click.echo(f"using checkpoint {checkpoints / latest_version(checkpoints)}")
        return
    click.echo(f"no checkpoint in {checkpoints}: training a small model first")
    _, history = generate(12000, 500, seed=1001)
    histories, _ = load_histories([json.dumps(e, ensure_ascii=False) for e in history])
    cfg = TrainConfig(encoder="cnn-lstm", d_model=32, text_dim=32, epochs=4, cuts_per_user=8, max_events=32)
    path, metrics = train(histories, Taxonomy.load(), checkpoints, cfg)
    click.echo(summary(metrics))
    click.echo(f"checkpoint {path}")


def run_demo(n_events: int, n_users: int, timeout: float, seed: int = 7, learned: bool = True) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="strata-demo-"))
    started = time.monotonic()
    click.echo(f"strata demo: work dir {workdir}")
    settings = Settings.from_env(profile_model="learned" if learned else "baseline")
    if learned:
        _ensure_checkpoint(settings.checkpoints_dir)
    env = {"STRATA_PROFILE_MODEL": settings.profile_model, "STRATA_CHECKPOINTS_DIR": str(settings.checkpoints_dir)}
    try:
        with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
            click.echo(f"embedded broker (Tansu) at {broker.url}, pid {broker.process.pid}")
            settings = Settings.from_env(broker=broker.url, topic_prefix="", partitions=4)
            create_topics(settings)
            worker = WorkerProcess(broker.url, workdir / "worker", workdir / "worker.log", env=env).start()
            try:
                click.echo(f"worker pid {worker.process.pid}, web {worker.url}, log {worker.log_path}")
                click.echo(f"worker ready in {worker.wait_ready():.1f} s")
                return _stream(settings, broker, worker, n_events, n_users, seed, time.monotonic() + timeout)
            finally:
                worker.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        click.echo(f"stopped broker and worker; {time.monotonic() - started:.0f} s in all")


def _stream(settings, broker, worker, n_events, n_users, seed, deadline) -> int:
    items, events = generate(n_events, n_users, seed=seed)
    expected = Counter(e["user_id"] for e in events)
    p = producer(settings.broker_info())
    publish_items(settings, items)
    t0 = time.monotonic()
    with tqdm(total=len(events), desc="publishing events", unit="ev", leave=False) as bar:
        publish_events(p, settings, events, bar)
    p.close()
    click.echo(f"published {len(items)} items and {len(events)} events for {len(expected)} users "
               f"in {time.monotonic() - t0:.1f} s")

    latest: dict[str, dict] = {}
    complete = 0
    for record in read_topic(settings.broker_info(), settings.topic("profiles"), idle_timeout=None,
                             deadline=deadline):
        profile = json.loads(record.value)
        user = profile["user_id"]
        before = latest.get(user, {}).get("events_seen", 0) == expected[user]
        latest[user] = profile
        click.echo(_line(profile))
        if not before and profile["events_seen"] == expected[user]:
            complete += 1
        if complete == len(expected):
            break
    elapsed = time.monotonic() - t0
    click.echo("")
    click.echo(f"{complete}/{len(expected)} users have a profile of all their events "
               f"({elapsed:.1f} s after publishing began)")
    sample = max(expected, key=expected.get)
    status, body = worker.get(f"/profiles/{sample}/")
    click.echo(f"GET /profiles/{sample}/ -> {status}")
    if status == 200:
        profile = json.loads(body)
        click.echo(json.dumps(profile, ensure_ascii=False, indent=1))
    metrics = worker.get("/metrics")[1].decode()
    click.echo("metrics:")
    for line in metrics.splitlines():
        if line.startswith(("strata_events_total", "strata_profiles_emitted_total",
                            "strata_event_to_profile_seconds_count", "strata_event_to_profile_seconds_sum")):
            click.echo(f"  {line}")
    return 0 if complete == len(expected) else 1
