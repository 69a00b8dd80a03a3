"""Every document Strata publishes, defined together: profile (schema 2), recommendations (1), DLQ (1).

Each carries `schema_version` and is built through its pydantic model, which is also where its
JSON Schema comes from: `json_schemas` gives these and the event's and the item's, as they ship
in `schemas/`, so a document cannot leave its schema unnoticed. `encode` is how every one of them
(and every other published JSON record) becomes bytes: UTF-8, no ASCII escapes.
"""
from __future__ import annotations

import base64
import json
import re
import unicodedata
from typing import Annotated, Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from model.taxonomy import LAYERS, Taxonomy
from model.text import scrub
from state.event import ITEM_SCHEMA, IsoMs, Item, Rejection, document_schema, iso_ms, json_schema
from state.window import Window

PROFILE_SCHEMA = 2
RECOMMENDATIONS_SCHEMA = 2  # 2: four sources; scores are relative (any sign)
DLQ_SCHEMA = 1
MAX_DLQ_KEY_BYTES = 1024
MAX_DLQ_MESSAGE_CHARS = 500

Layer = Literal[LAYERS]
Probability = Annotated[float, Field(ge=0, le=1)]


class _Published(BaseModel):
    # Closed (additionalProperties: false): a builder cannot emit a field its schema lacks.
    model_config = ConfigDict(extra="forbid")


class LabelP(_Published):
    label: str
    p: Probability


class LayerProfile(_Published):
    top: list[LabelP] = Field(description="the most probable labels (STRATA_PROFILE_TOP_K), most probable first")
    rest: Probability = Field(description="the probability of the other labels")
    inferred: Probability = Field(description="the share of the layer's evidence resting on categories inferred from text")


class ProfileWindow(_Published):
    events: int = Field(ge=0)
    from_: Optional[IsoMs] = Field(alias="from", description="the oldest entry's time; null when empty")
    to: Optional[IsoMs] = Field(description="the newest entry's time; null when empty")


class Profile(_Published):
    """A user's layered interests (topic `profiles`, key user_id)."""

    model_config = ConfigDict(title=f"Strata profile v{PROFILE_SCHEMA}")

    schema_version: Literal[PROFILE_SCHEMA]
    user_id: str
    version: int = Field(ge=1, description="one above the user's previous profile")
    model_version: str
    updated_at: IsoMs
    events_seen: int = Field(ge=0, description="the user's accepted events, evicted ones included")
    window: ProfileWindow
    # Every layer, each once: propertyNames and minProperties together say so.
    layers: Annotated[dict[Layer, LayerProfile], Field(min_length=len(LAYERS))]
    keywords: Annotated[dict[Layer, list[str]], Field(min_length=len(LAYERS))]


class Recommendation(_Published):
    item_id: str
    score: float = Field(description="the ranking score: higher first, comparable within one list only")
    layer: Layer = Field(description="the layer whose interest lifts the item most")
    reason: str = Field(description="why, for people: e.g. 'lately: 科幻小说', 'long-term: 阅读'")
    source: Literal["sequential", "interest", "content", "popular"] = Field(
        description="the score part that put the item in the list: sequential (what tends to come next), "
                    "interest (the layers' categories), content (an item new since training, by its text), "
                    "popular (what many consumed; lists of users with very few events)")


class Recommendations(_Published):
    """Catalogue items for a user, best first (topic `recommendations`, key user_id)."""

    model_config = ConfigDict(title=f"Strata recommendations v{RECOMMENDATIONS_SCHEMA}")

    schema_version: Literal[RECOMMENDATIONS_SCHEMA]
    user_id: str
    profile_version: int = Field(ge=1)
    model_version: str
    items: list[Recommendation]


class DlqSource(_Published):
    topic: str
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)


class DlqRecord(_Published):
    """A refused record (topic `events.dlq`, key the record's own, cut to 1 KiB)."""

    model_config = ConfigDict(title=f"Strata DLQ record v{DLQ_SCHEMA}")

    schema_version: Literal[DLQ_SCHEMA]
    error: Rejection
    source: DlqSource
    raw: str = Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$", json_schema_extra={"contentEncoding": "base64"},
                     description="the refused value, cut to STRATA_DLQ_RAW_BYTES and scrubbed of personal data")
    raw_bytes: int = Field(ge=0, description="the refused value's size")
    at: IsoMs


def json_schemas() -> dict[str, dict]:
    """Every document's JSON Schema by name (`strata schema NAME`): what producers send, as the
    worker reads it, and what Strata publishes, as it writes it."""
    return {
        "event": json_schema(),
        "item": document_schema(Item, "item", ITEM_SCHEMA),
        "profile": document_schema(Profile, "profile", PROFILE_SCHEMA, "serialization"),
        "recommendations": document_schema(Recommendations, "recommendations", RECOMMENDATIONS_SCHEMA,
                                           "serialization"),
        "dlq": document_schema(DlqRecord, "dlq", DLQ_SCHEMA, "serialization"),
    }


def schema_file(schema: dict) -> str:
    """The name a schema ships under in schemas/: the end of its $id."""
    return schema["$id"].rsplit("/", 1)[1]


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
    return Profile(
        schema_version=PROFILE_SCHEMA,
        user_id=user_id,
        version=version,
        model_version=model_version,
        updated_at=iso_ms(now_ms),
        events_seen=window.events_seen,
        window={
            "events": len(entries),
            "from": iso_ms(entries[0].ts) if entries else None,
            "to": iso_ms(entries[-1].ts) if entries else None,
        },
        layers=layers,
        keywords=keywords_by_layer,
    ).model_dump(by_alias=True)


def recommendations_document(user_id: str, profile_version: int, model_version: str, items: list[dict]) -> dict:
    """`items`: {"item_id", "score", "layer", "reason", "source"} each, best first."""
    return Recommendations(schema_version=RECOMMENDATIONS_SCHEMA, user_id=user_id, profile_version=profile_version,
                           model_version=model_version, items=items).model_dump()


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
    return DlqRecord(
        schema_version=DLQ_SCHEMA,
        # As a dict: pydantic takes a dataclass instance as it is, a dict it validates.
        error={**rejection.as_dict(), "message": scrub(rejection.message[:MAX_DLQ_MESSAGE_CHARS])},
        source={"topic": topic, "partition": partition, "offset": offset},
        raw=base64.b64encode(scrub_bytes(raw, raw_bound)).decode("ascii"),
        raw_bytes=len(raw),
        at=iso_ms(now_ms),
    ).model_dump()


def dlq_key(key: Optional[bytes]) -> bytes:
    """The rejected record's key, cut like its payload; a record without a key gets the empty key,
    and a key in Faust's reserved space (its RocksDB bookkeeping) is prefixed out of it."""
    key = (key or b"")[:MAX_DLQ_KEY_BYTES]
    return b"#" + key if key.startswith(b"__faust") else key
