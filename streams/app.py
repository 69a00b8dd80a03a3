"""The Faust app: its settings per broker kind, topics, tables, and the parts that run in it.

Tables (all RocksDB through rocksdict, all changelog-backed, values raw bytes encoded once by us):
- windows  key user_id: the bounded event window (state/window.py); changelog `<app>-windows-changelog`.
- profiles key user_id: the latest profile; its changelog *is* the `profiles` topic. The profiler
  publishes a profile first and records it locally once the broker has it (streams/profiler.py),
  so a restarted worker restores exactly what consumers saw (profile versions never go back).
- items    key item_id: a GlobalTable whose changelog is the `items` topic; every worker
  holds the whole catalogue.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Optional

import faust

from state.dirty import DirtyUsers
from state.event import EVENT_TYPES, Item
from state.items import ItemIndex
from streams import metrics
from streams.consumer import Transport
from streams.model_slot import ModelSlot
from streams.settings import KafkaSecurity, Settings
from streams.tables import TopicBackedGlobalTable
from streams.topics import event_topic, windows_changelog

log = logging.getLogger(__name__)

# Work-arounds for the embedded Tansu broker only (see README, "Embedded broker"):
EMBEDDED_BROKER_CONF = dict(
    # A group join waits about half the session timeout: seconds, not Faust's 30 s default.
    broker_session_timeout=3.0,
    broker_heartbeat_interval=0.5,
    # No standby replicas: in a rebalance test a worker's standby copy of a windows partition
    # held the changelog's later records but not its earlier ones, so when the partition became
    # its own it restored nothing and those users lost their windows. Without standbys, a gained
    # partition is restored from the start of its changelog.
    table_standby_replicas=0,
)
# Its ListOffsets(LATEST) is also wrong when a partition's last batch holds several records,
# which would make table recovery stop short: every changelog write ends each partition it
# writes with a one-record batch (streams/tables.publish), so the producer batches normally.


@dataclass
class Strata:
    """Everything a running worker holds; streams/worker.py registers ingest, the timers and views on it."""

    settings: Settings
    app: faust.App
    source: Any  # the three event topics, consumed together
    dlq: Any  # a table keyed by the rejected record's key; its changelog *is* the DLQ topic
    dlq_topic: Any
    recommendations: Any
    windows: Any
    profiles: Any
    profiles_topic: Any  # the profiles table's changelog: the profiler publishes to it directly
    items: Any
    slot: ModelSlot  # the served model and the thread it runs on
    item_index: ItemIndex  # filled by the items table's changelog callback
    dirty: DirtyUsers = field(default_factory=DirtyUsers)

    def event_type_of(self, topic: str) -> str:
        return self._types[topic]

    def __post_init__(self) -> None:
        self._types = {event_topic(self.settings, t): t for t in EVENT_TYPES}


def credentials(security: KafkaSecurity) -> Optional[faust.types.auth.CredentialsT]:
    """Faust's form of the TLS/SASL settings every other client gets from KafkaSecurity."""
    if security.sasl:
        return faust.SASLCredentials(username=security.sasl_username, password=security.sasl_password,
                                     mechanism=security.sasl_mechanism, ssl_context=security.ssl_context())
    if security.tls:
        return faust.SSLCredentials(security.ssl_context())
    return None


def faust_app(settings: Settings) -> faust.App:
    broker = settings.broker_info()
    conf = dict(
        broker=broker.faust_url,
        broker_credentials=credentials(broker.security),
        processing_guarantee=settings.processing_guarantee,
        store="rocksdb://",
        datadir=str(settings.data_dir),
        web_port=settings.web_port,
        web_host=settings.web_host,
        web_bind=settings.web_bind,
        # Faust's built-in pages serve raw table data (/table: any user's event history) and the
        # cluster's layout (/router, /graph, stats); Strata serves only its own views and /metrics.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        canonical_url=f"http://{settings.web_host}:{settings.web_port}",
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication,
        # Topics are created by `strata topics create`, never implicitly.
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        autodiscover=False,
        # A batch's table writes go out together (streams/tables.publish): a window record is
        # 1-15 KB, so Faust's 16 KB producer batches would hold one or a few each.
        producer_max_batch_size=256 * 1024,
    )
    if broker.embedded:
        conf.update(EMBEDDED_BROKER_CONF)
    app = faust.App(settings.app_id, **conf)
    app.transport = Transport(app.conf.broker_consumer, app, fetch_max_wait_ms=broker.fetch_max_wait_ms)
    return app


def build(settings: Settings, slot: ModelSlot) -> Strata:
    app = faust_app(settings)
    raw = dict(key_serializer="raw", value_serializer="raw")
    n = settings.partitions
    source = app.topic(*(event_topic(settings, t) for t in EVENT_TYPES), **raw)
    profiles_topic = app.topic(settings.topic("profiles"), partitions=n, **raw)
    items_topic = app.topic(settings.topic("items"), partitions=n, **raw)
    # Keys are the raw UTF-8 bytes of user_id / item_id, as producers key their records.
    table = dict(key_type=bytes, partitions=n)
    index = ItemIndex()

    async def on_item(event: faust.EventT) -> None:
        apply_item_record(index, event.message.key, event.message.value)

    dlq_topic = app.topic(settings.topic("events.dlq"), partitions=n, **raw)
    strata = Strata(
        settings=settings,
        app=app,
        source=source,
        dlq=app.Table("dlq", changelog_topic=dlq_topic, value_type=bytes, **table),
        dlq_topic=dlq_topic,
        recommendations=app.topic(settings.topic("recommendations"), **raw),
        windows=app.Table("windows", changelog_topic=app.topic(windows_changelog(settings), partitions=n, **raw),
                          value_type=bytes, **table),
        profiles=app.Table("profiles", changelog_topic=profiles_topic, value_type=bytes, **table),
        profiles_topic=profiles_topic,
        # Raw values: a malformed catalogue record is skipped when read, never fatal.
        # synchronize_all_active_partitions: keep reading the catalogue after start-up, so
        # items published later reach every worker.
        items=app.tables.add(TopicBackedGlobalTable(app, name="items", changelog_topic=items_topic,
                                                    on_changelog_event=on_item, value_type=bytes,
                                                    is_global=True, synchronize_all_active_partitions=True, **table)),
        slot=slot,
        item_index=index,
    )
    metrics.setup_faust_sensor(app)
    return strata


def apply_item_record(index: ItemIndex, key: bytes | None, value: bytes | None) -> None:
    """One record of the items topic into the index; a malformed one is logged and skipped."""
    if value is None:
        if key is not None:
            index.remove(key.decode("utf-8", "replace"))
        return
    try:
        index.put(Item.model_validate_json(value))
    except ValueError as exc:
        log.warning("skipping malformed items record %r: %s", key, exc)
