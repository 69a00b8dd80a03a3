"""The event of schema version 1: parsing raw bytes into a checked Event, or a precise Rejection.

The pydantic model is the single source of truth: `schemas/event.v1.json`, the JSON Schema that
producers in other languages validate against, is generated from it (`strata schema`), and a test
keeps the two equal. The item (the catalogue record) is defined here too, and what every JSON
Schema shipped in `schemas/` shares (`document_schema`).

`parse_event` tries a fast path first: msgspec decodes the bytes, checking the types and bounds of
Event's core schema, and pydantic-core runs the rest of that schema (defaults, the validators) to
make the Event; both are derived from the model. The rule that keeps it safe: the fast path may only
accept what the checked path (json, then Event.model_validate) accepts, and must then return the
same Event (the same values of the same types, the same fields set). Whatever it refuses or is
unsure of, it leaves to the checked path, which gives the precise Rejection.
tests/test_event_properties.py holds the two to the same outcome for every input.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Annotated, Literal, Optional, TypedDict, Union

import msgspec
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator,
                      model_validator, with_config)
from pydantic.json_schema import JsonSchemaMode
from pydantic_core import SchemaValidator, core_schema

EVENT_TYPES = ("browse", "purchase", "review")
EVENT_SCHEMA = 1  # no field of the event: its version is in the schema's name
ITEM_SCHEMA = 1
RESERVED_KEY_PREFIX = "__faust\x00"  # Faust's RocksDB stores keep each partition's offset under such a key

MAX_TS_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant datetime can show
MAX_INT_DIGITS = 20  # every bounded integer field fits; int() of a longer literal is slow, and refused past 4,300

# Every `Rejection.code` a record can get, so dashboards and DLQ consumers can enumerate them.
REJECTION_CODES = frozenset({
    "empty",  # a tombstone: the record has no value
    "too_large",  # the value is over max_bytes
    "bad_utf8",
    "bad_json",  # not JSON, nested too deeply, or a NaN/Infinity literal
    "bad_unicode",  # a \ud800-style escape that is no surrogate pair: UTF-8 cannot encode it
    "number_too_large",  # an integer literal of over MAX_INT_DIGITS digits
    "wrong_type",
    "missing_field",
    "unknown_type",  # `type` is not one of EVENT_TYPES
    "out_of_range",  # a number or a length outside the field's bounds
    "invalid_value",
    "bad_timestamp",  # unparseable, no zone, or outside [0, MAX_TS_MS]
    "no_content",  # neither `text` nor `item_id`
    "type_mismatch",  # `type` is not the topic's
    "future_timestamp",  # later than now + max_future_s
    # Added by ingest, after parse_event:
    "key_mismatch",  # the record key is not the user_id
    "wrong_partition",
    "internal",  # an unexpected error; the record is dead-lettered rather than stopping ingest
})
RejectionCode = Literal[tuple(sorted(REJECTION_CODES))]


# A category label: bounded, as every one of them is stored with each event in a window.
Label = Annotated[str, Field(min_length=1, max_length=128)]

# The ISO-8601 `ts` the JSON Schema admits: the extended form with a zone (what Java's Instant,
# JavaScript's toISOString, Go's RFC 3339 and Python's isoformat write), years 1970-9999, each
# month's days (29 February in every year: leap years are left to the parser). parse_ts_ms, i.e.
# datetime.fromisoformat, reads every string this matches (up to those dates and offsets that
# carry an instant past 1970 or 9999 in UTC) and more forms besides (basic, week dates).
_YEAR = "(?:19[7-9][0-9]|[2-9][0-9]{3})"
_MONTH_DAY = ("(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
              "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
              "|02-(?:0[1-9]|1[0-9]|2[0-9]))")
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:[.,][0-9]+)?)?"
_ZONE = "(?:Z|[+-](?:[01][0-9]|2[0-3])(?::?[0-5][0-9])?)"
ISO_TS_PATTERN = f"^{_YEAR}-{_MONTH_DAY}[Tt ]{_TIME}{_ZONE}$"

Timestamp = Annotated[Union[str, int], WithJsonSchema({
    "description": "ISO-8601 with zone, or epoch milliseconds; 1970 to 9999",
    "anyOf": [
        {"type": "string", "pattern": ISO_TS_PATTERN},
        {"type": "integer", "minimum": 0, "maximum": MAX_TS_MS},
    ],
})]

# An instant as Strata writes one (iso_ms): UTC, to the millisecond.
IsoMs = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z$",
                             json_schema_extra={"format": "date-time"})]


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
        title=f"Strata event v{EVENT_SCHEMA}",
        # _has_content: a non-empty text, or an item_id (a null one is no item_id).
        json_schema_extra={"anyOf": [
            {"required": ["text"], "properties": {"text": {"type": "string", "minLength": 1}}},
            {"required": ["item_id"], "properties": {"item_id": {"type": "string"}}},
        ]},
    )

    event_id: str = Field(min_length=1, max_length=128, description="unique; the dedupe key")
    user_id: str = Field(min_length=1, max_length=128, description="the record key",
                         json_schema_extra={"not": {"pattern": "^" + re.escape(RESERVED_KEY_PREFIX)}})
    type: Literal[EVENT_TYPES] = Field(description="must match the topic")
    ts: Timestamp
    item_id: Optional[str] = Field(None, min_length=1, max_length=128)
    text: Optional[str] = Field(None, description="any language; cut to a bound, scrubbed of PII")
    attrs: Attrs = Field(default_factory=Attrs)
    categories: Optional[list[Label]] = Field(
        None, min_length=1, max_length=3, description="item category path, deep -> surface"
    )

    @field_validator("user_id")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        # The user_id is the key of the user's table rows, where Faust keeps its own bookkeeping.
        if v.startswith(RESERVED_KEY_PREFIX):
            raise ValueError(f"may not start with {RESERVED_KEY_PREFIX!r}")
        return v

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


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)


def parse_ts_ms(v: Union[str, int]) -> int:
    """ISO-8601 (zone required) or epoch milliseconds -> epoch milliseconds in [0, MAX_TS_MS]."""
    if isinstance(v, int):
        ms = v
    else:
        try:
            dt = datetime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"not an ISO-8601 timestamp: {v!r}") from None
        if dt.tzinfo is None:
            raise ValueError("ISO-8601 timestamp needs a zone (Z or +hh:mm)")
        ms = (dt - _EPOCH) // _MS  # exact, where timestamp() * 1000 can round off a millisecond
    # Bounded so that every accepted ts can be shown by iso_ms and divided without OverflowError.
    if not 0 <= ms <= MAX_TS_MS:
        raise ValueError(f"timestamp outside 1970-01-01 .. 9999-12-31 (epoch ms 0 .. {MAX_TS_MS})")
    return ms


def iso_ms(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# A plain dataclass, cheap to make on the ingest path; pydantic reads it where the DLQ record
# embeds it (model/documents.py), so its fields are written once, and its schema is closed with
# every field present, as as_dict writes it.
@with_config(ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True))
@dataclass(frozen=True)
class Rejection:
    """Why a record was refused: the `error` object of a DLQ message."""

    code: RejectionCode
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


class _Bad(Exception):
    """A literal that must not become a value. The fast decoder raises it, which cannot tell the
    field; the locating decoder then leaves it in the document for _scan to find and name."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _int_or_bad(s: str) -> Union[int, _Bad]:
    digits = len(s) - s.startswith("-")
    if digits > MAX_INT_DIGITS:  # checked before int(), which is quadratic in the digits
        return _Bad("number_too_large", f"integer of {digits} digits, bound is {MAX_INT_DIGITS}")
    return int(s)


def _constant_bad(s: str) -> _Bad:
    return _Bad("bad_json", f"{s} is not JSON")  # Python's json accepts NaN and Infinity; JSON does not


def _raising(hook):
    def hook_or_raise(s: str):
        v = hook(s)
        if isinstance(v, _Bad):
            raise v
        return v

    return hook_or_raise


_DECODER = json.JSONDecoder(parse_int=_raising(_int_or_bad), parse_constant=_raising(_constant_bad))
_LOCATOR = json.JSONDecoder(parse_int=_int_or_bad, parse_constant=_constant_bad)
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def _decode(text: str) -> object:
    """json.loads, rejecting what it lets through: NaN/Infinity, over-long integers, lone surrogates."""
    try:
        doc = _DECODER.decode(text)
    except _Bad:
        doc = _LOCATOR.decode(text)  # again, for _scan to name the field
    else:
        # A lone surrogate can only come from an escape; most records have none and skip the walk.
        if "\\u" not in text or not _SURROGATE_ESCAPE.search(text):
            return doc
    _scan(doc)
    return doc


def _has_surrogate(s: str) -> bool:
    # json.loads turns an escape that is no surrogate pair into a lone surrogate (the UTF-8 input
    # itself cannot hold one), which UTF-8 cannot encode: the DLQ or the window write would fail.
    return not s.isascii() and _SURROGATE.search(s) is not None


def _field(path: Optional[tuple]) -> Optional[str]:
    parts = []
    while path is not None:
        key, path = path
        parts.append(str(key).encode("utf-8", "backslashreplace").decode("utf-8"))
    field = ".".join(reversed(parts))
    return field if len(field) <= 200 else field[:197] + "..."  # keys and nesting are the producer's


def _scan(doc: object) -> None:
    """Reject what json.loads let through: lone surrogates in any string or key, and _Bad literals.
    Iterative, since the document may be nested as deep as json.loads allows."""
    stack: list = [(None, doc)]  # (path as (key, parent path) links, value)
    while stack:
        path, v = stack.pop()
        if isinstance(v, str):
            if _has_surrogate(v):
                raise _rejected("bad_unicode", "lone UTF-16 surrogate escape (no pair), not a character", path)
        elif isinstance(v, _Bad):
            raise _rejected(v.code, v.message, path)
        elif isinstance(v, dict):
            for k, x in reversed(v.items()):  # reversed, so the first problem in the text is reported
                stack += (((k, path), x), ((k, path), k))  # the key is checked first, as a string
        elif isinstance(v, list):
            stack.extend(((i, path), x) for i, x in reversed(list(enumerate(v))))


def _rejected(code: str, message: str, path: Optional[tuple]) -> Rejected:
    field = _field(path)
    return Rejected(Rejection(code, f"{field}: {message}" if field else message, field))


def _parse_checked(raw: Optional[bytes], max_bytes: int) -> Event:
    """The checked path: json, then Event.model_validate; every refusal with its precise reason."""
    if not raw:  # a null value (tombstone) or an empty one
        raise Rejected(Rejection("empty", "record has no value"))
    if len(raw) > max_bytes:
        raise Rejected(Rejection("too_large", f"record is {len(raw)} bytes, bound is {max_bytes}"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(Rejection("bad_utf8", f"value is not UTF-8: {exc.reason} at byte {exc.start}")) from None
    try:
        doc = _decode(text)
    except json.JSONDecodeError as exc:
        raise Rejected(Rejection("bad_json", f"value is not JSON: {exc.msg} at char {exc.pos}")) from None
    except RecursionError:
        raise Rejected(Rejection("bad_json", "value is nested too deeply")) from None
    except ValueError as exc:  # not expected past the hooks; a bad record must not stop ingest
        raise Rejected(Rejection("bad_json", f"value is not JSON: {exc}")) from None
    if not isinstance(doc, dict):
        raise Rejected(Rejection("wrong_type", f"event must be a JSON object, got {type(doc).__name__}"))
    try:
        return Event.model_validate(doc)
    except ValidationError as exc:
        raise Rejected(_from_validation_error(exc)) from None


# The fast path: both its halves are derived from Event's core schema, the compiled form of the
# model that Event.model_validate runs. msgspec decodes the bytes into dicts of the fields present,
# checking the JSON types and bounds of the schema's leaves; pydantic-core then runs the rest of
# the schema on them (models, defaults, fields_set, the model's validators), leaves passed as they are.

_ANNOTATIONS = {"type", "ref", "metadata", "serialization"}  # none of them changes what is accepted


def _only(schema: dict, keys: set, where: str) -> None:
    """Refuse a schema that checks more than the fast path knows to check."""
    if set(schema) - keys - _ANNOTATIONS:
        raise TypeError(f"{where}: no fast form for {schema['type']} {sorted(set(schema) - keys - _ANNOTATIONS)}")


_BOUNDS = ("min_length", "max_length", "ge", "le")  # msgspec.Meta's names are pydantic-core's
_LEAVES = {"str": (str, {"min_length", "max_length", "strict"}),
           "int": (int, {"ge", "le", "strict"}),  # msgspec's int, like a strict one, is no bool or float
           # A strict float takes an int as a float, as msgspec does. msgspec's JSON has no NaN or
           # infinity (1e400 is an error), so allow_inf_nan cannot matter.
           "float": (float, {"ge", "le", "strict", "allow_inf_nan"})}


def _leaf_type(schema: dict, where: str):
    """The msgspec type that takes what `schema` takes of JSON, or less, as the same values."""
    kind = schema["type"]
    if kind == "nullable":
        _only(schema, {"schema"}, where)
        return Optional[_leaf_type(schema["schema"], where)]
    if kind == "union":
        _only(schema, {"choices"}, where)
        return Union[tuple(_leaf_type(c, where) for c in schema["choices"])]
    if kind == "literal" and all(type(v) is str for v in schema["expected"]):
        _only(schema, {"expected"}, where)
        return Literal[tuple(schema["expected"])]
    if kind == "list":
        _only(schema, {"items_schema", "min_length", "max_length", "strict"}, where)
        tp = list[_leaf_type(schema["items_schema"], where)]
    elif kind in _LEAVES:
        tp, keys = _LEAVES[kind]
        _only(schema, keys, where)
    else:
        raise TypeError(f"{where}: no fast form for {kind}")
    meta = {k: schema[k] for k in _BOUNDS if k in schema}
    return Annotated[tp, msgspec.Meta(**meta)] if meta else tp


def _fast_forms(schema: dict, where: str) -> tuple:
    """(the msgspec type a value decodes to, the core schema that does the rest of `schema` to it).
    TypeError for whatever the two could not do exactly as `schema` does."""
    kind = schema["type"]
    if kind == "function-after" and schema["function"]["type"] == "no-info":  # a validator, run as it is
        tp, rest = _fast_forms(schema["schema"], where)
        return tp, {**schema, "schema": rest}
    if kind != "model":
        return _leaf_type(schema, where), core_schema.any_schema()
    config, fields_schema = schema.get("config", {}), schema["schema"]
    _only(schema, {"cls", "schema", "config", "custom_init", "root_model"}, where)
    _only(fields_schema, {"fields", "model_name", "computed_fields"}, where)
    if (schema["custom_init"] or schema["root_model"] or config.get("strict") is not True
            or config.get("extra_fields_behavior", "ignore") != "ignore"):
        raise TypeError(f"{where}: no fast form for its config")
    types, rests = {}, {}
    for name, field in fields_schema["fields"].items():
        _only(field, {"schema"}, f"{where}.{name}")
        inner = field["schema"]
        if inner["type"] == "default":
            _only(inner, {"schema", "default", "default_factory", "default_factory_takes_data"}, f"{where}.{name}")
            types[name], rest = _fast_forms(inner["schema"], f"{where}.{name}")
            rests[name] = {**field, "schema": {**inner, "schema": rest}}
        else:
            types[name], rest = _fast_forms(inner, f"{where}.{name}")
            rests[name] = {**field, "schema": rest}
    # total=False: the dict holds just the fields the document has, so pydantic-core sets
    # fields_set and the defaults as from the document, and reports a missing required field.
    fields = TypedDict(f"_{fields_schema['model_name']}Fields", types, total=False)
    return fields, {**schema, "schema": {**fields_schema, "fields": rests}}


_EVENT_FIELDS, _EVENT_REST = _fast_forms(Event.__pydantic_core_schema__, "Event")
_FAST_DECODER = msgspec.json.Decoder(_EVENT_FIELDS)
_FAST_REST = SchemaValidator(_EVENT_REST)

# Unknown fields msgspec skips, checking their syntax only (lone surrogates and NaN included), where
# the checked path also refuses integers of over MAX_INT_DIGITS digits and bytes that are not UTF-8;
# and it runs out of recursion at another depth than json. A record that may hold any of these takes
# the checked path. Digits are marked "0", so such an integer shows as a run of zeros; "{" as "[".
_MARK = bytes.maketrans(b"123456789{", b"000000000[")
_LONG_INT = b"0" * (MAX_INT_DIGITS + 1)
_MAX_DEPTH = 100  # json and msgspec run out of recursion at different depths, both near 1,000


def _parse_fast(raw: bytes) -> Optional[Event]:
    """The Event that the checked path would return, or None: the checked path is to decide."""
    marked = raw.translate(_MARK)
    # find: `in` takes twice as long. A level of nesting takes two bytes: short records need no count.
    if marked.find(_LONG_INT) >= 0 or (len(raw) > 2 * _MAX_DEPTH and marked.count(b"[") > _MAX_DEPTH):
        return None
    if not raw.isascii():
        try:  # msgspec does not check the UTF-8 of what it skips
            raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
    try:
        return _FAST_REST.validate_python(_FAST_DECODER.decode(raw))
    except (msgspec.DecodeError, RecursionError, ValidationError):  # msgspec's ValidationError is a DecodeError
        return None


def parse_event(
    raw: Optional[bytes],
    *,
    topic_type: Optional[str] = None,
    max_bytes: int = 64 * 1024,
    max_future_s: float = 300.0,
    now_ms: Optional[int] = None,
) -> Event:
    """Parse one record value. Raises Rejected with a precise reason; never anything else."""
    # None, and anything but bytes, the checked path takes as it always did.
    event = _parse_fast(raw) if type(raw) is bytes and len(raw) <= max_bytes else None
    if event is None:
        event = _parse_checked(raw, max_bytes)
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
    """A catalogue entry from the `items` topic (key: item_id)."""

    model_config = ConfigDict(strict=True, extra="ignore", title=f"Strata item v{ITEM_SCHEMA}")

    # Optional on input, so that catalogues published before it existed still load; Strata's
    # writers (the data sets) build items with this model, so they always carry it.
    schema_version: Literal[ITEM_SCHEMA] = Field(ITEM_SCHEMA, description="a record without it is version 1")
    item_id: str = Field(min_length=1)
    title: str = Field("", max_length=4096)
    categories: list[Label] = Field(default_factory=list, max_length=3)
    attrs: dict = Field(default_factory=dict)


def document_schema(model: type[BaseModel], name: str, version: int, mode: JsonSchemaMode = "validation") -> dict:
    """`model`'s JSON Schema as it ships, in schemas/<name>.v<version>.json (the end of its $id).
    Records Strata reads are described as it validates them ("validation"), documents it writes
    as it writes them ("serialization")."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://strata.dev/schemas/{name}.v{version}.json",
            **model.model_json_schema(mode=mode)}


def json_schema() -> dict:
    """The event's JSON Schema, for producers (schemas/event.v1.json)."""
    return document_schema(Event, "event", EVENT_SCHEMA)
