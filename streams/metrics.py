"""Strata's Prometheus metrics, and Faust's own sensor, which serves them all at /metrics."""
from __future__ import annotations

import faust
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor, setup_prometheus_sensors
from prometheus_client import Counter, Gauge, Histogram

EVENTS = Counter("strata_events_total", "Events consumed, by type and outcome", ["type", "outcome"])
REJECTED = Counter("strata_events_rejected_total", "Records sent to the DLQ, by reason", ["reason"])
DLQ_SEND_FAILURES = Counter("strata_dlq_send_failures_total", "DLQ records that could not be published")
WINDOW_EVENTS = Histogram(
    "strata_window_events", "Events in a user's window after a write",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
)
WINDOW_EVICTIONS = Counter("strata_window_evictions_total", "Entries evicted from windows by the bounds")
INGEST_BATCH = Histogram(
    "strata_ingest_batch_events", "Events per ingest batch", buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000)
)
DIRTY_USERS = Gauge("strata_dirty_users", "Users whose window changed since their last profile")
INFERENCE_BATCH = Histogram(
    "strata_inference_batch_users", "Users per inference batch", buckets=(1, 8, 32, 64, 128, 256, 512, 1024)
)
INFERENCE_SECONDS = Histogram(
    "strata_inference_seconds", "Seconds per inference batch (model and keywords)",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
ENCODE_CACHE = Counter("strata_encode_cache_total", "Text encodings by cache outcome", ["outcome"])
PROFILES = Counter("strata_profiles_emitted_total", "Profiles published")
PROFILE_FAILURES = Counter("strata_profile_failures_total",
                           "Users the model could not profile (skipped until their next event)")
PROFILES_SKIPPED = Counter("strata_profiles_skipped_total",
                           "Profiles not published because their partition moved to another worker meanwhile")
RECOMMENDATIONS = Counter("strata_recommendations_emitted_total", "Recommendation lists published")
EVENT_TO_PROFILE = Histogram(
    "strata_event_to_profile_seconds", "From a user's first unprofiled event being accepted to its profile",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10, 30, 60),
)
MODEL_INFO = Gauge("strata_model_info", "The profile model in use (value 1)", ["model_version"])
CHECKPOINT_RELOADS = Counter("strata_checkpoint_reloads_total", "Checkpoints loaded and swapped in")
CHECKPOINT_FAILURES = Counter("strata_checkpoint_reload_failures_total", "Checkpoints refused")
CONSUMER_LAG = Gauge("strata_consumer_lag", "Records of a partition this worker owns not yet processed "
                     "(end offset - committed offset; items: end offset - position)", ["topic", "partition"])


def set_model_version(version: str) -> None:
    MODEL_INFO.clear()
    MODEL_INFO.labels(model_version=version).set(1)


class _CachedLabels:
    """A labelled metric whose child per label set is looked up once. Faust's sensor asks for one
    on every message received and sent, and prometheus_client's `labels()` validates the names
    and takes a lock each time: at 10,000 messages a second that cost a worker a sixth of its loop.
    The label sets are the app's topics, partitions, streams and tables: a bounded few."""

    def __init__(self, metric) -> None:
        self._metric, self._children = metric, {}

    def labels(self, *values, **labels):
        key = (values, tuple(labels.items()))
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._metric.labels(*values, **labels)
        return child

    def __getattr__(self, name: str):
        return getattr(self._metric, name)


class Monitor(PrometheusMonitor):
    """Faust's Prometheus sensor, with the batch feed's messages (streams/feed.py) counted a
    partition's poll at a time: the same figures as Faust's per-message hooks, each metric updated
    once, where four locked updates per message took a tenth of the ingest loop."""

    def track_tp_end_offset(self, tp, offset: int) -> None:
        # Faust reports a partition's end offset with every record it fetches; it changes once a poll.
        if self.tp_end_offsets.get(tp) != offset:
            super().track_tp_end_offset(tp, offset)

    def on_messages_in(self, tp, messages: list) -> None:
        """on_message_in for `messages`, all of partition `tp`, in offset order."""
        n, last, now = len(messages), messages[-1].offset, self.time()
        for message in messages:
            message.time_in = now
        self.messages_received_total += n
        self.messages_active += n
        self.messages_received_by_topic[tp.topic] += n
        self.tp_read_offsets[tp] = last
        m = self._metrics
        m.messages_received.inc(n)
        m.active_messages.inc(n)
        m.messages_received_per_topics.labels(topic=tp.topic).inc(n)
        m.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(last)

    def on_messages_out(self, messages: list) -> None:
        """on_message_out for `messages`, acknowledged together."""
        now = self.time()
        for message in messages:
            message.time_out = now
            if message.time_in is not None:
                message.time_total = now - message.time_in
        self.messages_active -= len(messages)
        self._metrics.active_messages.dec(len(messages))


def setup_faust_sensor(app: faust.App) -> None:
    """Faust's Prometheus sensor and the /metrics page, its names prefixed `strata_` whatever the app id."""
    setup_prometheus_sensors(app, name_prefix="strata")
    metrics = app.monitor._metrics
    app.monitor = Monitor(metrics=FaustMetrics(*(_CachedLabels(m) if m._labelnames else m for m in metrics)))
