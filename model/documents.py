"""Every document Strata publishes, defined together: profile (schema 2), recommendations (1), DLQ (1).

Each carries `schema_version`; JSON Schemas for them ship in `schemas/`. `encode` is how every
one of them (and every other published JSON record) becomes bytes: UTF-8, no ASCII escapes.
"""
from __future__ import annotations

import base64
import json
import re
import unicodedata
from typing import Optional

import numpy as np

from model.taxonomy import LAYERS, Taxonomy
from model.text import scrub
from state.event import Rejection, iso_ms
from state.window import Window

PROFILE_SCHEMA = 2
RECOMMENDATIONS_SCHEMA = 1
DLQ_SCHEMA = 1
MAX_DLQ_KEY_BYTES = 1024
MAX_DLQ_MESSAGE_CHARS = 500


def encode(doc) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def profile_document(user_id: str, version: int, model_version: str, window: Window, dists: dict[str, np.ndarray],
                     inferred: dict[str, float], keywords_by_layer: dict[str, list[str]], taxonomy: Taxonomy,
                     now_ms: int, top_k: int = 5) -> dict:
    """Per layer the `top_k` most probable labels, the mass of the rest, and the share of the layer's
    evidence that rests on categories inferred from text."""
    entries = window.entries
    layers = {}
    for layer in LAYERS:
        p = dists[layer]
        order = np.argsort(-p, kind="stable")[:top_k]
        labels = taxonomy.labels[layer]
        top = [{"label": labels[i], "p": round(float(p[i]), 6)} for i in order]
        layers[layer] = {"top": top, "rest": round(max(0.0, 1.0 - float(p[order].sum())), 6),
                         "inferred": round(float(inferred.get(layer, 0.0)), 4)}
    return {
        "schema_version": PROFILE_SCHEMA,
        "user_id": user_id,
        "version": version,
        "model_version": model_version,
        "updated_at": iso_ms(now_ms),
        "events_seen": window.events_seen,
        "window": {
            "events": len(entries),
            "from": iso_ms(entries[0].ts) if entries else None,
            "to": iso_ms(entries[-1].ts) if entries else None,
        },
        "layers": layers,
        "keywords": keywords_by_layer,
    }


def recommendations_document(user_id: str, profile_version: int, model_version: str, items: list[dict]) -> dict:
    """`items`: {"item_id", "score", "layer", "reason", "source"} each, best first."""
    return {"schema_version": RECOMMENDATIONS_SCHEMA, "user_id": user_id, "profile_version": profile_version,
            "model_version": model_version, "items": items}


_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape(match: re.Match) -> str:
    code = int(match.group(1), 16)
    return match.group(0) if 0xD800 <= code <= 0xDFFF else chr(code)


def scrub_bytes(raw: bytes, bound: Optional[int] = None) -> bytes:
    """PII scrubbed out of bytes that may not be UTF-8 (undecodable bytes pass through untouched):
    seen as NFKC text with JSON \\u escapes resolved, so neither full-width digits nor escaped
    characters hide a phone number; scrubbed before the cut to `bound` bytes, with a margin."""
    if bound is not None:
        raw = raw[:bound + 256]
    text = _JSON_ESCAPE.sub(_unescape, unicodedata.normalize("NFKC", raw.decode("utf-8", "surrogateescape")))
    out = scrub(text).encode("utf-8", "surrogateescape")
    return out[:bound] if bound is not None else out


def internal(exc: BaseException) -> Rejection:
    """A record that raised something no validation rule names: a bug of ours, kept for replay."""
    return Rejection("internal", f"{type(exc).__name__} while ingesting: {str(exc)[:200]}")


def dlq_document(rejection: Rejection, topic: str, partition: int, offset: int, raw: Optional[bytes],
                 raw_bound: int, now_ms: int) -> dict:
    """Why a record was refused, where it came from, and a copy cut to `raw_bound` bytes and scrubbed
    of personal data (the original size in `raw_bytes`): never over the producer's limit, never
    holding a phone number the events topic held."""
    raw = raw or b""
    return {
        "schema_version": DLQ_SCHEMA,
        "error": {"code": rejection.code, "message": scrub(rejection.message[:MAX_DLQ_MESSAGE_CHARS]),
                  "field": rejection.field},
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "raw": base64.b64encode(scrub_bytes(raw, raw_bound)).decode("ascii"),
        "raw_bytes": len(raw),
        "at": iso_ms(now_ms),
    }


def dlq_key(key: Optional[bytes]) -> bytes:
    """The rejected record's key, cut like its payload; a record without a key gets the empty key,
    and a key in Faust's reserved space (its RocksDB bookkeeping) is prefixed out of it."""
    key = (key or b"")[:MAX_DLQ_KEY_BYTES]
    return b"#" + key if key.startswith(b"__faust") else key
