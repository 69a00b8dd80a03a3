"""Every topic of the design, its config, explicit idempotent creation, and the start-up check."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Optional

from kafka.partitioner.default import murmur2

from state.event import EVENT_TYPES
from streams.settings import Settings

COMPACT = {"cleanup.policy": "compact"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict
    purpose: str


def event_topic(settings: Settings, event_type: str) -> str:
    return settings.topic(f"events.{event_type}")


@lru_cache(maxsize=65536)
def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (Java, murmur2) partitioner gives a key: where its user's tables live."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def windows_changelog(settings: Settings) -> str:
    return settings.topic(f"{settings.app_id}-windows-changelog")


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """All topics. User-keyed topics share one partition count so tables are co-partitioned."""
    n = settings.partitions
    specs = [TopicSpec(event_topic(settings, t), n, {}, f"{t} events in") for t in EVENT_TYPES]
    specs += [
        TopicSpec(settings.topic("items"), n, COMPACT, "item catalogue in; backs the items table"),
        TopicSpec(settings.topic("profiles"), n, COMPACT, "profiles out; backs the profiles table"),
        TopicSpec(settings.topic("recommendations"), n, {}, "recommendations out"),
        TopicSpec(settings.topic("events.dlq"), n,
                  {"retention.ms": str(int(settings.dlq_retention_days * 86400_000))},
                  "rejected records with reasons (scrubbed, bounded copies; kept dlq_retention_days)"),
        TopicSpec(windows_changelog(settings), n, COMPACT, "changelog of the windows table"),
    ]
    return specs


def _admin(settings: Settings):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(**settings.broker_info().kafka_python(client_id="strata-admin", request_timeout_ms=15000))


def create_topics(settings: Settings) -> list[tuple[TopicSpec, str]]:
    """Create what is missing; returns (spec, 'created' | 'exists') for each topic."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        results = []
        for spec in topic_specs(settings):
            if spec.name in existing:
                results.append((spec, "exists"))
                continue
            try:
                admin.create_topics([NewTopic(spec.name, spec.partitions, settings.replication,
                                              topic_configs=spec.config)])
                results.append((spec, "created"))
            except TopicAlreadyExistsError:  # created concurrently by another worker's set-up
                results.append((spec, "exists"))
        return results
    finally:
        admin.close()


class TopicsNotReady(RuntimeError):
    pass


def check_topics(settings: Settings) -> None:
    """Raise TopicsNotReady naming every missing or mismatched topic, and what to do about it."""
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        specs = topic_specs(settings)
        present = [s.name for s in specs if s.name in existing]
        described = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(present)} if present else {}
    finally:
        admin.close()
    problems: list[str] = []
    for spec in specs:
        have: Optional[int] = described.get(spec.name)
        if have is None:
            problems.append(f"missing topic {spec.name!r} ({spec.purpose})")
        elif have != spec.partitions:
            problems.append(
                f"topic {spec.name!r} has {have} partitions, expected {spec.partitions} "
                "(user-keyed topics must share one partition count)"
            )
    if problems:
        raise TopicsNotReady(
            "topics are not ready:\n  - " + "\n  - ".join(problems)
            + f"\nrun `strata topics create --broker {settings.broker} --partitions {settings.partitions}` "
            "(or pass the --partitions the topics were created with)"
        )
