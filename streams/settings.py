"""Worker and CLI settings: one dataclass, filled from flags and STRATA_* environment variables."""
from __future__ import annotations

import math
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


SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """TLS and SASL for every Kafka client Strata makes (Faust's, kafka-python's, aiokafka's)."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: Optional[str] = None
    sasl_username: Optional[str] = None
    sasl_password: Optional[str] = field(default=None, repr=False)
    ssl_cafile: Optional[str] = None

    def __post_init__(self) -> None:
        if self.protocol not in SECURITY_PROTOCOLS:
            raise ValueError(f"STRATA_SECURITY_PROTOCOL={self.protocol!r}: choose one of {', '.join(SECURITY_PROTOCOLS)}")
        if self.sasl:
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise ValueError(f"STRATA_SASL_MECHANISM={self.sasl_mechanism!r}: {self.protocol} needs one of "
                                 f"{', '.join(SASL_MECHANISMS)}")
            if not self.sasl_username or self.sasl_password is None:
                raise ValueError(f"{self.protocol} needs STRATA_SASL_USERNAME and STRATA_SASL_PASSWORD")
        if self.ssl_cafile and not Path(self.ssl_cafile).is_file():
            raise ValueError(f"STRATA_SSL_CAFILE={self.ssl_cafile!r} is not a file")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol.endswith("SSL")

    def kafka_python(self) -> dict:
        """Keyword arguments for kafka-python clients (KafkaProducer, KafkaConsumer, KafkaAdminClient)."""
        conf: dict = {"security_protocol": self.protocol}
        if self.sasl:
            conf.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                        sasl_plain_password=self.sasl_password)
        if self.tls and self.ssl_cafile:
            conf["ssl_cafile"] = self.ssl_cafile
        return conf

    def ssl_context(self):
        if not self.tls:
            return None
        import ssl

        return ssl.create_default_context(cafile=self.ssl_cafile)


@dataclass(frozen=True)
class Broker:
    hosts: tuple[str, ...]
    embedded: bool
    security: KafkaSecurity = field(default_factory=KafkaSecurity)

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

    def kafka_python(self, **conf) -> dict:
        """Everything a kafka-python client needs to reach this broker: hosts and security."""
        return {"bootstrap_servers": self.bootstrap, **self.security.kafka_python(), **conf}

    @property
    def fetch_max_wait_ms(self) -> Optional[int]:
        """A consumer's longest fetch wait on this broker; None: the client's own. The embedded
        broker holds a fetch for much of that wait even when records are there: a record's median
        delay to a consumer was 0.41 s at 1,500 ms (Faust's), 0.13 s at 500 ms, 14 ms at 100 ms."""
        return 100 if self.embedded else None

    def fetch_wait(self) -> dict:
        """`fetch_max_wait_ms` for a consumer (kafka-python and aiokafka name it alike), or nothing."""
        return {"fetch_max_wait_ms": self.fetch_max_wait_ms} if self.fetch_max_wait_ms else {}

    @property
    def faust_url(self) -> str:
        return ";".join(f"kafka://{h}" for h in self.hosts)

    def __str__(self) -> str:
        scheme = EMBEDDED_SCHEME if self.embedded else "kafka"
        return ",".join(f"{scheme}://{h}" for h in self.hosts)


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):  # nan slips past every range check, inf past the upper ones
        raise ValueError(text)
    return number


# How a numeric setting is read from its STRATA_* variable (chosen by the type of its default),
# and what a bad value is told was expected. The others are taken as strings.
_PARSERS = {int: (int, "an integer"), float: (_finite, "a finite number")}


def _env(name: str, default):
    variable = f"STRATA_{name.upper()}"
    value = os.environ.get(variable)
    if value is None or value == "":
        return default
    if type(default) not in _PARSERS:
        return value
    parse, expected = _PARSERS[type(default)]
    try:
        return parse(value)
    except ValueError:
        raise ValueError(f"{variable}: expected {expected}, got {value!r}") from None


PROCESSING_GUARANTEES = ("at_least_once", "exactly_once")
# A window is one changelog record: it must stay well under Kafka's default 1 MB record limit.
MAX_WINDOW_BYTES = 900 * 1024


@dataclass
class Settings:
    broker: Optional[str] = None
    app_id: str = "strata"
    topic_prefix: str = ""
    partitions: int = 4
    replication: int = 1
    data_dir: Path = Path("data/worker")
    web_host: str = "127.0.0.1"  # the host other workers reach this one at
    web_port: int = 6066
    web_bind: str = "127.0.0.1"  # the interface HTTP listens on; 0.0.0.0 only behind a firewall or a token
    http_token: Optional[str] = None  # when set, /profiles needs `Authorization: Bearer <token>`
    # Kafka TLS/SASL (see KafkaSecurity).
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: Optional[str] = None
    sasl_username: Optional[str] = None
    sasl_password: Optional[str] = field(default=None, repr=False)
    ssl_cafile: Optional[str] = None
    # at_least_once, or exactly_once (Kafka transactions; a real Kafka only, the embedded broker has none).
    processing_guarantee: str = "at_least_once"
    # How long the CLI waits for a broker host to accept a connection before it gives up.
    connect_timeout_s: float = 5.0
    # How often dirty users get new profiles, and how many go through the model at once.
    profile_interval_s: float = 1.0
    inference_batch: int = 256
    # Ingest batching: a poll's events, up to this many, are grouped by user; each window written once.
    ingest_batch: int = 2000
    max_event_bytes: int = 64 * 1024
    # A DLQ record keeps at most this much of the rejected payload (PII-scrubbed); the size is recorded.
    dlq_raw_bytes: int = 8 * 1024
    dlq_retention_days: float = 7.0
    max_text_chars: int = 512
    max_future_s: float = 300.0
    window_max_events: int = 128
    window_max_age_days: float = 90.0
    window_max_bytes: int = 64 * 1024
    recommendations: int = 10
    profile_top_k: int = 5  # labels per layer in a published profile; the rest is summed as `rest`
    profile_model: str = "baseline"  # "baseline" or "learned" (the newest checkpoint in checkpoints_dir)
    checkpoints_dir: Path = Path("checkpoints")
    checkpoint_poll_s: float = 2.0  # how often a learned worker looks at checkpoints/LATEST
    taxonomy: Optional[str] = None  # a taxonomy file; None: the shipped Chinese one
    horizons: Horizons = field(default_factory=Horizons)

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Defaults < STRATA_* environment < explicit overrides (None means 'not given')."""
        values = {}
        for f in fields(cls):
            if f.name == "horizons":
                continue
            values[f.name] = _env(f.name, None if f.default is MISSING else f.default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if values.get("data_dir") is not None:
            values["data_dir"] = Path(values["data_dir"])
        values["checkpoints_dir"] = Path(values["checkpoints_dir"])
        return cls(**values)

    def __post_init__(self) -> None:
        if self.processing_guarantee not in PROCESSING_GUARANTEES:
            raise ValueError(f"STRATA_PROCESSING_GUARANTEE={self.processing_guarantee!r}: choose "
                             f"{' or '.join(PROCESSING_GUARANTEES)}")
        if not 0 < self.window_max_bytes <= MAX_WINDOW_BYTES:
            raise ValueError(f"STRATA_WINDOW_MAX_BYTES={self.window_max_bytes}: must be 1..{MAX_WINDOW_BYTES} "
                             "(a window is one Kafka record, and records stay under the 1 MB producer limit)")
        if not 0 < self.dlq_raw_bytes <= 256 * 1024:
            raise ValueError(f"STRATA_DLQ_RAW_BYTES={self.dlq_raw_bytes}: must be 1..262144")
        for name in ("partitions", "web_port", "max_event_bytes", "max_text_chars", "window_max_events",
                     "inference_batch", "ingest_batch", "profile_top_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"STRATA_{name.upper()}={getattr(self, name)}: must be at least 1")
        for name in ("profile_interval_s", "window_max_age_days", "checkpoint_poll_s",
                     "dlq_retention_days", "connect_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"STRATA_{name.upper()}={getattr(self, name)}: must be above 0")
        if self.max_future_s < 0 or self.recommendations < 0:
            raise ValueError("STRATA_MAX_FUTURE_S and STRATA_RECOMMENDATIONS must not be negative")
        self.security()  # checks the TLS/SASL settings at start-up, not at the first connection

    def security(self) -> KafkaSecurity:
        return KafkaSecurity(self.security_protocol, self.sasl_mechanism, self.sasl_username, self.sasl_password,
                             self.ssl_cafile)

    def broker_info(self) -> Broker:
        if not self.broker:
            raise BrokerURLError("no broker given: pass --broker URL or set STRATA_BROKER")
        broker = Broker.parse(self.broker)
        security = self.security()
        if broker.embedded and security.protocol != "PLAINTEXT":
            raise BrokerURLError("the embedded broker (tansu://) speaks PLAINTEXT only; unset STRATA_SECURITY_PROTOCOL")
        if broker.embedded and self.processing_guarantee == "exactly_once":
            raise BrokerURLError("the embedded broker (tansu://) has no transactions: exactly_once needs a real Kafka")
        return Broker(broker.hosts, broker.embedded, security)

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def window_bounds(self) -> WindowBounds:
        return WindowBounds(
            max_events=self.window_max_events,
            max_age_ms=int(self.window_max_age_days * 86400_000),
            max_bytes=self.window_max_bytes,
        )
