"""The event of schema version 1: parsing raw bytes into a checked Event, or a precise Rejection.

The pydantic model is the single source of truth: `schemas/event.v1.json`, the JSON Schema that
producers in other languages validate against, is generated from it (`strata schema`), and a test
keeps the two equal.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

EVENT_TYPES = ("browse", "purchase", "review")


class Attrs(BaseModel):
    """Behaviour attributes. Unknown keys are ignored, known ones range-checked."""

    model_config = ConfigDict(strict=True, extra="ignore")

    dwell_ms: Optional[int] = Field(None, ge=0, le=7 * 86_400_000, description="browse: time on the item, ms")
    price: Optional[float] = Field(None, ge=0, le=1e12, allow_inf_nan=False, description="purchase: unit price")
    quantity: Optional[int] = Field(None, ge=1, le=1_000_000, description="purchase: units bought")
    rating: Optional[int] = Field(None, ge=1, le=5, description="review: stars, 1-5")


class Event(BaseModel):
    """A user behaviour event. JSON types are exact: no number is coerced into a string id."""

    model_config = ConfigDict(
        strict=True,
        extra="ignore",
        title="Strata event v1",
        json_schema_extra={"anyOf": [{"required": ["text"]}, {"required": ["item_id"]}]},
    )

    event_id: str = Field(min_length=1, max_length=128, description="unique; the dedupe key")
    user_id: str = Field(min_length=1, max_length=128)
    type: Literal["browse", "purchase", "review"] = Field(description="must match the topic")
    ts: Union[str, int] = Field(description="ISO-8601 with zone, or epoch milliseconds")
    item_id: Optional[str] = Field(None, min_length=1, max_length=128)
    text: Optional[str] = Field(None, description="any language; cut to a bound, scrubbed of PII")
    attrs: Attrs = Field(default_factory=Attrs)
    categories: Optional[list[str]] = Field(
        None, min_length=1, max_length=3, description="item category path, deep -> surface"
    )

    @field_validator("ts")
    @classmethod
    def _parse_ts(cls, v: Union[str, int]) -> int:
        return parse_ts_ms(v)

    @model_validator(mode="after")
    def _has_content(self) -> "Event":
        if not self.text and not self.item_id:
            raise ValueError("event needs `text` or `item_id`")
        return self

    @property
    def ts_ms(self) -> int:
        return int(self.ts)


def parse_ts_ms(v: Union[str, int]) -> int:
    """ISO-8601 (zone required) or epoch milliseconds -> epoch milliseconds."""
    if isinstance(v, int):
        if v < 0:
            raise ValueError("epoch milliseconds must be >= 0")
        return v
    try:
        dt = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"not an ISO-8601 timestamp: {v!r}") from None
    if dt.tzinfo is None:
        raise ValueError("ISO-8601 timestamp needs a zone (Z or +hh:mm)")
    ms = int(dt.timestamp() * 1000)
    if ms < 0:
        raise ValueError("timestamp before 1970")
    return ms


def iso_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


@dataclass(frozen=True)
class Rejection:
    """Why a record was refused: the `error` object of a DLQ message."""

    code: str
    message: str
    field: Optional[str] = None

    def as_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "field": self.field}


class Rejected(Exception):
    def __init__(self, rejection: Rejection):
        super().__init__(rejection.message)
        self.rejection = rejection


_PYDANTIC_CODES = {
    "missing": "missing_field",
    "literal_error": "unknown_type",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "out_of_range",
    "string_too_short": "out_of_range",
    "string_too_long": "out_of_range",
    "too_short": "out_of_range",
    "too_long": "out_of_range",
    "value_error": "invalid_value",
}


_UNION_TAGS = {"str", "int"}


def _from_validation_error(exc: ValidationError) -> Rejection:
    err = exc.errors(include_url=False)[0]
    # Union members add their type as a location part ("ts.str"); the field is what producers name.
    field = ".".join(str(p) for p in err["loc"] if p not in _UNION_TAGS) or None
    kind = err["type"]
    code = _PYDANTIC_CODES.get(kind, "wrong_type" if kind.endswith("_type") else "invalid_value")
    if field == "ts" and kind == "value_error":
        code = "bad_timestamp"
    if field is None and kind == "value_error":
        code = "no_content"
    msg = err["msg"].removeprefix("Value error, ")
    return Rejection(code, f"{field}: {msg}" if field else msg, field)


def parse_event(
    raw: Optional[bytes],
    *,
    topic_type: Optional[str] = None,
    max_bytes: int = 64 * 1024,
    max_future_s: float = 300.0,
    now_ms: Optional[int] = None,
) -> Event:
    """Parse one record value. Raises Rejected with a precise reason; never anything else."""
    if raw is None:
        raise Rejected(Rejection("empty", "record has no value"))
    if len(raw) > max_bytes:
        raise Rejected(Rejection("too_large", f"record is {len(raw)} bytes, bound is {max_bytes}"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(Rejection("bad_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}")) from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Rejected(Rejection("bad_json", f"value is not JSON: {exc.msg} at char {exc.pos}")) from None
    except RecursionError:
        raise Rejected(Rejection("bad_json", "value is nested too deeply")) from None
    if not isinstance(doc, dict):
        raise Rejected(Rejection("wrong_type", f"event must be a JSON object, got {type(doc).__name__}"))
    try:
        event = Event.model_validate(doc)
    except ValidationError as exc:
        raise Rejected(_from_validation_error(exc)) from None
    if topic_type is not None and event.type != topic_type:
        raise Rejected(
            Rejection("type_mismatch", f"type {event.type!r} sent to the {topic_type!r} topic", "type")
        )
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    if event.ts_ms > now + max_future_s * 1000:
        raise Rejected(
            Rejection("future_timestamp", f"ts is {(event.ts_ms - now) / 1000:.0f} s in the future", "ts")
        )
    return event


class Item(BaseModel):
    """A catalogue entry from the `items` topic."""

    model_config = ConfigDict(strict=True, extra="ignore")

    item_id: str = Field(min_length=1)
    title: str = ""
    categories: list[str] = Field(default_factory=list, max_length=3)
    attrs: dict = Field(default_factory=dict)


def json_schema() -> dict:
    """The JSON Schema for producers (written to schemas/event.v1.json)."""
    schema = Event.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://strata.dev/schemas/event.v1.json"
    schema["properties"]["ts"] = {
        "description": "ISO-8601 with zone, or epoch milliseconds",
        "anyOf": [{"type": "string", "format": "date-time"}, {"type": "integer", "minimum": 0}],
    }
    return schema
