"""Worker and CLI settings: one dataclass, filled from flags and STRATA_* environment variables."""
from __future__ import annotations

import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Optional
from urllib.parse import urlparse

from model.profile import Horizons
from state.window import WindowBounds

# `tansu://host:port` names the embedded (Tansu) broker: Kafka's protocol, with the quirks
# that need work-arounds. `kafka://host:port[,host:port]` (or bare host:port) is a real Kafka.
EMBEDDED_SCHEME = "tansu"


class BrokerURLError(ValueError):
    pass


@dataclass(frozen=True)
class Broker:
    hosts: tuple[str, ...]
    embedded: bool

    @classmethod
    def parse(cls, url: str) -> "Broker":
        hosts, embedded = [], None
        for part in url.replace(";", ",").split(","):
            part = part.strip()
            if not part:
                continue
            parsed = urlparse(part if "://" in part else f"kafka://{part}")
            if parsed.scheme not in ("kafka", EMBEDDED_SCHEME) or not parsed.hostname or not parsed.port:
                raise BrokerURLError(
                    f"broker URL {part!r} is not kafka://HOST:PORT (a real Kafka) or tansu://HOST:PORT "
                    "(the embedded broker)"
                )
            is_embedded = parsed.scheme == EMBEDDED_SCHEME
            if embedded is not None and embedded != is_embedded:
                raise BrokerURLError("mixing tansu:// and kafka:// hosts in one broker URL")
            embedded = is_embedded
            hosts.append(f"{parsed.hostname}:{parsed.port}")
        if not hosts:
            raise BrokerURLError("empty broker URL")
        return cls(tuple(hosts), bool(embedded))

    @property
    def bootstrap(self) -> list[str]:
        return list(self.hosts)

    @property
    def faust_url(self) -> str:
        return ";".join(f"kafka://{h}" for h in self.hosts)

    def __str__(self) -> str:
        scheme = EMBEDDED_SCHEME if self.embedded else "kafka"
        return ",".join(f"{scheme}://{h}" for h in self.hosts)


def _env(name: str, default, cast=str):
    value = os.environ.get(f"STRATA_{name.upper()}")
    return default if value is None or value == "" else cast(value)


@dataclass
class Settings:
    broker: Optional[str] = None
    app_id: str = "strata"
    topic_prefix: str = ""
    partitions: int = 4
    replication: int = 1
    data_dir: Path = Path("data/worker")
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # How often dirty users get new profiles, and how many go through the model at once.
    profile_interval_s: float = 1.0
    inference_batch: int = 256
    # Ingest batching: each poll's events are grouped by user and each window written once.
    ingest_batch: int = 2000
    ingest_within_s: float = 0.1
    max_event_bytes: int = 64 * 1024
    max_text_chars: int = 512
    max_future_s: float = 300.0
    window_max_events: int = 128
    window_max_age_days: float = 90.0
    window_max_bytes: int = 64 * 1024
    recommendations: int = 10
    profile_model: str = "baseline"  # "baseline" or "learned" (the newest checkpoint in checkpoints_dir)
    checkpoints_dir: Path = Path("checkpoints")
    taxonomy: Optional[str] = None  # a taxonomy file; None: the shipped Chinese one
    horizons: Horizons = field(default_factory=Horizons)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Defaults < STRATA_* environment < explicit overrides (None means 'not given')."""
        values = {}
        for f in fields(cls):
            if f.name == "horizons":
                continue
            default = None if f.default is MISSING else f.default
            cast = {int: int, float: float, Path: Path}.get(type(default), str)
            values[f.name] = _env(f.name, default, cast)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("data_dir") is not None:
            values["data_dir"] = Path(values["data_dir"])
        values["checkpoints_dir"] = Path(values["checkpoints_dir"])
        return cls(**values)

    def broker_info(self) -> Broker:
        if not self.broker:
            raise BrokerURLError("no broker given: pass --broker URL or set STRATA_BROKER")
        return Broker.parse(self.broker)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def window_bounds(self) -> WindowBounds:
        return WindowBounds(
            max_events=self.window_max_events,
            max_age_ms=int(self.window_max_age_days * 86400_000),
            max_bytes=self.window_max_bytes,
        )
