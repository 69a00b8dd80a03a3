"""The dead-letter record: why a record was refused, where it came from, and a bounded, scrubbed copy.

The copy of the payload is cut to `dlq_raw_bytes` and scrubbed of personal data before it is
published (the original size is kept in `raw_bytes`), so a DLQ record never exceeds the producer's
limit and never holds a phone number the events topic held. The key is cut the same way.
"""
from __future__ import annotations

import base64
import time
from typing import Optional

from model.text import scrub
from state.event import Rejection, iso_ms
from streams.codec import encode

SCHEMA_VERSION = 1
MAX_KEY_BYTES = 1024
MAX_MESSAGE_CHARS = 500


def scrub_bytes(raw: bytes) -> bytes:
    """PII scrubbed out of bytes that may not be UTF-8: undecodable bytes pass through untouched."""
    text = raw.decode("utf-8", "surrogateescape")
    return scrub(text).encode("utf-8", "surrogateescape")


def internal(exc: BaseException) -> Rejection:
    """A record that raised something no validation rule names: a bug of ours, kept for replay."""
    return Rejection("internal", f"{type(exc).__name__} while ingesting: {str(exc)[:200]}")


def dlq_record(rejection: Rejection, topic: str, partition: int, offset: int, raw: Optional[bytes],
               raw_bound: int, now_ms: Optional[int] = None) -> bytes:
    raw = raw or b""
    message = scrub(rejection.message[:MAX_MESSAGE_CHARS])
    return encode({
        "schema_version": SCHEMA_VERSION,
        "error": {"code": rejection.code, "message": message, "field": rejection.field},
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "raw": base64.b64encode(scrub_bytes(raw[:raw_bound])).decode("ascii"),
        "raw_bytes": len(raw),
        "at": iso_ms(now_ms if now_ms is not None else int(time.time() * 1000)),
    })


def dlq_key(key: Optional[bytes]) -> Optional[bytes]:
    return key[:MAX_KEY_BYTES] if key is not None else None
