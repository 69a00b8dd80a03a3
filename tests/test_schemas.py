"""The JSON Schemas in schemas/: generated from the code, met by every document Strata builds, and,
for the event, refusing what the worker refuses wherever JSON Schema can say it."""
from __future__ import annotations

import calendar
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Optional

import jsonschema
import pytest
from conftest import malformed_records, shipped_schema
from hypothesis import given, settings
from hypothesis import strategies as st

from model.datasets.synthetic import generate
from model.documents import dlq_document, internal, json_schemas, recommendations_document, schema_file
from model.profile import BaselineModel
from model.serve import profile_batch
from model.taxonomy import Taxonomy
from state.event import (EVENT_TYPES, ISO_TS_PATTERN, MAX_TS_MS, REJECTION_CODES, Item, Rejected, Rejection, parse_event,
                         parse_ts_ms)
from state.items import ItemIndex
from state.window import Entry, Window
from streams.ingest import check_key

SCHEMAS = Path(__file__).parent.parent / "schemas"
NOW = 1_795_000_000_000  # 2026-11-18: a fixed "now" for the future-timestamp check


def test_shipped_schemas_are_the_code_s():
    generated = json_schemas()
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(map(schema_file, generated.values())), \
        "a schema file is missing or stale: regenerate with `strata schema --dir schemas`"
    for name, schema in generated.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        assert shipped_schema(name).schema == schema, f"regenerate with `strata schema --dir schemas` ({name})"


def _profiled(entries: list[Entry]) -> tuple[dict, dict]:
    tax = Taxonomy.load()
    items = ItemIndex()
    for i, surface in enumerate(("茶饮", "科幻小说")):
        items.put(Item(item_id=f"i{i}", title=surface, categories=tax.path(surface)))
    [done] = profile_batch(BaselineModel(tax), [Window("u1", 0, entries, events_seen=len(entries))], [0], items, NOW)
    return json.loads(done.profile), json.loads(done.recommendations)


def test_every_document_the_code_builds_meets_its_schema():
    tax = Taxonomy.load()
    entries = [Entry(id="e1", ts=NOW - 60_000, type="browse", text="龙井", tokens=["龙井"], cats=tax.path("茶饮")),
               Entry(id="e2", ts=NOW, type="purchase", item="i0")]
    for entries in (entries, []):  # an empty window has no from/to
        profile, recs = _profiled(entries)
        shipped_schema("profile").validate(profile)
        shipped_schema("recommendations").validate(recs)
    assert recs["items"]  # the catalogue was recommended from, so its items were checked too
    shipped_schema("recommendations").validate(recommendations_document("u1", 1, "v", []))
    # Every code a DLQ record can carry, and records as the worker refuses them.
    dlq = shipped_schema("dlq")
    for code in sorted(REJECTION_CODES):
        dlq.validate(dlq_document(Rejection(code, "why", "ts"), "events.browse", 3, 9, b"{}", 8192, NOW))
    dlq.validate(dlq_document(internal(KeyError("x")), "events.browse", 0, 0, None, 8192, NOW))
    for topic, key, value, code in malformed_records():
        rejection = _refusal(topic, key, value)
        assert rejection is not None and rejection.code == code
        dlq.validate(dlq_document(rejection, topic, 1, 2, value, 8192, NOW))
    # Items as the data sets write them, and as older catalogues hold them (no schema_version).
    items, _ = generate(200, 10, seed=2)
    for item in items:
        shipped_schema("item").validate(item)
    shipped_schema("item").validate({k: v for k, v in items[0].items() if k != "schema_version"})
    assert Item.model_validate({k: v for k, v in items[0].items() if k != "schema_version"}).schema_version == 1


def test_a_document_that_drifts_fails_its_schema():
    profile, recs = _profiled([])
    for doc, name in ((profile, "profile"), (recs, "recommendations")):
        with pytest.raises(jsonschema.ValidationError):
            shipped_schema(name).validate({**doc, "added": 1})
        with pytest.raises(jsonschema.ValidationError):
            shipped_schema(name).validate({**doc, "schema_version": 99})
    with pytest.raises(jsonschema.ValidationError):
        shipped_schema("profile").validate({**profile, "layers": {"surface": profile["layers"]["surface"]}})
    with pytest.raises(ValueError):  # the builder refuses what the schema would
        dlq_document(Rejection("no_such_code", "why"), "events.browse", 0, 0, b"", 8192, NOW)


# Where the event schema and the worker disagree, and why JSON Schema cannot say it. Keys that are
# rejection codes cover every record refused with that code; the others name the records below
# that show them. Mirrored in README.md ("Message formats").
KNOWN_DIFFERENCES = {
    "too_large": "the bound is on the record's bytes (64 KiB); a schema sees decoded characters, one string at a time",
    "bad_unicode": "a lone \\ud800-style escape is valid JSON and a string to JSON Schema; no UTF-8 can hold it",
    "number_too_large": "integers of over 20 digits are refused anywhere, unknown fields included, before they "
                        "are read; the schema bounds only the integers of the fields it names",
    "type_mismatch": "`type` must match the topic; one schema serves the three event topics",
    "key_mismatch": "the record key (and its partition: wrong_partition) is not in the value a schema sees",
    "future_timestamp": "`ts` may be at most 300 s past the worker's clock; a schema has no clock",
    "integral_float": "JSON Schema counts 5.0 as an integer; the worker takes only integer literals",
    "leap_day": "29 February of a common year: the pattern knows month lengths, not leap years",
    "offset_past_bounds": "an ISO `ts` of 1970-01-01 or 9999-12-31 whose offset carries it out of 1970..9999 in UTC",
    "lenient_iso": "the worker also reads ISO forms the schema does not admit (basic 20261101T0930Z, week dates, "
                   "hour-only times): producers that validate are on the safe side",
    "newline_before_end": "Python's jsonschema matches patterns with re.search, whose $ also matches before a "
                          "final newline; validators using ECMA-262 regexes, as JSON Schema specifies, refuse it",
}

BASE = {"event_id": "e1", "user_id": "u1", "type": "browse", "ts": "2026-11-01T09:30:00Z", "text": "三体"}


def _event(**changes) -> dict:
    return {k: v for k, v in {**BASE, **changes}.items() if v is not ...}


# (event, the known difference it shows or None); `...` leaves a field out.
EDGE_CASES = [
    *[(_event(ts=ts), None) for ts in (
        0, NOW, "1970-01-01T00:00:00Z", "2026-11-01T09:30:00.123456789Z", "2026-11-01T09:30:00,5Z",
        "2026-11-01 09:30:00+08:00", "2026-11-01t09:30Z", "2026-11-01T09:30:00+0800", "2026-11-01T09:30:00-03",
        "2026-11-01T09:30:00-00:00", "2024-02-29T00:00:00Z", "2026-04-30T23:59:59Z",
        # refused by both
        -1, MAX_TS_MS + 1, 10**19, True, 1.5, None, "yesterday", "2026-11-01T09:30:00", "2026-11-01",
        "2026-02-30T00:00:00Z", "2026-04-31T00:00:00Z", "2026-11-01T24:00:00Z", "2026-11-01T23:59:60Z",
        "2026-11-01T09:30:00z", "1969-12-31T23:59:59Z", "2026-11-01T09:30:00+24:00", "10000-01-01T00:00:00Z",
        " 2026-11-01T09:30:00Z", "2026-11-01T09:30:00Z ",
    )],
    (_event(ts="9999-12-31T23:59:59.999Z"), None),  # future_timestamp, by its code
    (_event(ts=1_793_525_400_000.0), "integral_float"),
    (_event(attrs={"rating": 5.0}, type="review"), "integral_float"),
    (_event(ts="2026-02-29T00:00:00Z"), "leap_day"),
    (_event(ts="1970-01-01T00:30:00+01:00"), "offset_past_bounds"),
    (_event(ts="9999-12-31T23:59:59-01:00"), "offset_past_bounds"),
    (_event(ts="20261101T093000Z"), "lenient_iso"),
    (_event(ts="2026-W44-7T09:30:00Z"), "lenient_iso"),
    (_event(ts="2026-11-01T09Z"), "lenient_iso"),
    (_event(ts="2026-11-01T09:30:00 Z"), "lenient_iso"),
    (_event(ts="2026-11-01T09:30:00Z\n"), "newline_before_end"),
    # text or item_id: the worker's no_content
    (_event(text=..., item_id="sku-1"), None),
    (_event(text=None, item_id="sku-1"), None),
    (_event(item_id=None), None),
    (_event(text=" "), None),
    (_event(text=None), None),
    (_event(text=...), None),
    (_event(text=""), None),
    (_event(text=None, item_id=None), None),
    (_event(text="", item_id=""), None),
    # everything else the model says
    (_event(user_id="__faust"), None),
    (_event(user_id="__faust\x00offset__"), None),
    (_event(event_id=12345), None),
    (_event(event_id="e" * 129), None),
    (_event(type="click"), None),
    (_event(attrs=None), None),
    (_event(attrs={"dwell_ms": 10, "unknown": "kept out"}), None),
    (_event(attrs={"dwell_ms": -1}), None),
    (_event(type="purchase", attrs={"price": 5, "quantity": 1}), None),
    (_event(type="purchase", attrs={"price": 1e13}), None),
    (_event(categories=None), None),
    (_event(categories=["文娱", "阅读", "科幻小说"]), None),
    (_event(categories=[]), None),
    (_event(categories=["a", "b", "c", "d"]), None),
    (_event(categories=["x" * 129]), None),
    (_event(text="\U0001F600 pair", extra=10**19, more={"nested": [1, 2]}), None),
]


def _cases():
    """(label, topic, key, value, known difference): the malformed corpus, generated events, edge cases."""
    for topic, key, value, code in malformed_records():
        yield f"corpus {code} {value[:60]!r}", topic, key, value, None
    _, events = generate(300, 20, seed=1, end_ms=NOW - 3_600_000)
    for i, (doc, known) in enumerate([(e, None) for e in events] + EDGE_CASES):
        topic = f"events.{doc['type']}" if doc.get("type") in EVENT_TYPES else "events.browse"
        key = doc["user_id"].encode() if isinstance(doc.get("user_id"), str) else b"u1"
        yield f"event {i} {json.dumps(doc)[:120]}", topic, key, json.dumps(doc).encode(), known


def _refusal(topic: str, key: bytes, value: bytes) -> Optional[Rejection]:
    """The worker's verdict on a record, short of its partition: None, or why it goes to the DLQ."""
    try:
        check_key(key, parse_event(value, topic_type=topic.removeprefix("events."), now_ms=NOW))
    except Rejected as exc:
        return exc.rejection
    return None


def _not_json(literal: str):
    raise ValueError(f"{literal} is not JSON")


def _schema_accepts(value: bytes) -> bool:
    """What a producer's validator says of the value: it has a document only if the value is JSON
    (UTF-8, no NaN or Infinity); integers are read at any length, as JSON allows."""
    try:
        doc = json.loads(value.decode("utf-8"), parse_constant=_not_json, parse_int=lambda s: int(Decimal(s)))
    except (ValueError, RecursionError):
        return False
    return shipped_schema("event").is_valid(doc)


def test_the_event_schema_refuses_what_the_worker_refuses_but_for_known_differences():
    shown, wrong = set(), []
    for label, topic, key, value, known in _cases():
        refusal = _refusal(topic, key, value)
        code = refusal and refusal.code
        if _schema_accepts(value) == (code is None):
            continue
        difference = known or (code if code in KNOWN_DIFFERENCES else None)
        if difference is None:
            wrong.append(f"{label}: schema {'accepts' if code else 'refuses'}, worker {code or 'accepts'}")
        shown.add(difference)
    assert not wrong, "\n".join(wrong)
    assert shown == set(KNOWN_DIFFERENCES), f"no case shows {set(KNOWN_DIFFERENCES) - shown}"


def _explained(ts: str) -> bool:
    """The pattern's known differences: a leap day of a common year, or an offset past the bounds."""
    year = int(ts[:4])
    return (ts[5:10] == "02-29" and not calendar.isleap(year)) or ts[:10] in ("1970-01-01", "9999-12-31")


@settings(deadline=None)
@given(st.from_regex(ISO_TS_PATTERN, fullmatch=True))
def test_every_timestamp_the_schema_admits_the_worker_reads(ts):
    try:
        parse_ts_ms(ts)
    except ValueError:
        assert _explained(ts), ts


@settings(deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30)),
       st.integers(-23 * 60 - 59, 23 * 60 + 59))
def test_the_schema_admits_timestamps_as_producers_write_them(dt, offset_min):
    aware = dt.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    validator = shipped_schema("event")
    for ts in (aware.isoformat(), aware.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")):
        assert validator.is_valid(_event(ts=ts)), ts
