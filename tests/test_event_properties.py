"""Properties of parse_event over hostile input: it returns an Event or raises Rejected, never anything
else, and whatever it accepts or says can be written as UTF-8 JSON (the window, the DLQ record). Its fast
path changes nothing: every input gets what the checked path alone gives it."""
from __future__ import annotations

import json
import math
import sys
from datetime import datetime, timedelta, timezone
from unittest import mock

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, field_validator

import state.event as event_module
from model.datasets.synthetic import generate
from model.documents import encode
from state.event import (EVENT_TYPES, MAX_TS_MS, RESERVED_KEY_PREFIX, REJECTION_CODES, Event, Rejected, iso_ms,
                         parse_event)

NOW = 1_795_000_000_000
# No deadline: the shared CI cores make single-example timings noisy; the example counts bound the time.
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Raw(str):
    """JSON text spliced in as it is: number literals json.dumps never writes, or refuses to (over 4,300 digits)."""


def dump(v, ensure_ascii: bool = True) -> str:
    """json.dumps with Raw tokens; by default ensure_ascii, so a lone surrogate goes out as a \\udXXX escape."""
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=ensure_ascii)}: {dump(x, ensure_ascii)}"
                               for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(dump(x, ensure_ascii) for x in v) + "]"
    return json.dumps(v, ensure_ascii=ensure_ascii)  # floats nan/inf come out as NaN/Infinity literals


# Surrogates are rare in st.characters(); these make them, and other troublemakers, common.
odd_chars = st.one_of(
    st.characters(),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    st.sampled_from(["\x00", "\u2028", "\ufeff", '"', "\\", "😀", "字", "\U0010ffff"]),
)
odd_text = st.lists(odd_chars, max_size=40).map("".join)  # st.text() would drop the surrogates
clean_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
huge_ints = st.integers(21, 6000).flatmap(lambda n: st.sampled_from(["", "-"]).map(lambda s: Raw(s + "9" * n)))
number_literals = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" + "0" * 400 + ".5",
                                   "99999999999999999999", "100000000000000000000", "-0", "1E2"]).map(Raw)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**25), 10**25), st.floats(), odd_text, huge_ints, number_literals
)
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=5) | st.dictionaries(odd_text, kids, max_size=5), max_leaves=30
)


def json_level_problem(v) -> bool:
    """Whether a document holds what must be rejected wherever it is, even in an ignored field."""
    if isinstance(v, Raw):
        t = v.lstrip("-")
        return t in ("NaN", "Infinity") or (t.isdigit() and len(t) > 20)
    if isinstance(v, float):
        return not math.isfinite(v)  # dumped as a NaN or Infinity literal
    if isinstance(v, str):  # as JSON reads it back: an escaped high + low surrogate is one character
        return any(0xD800 <= ord(c) <= 0xDFFF for c in json.loads(json.dumps(v)))
    if isinstance(v, dict):
        return any(json_level_problem(k) or json_level_problem(x) for k, x in v.items())
    if isinstance(v, list):
        return any(json_level_problem(x) for x in v)
    return False


def outcome(raw: bytes, **kw):
    """The Rejection, or the Event as what can tell two apart: its fields' values with their types
    (5 from 5.0, -0.0 from 0.0), and which fields the record set."""
    try:
        e = parse_event(raw, **kw)
    except Rejected as exc:
        return exc.rejection
    return repr(e.model_dump()), e.model_fields_set, e.attrs.model_fields_set


def outcomes(raw: bytes, **kw) -> tuple:
    """parse_event's outcome, and the checked path's alone: from the same depth of the stack, where
    a record nested near the recursion limit gets its answer."""
    fast = outcome(raw, **kw)
    with mock.patch.object(event_module, "_parse_fast", lambda raw: None):
        return fast, outcome(raw, **kw)


def check(raw: bytes, doc=None, **kw) -> None:
    """The properties every call must have; records its outcome for --hypothesis-show-statistics."""
    fast, checked = outcomes(raw, **kw)
    assert fast == checked
    try:
        e = parse_event(raw, **kw)
    except Rejected as exc:
        r = exc.rejection
        event(r.code)
        assert r.code in REJECTION_CODES
        assert r.message
        # The rejection goes out in a DLQ record as UTF-8 JSON.
        json.dumps(r.as_dict(), ensure_ascii=False).encode("utf-8")
        if doc is not None and json_level_problem(doc):
            assert r.code in ("bad_unicode", "number_too_large", "bad_json")
        return
    event("accepted")
    assert doc is None or not json_level_problem(doc)
    assert isinstance(e, Event)
    assert 0 <= e.ts_ms <= MAX_TS_MS
    iso_ms(e.ts_ms)
    dumped = e.model_dump()
    stack = [dumped]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            v.encode("utf-8")
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    json.dumps(dumped, ensure_ascii=False, allow_nan=False).encode("utf-8")


@settings(max_examples=400, **SETTINGS)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes(raw):
    check(raw, now_ms=NOW)


@settings(max_examples=400, **SETTINGS)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_inside_an_object(raw):
    check(b'{"event_id": ' + raw + b"}", now_ms=NOW)  # past the first byte, so the JSON scanner works


@settings(max_examples=600, **SETTINGS)
@given(json_values)
def test_arbitrary_json(doc):
    check(dump(doc).encode("utf-8"), doc, now_ms=NOW)


# Event-shaped documents: each field mostly right, sometimes wrong or hostile, sometimes missing,
# so that validation often runs past the first field, to the timestamp, content and topic checks.
MISSING = object()
wrong = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(odd_text, scalars, max_size=3))


def field(good, bad=wrong):
    return st.integers(0, 99).flatmap(lambda p: good if p < 85 else bad if p < 95 else st.just(MISSING))


ids = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=130)
zones = st.integers(-(24 * 60 - 1), 24 * 60 - 1).map(lambda m: timezone(timedelta(minutes=m)))
good_ts = st.one_of(
    st.integers(0, MAX_TS_MS),
    st.integers(NOW - 10**12, NOW),
    st.datetimes(timezones=zones).map(lambda d: d.isoformat()),
)
edge_ts = st.one_of(  # either side of the bounds, 1970 and 9999 in UTC
    st.integers(-1000, 1000) | st.integers(MAX_TS_MS - 1000, MAX_TS_MS + 1000),
    st.datetimes(datetime(9999, 12, 31), timezones=zones).map(lambda d: d.isoformat()),
    st.datetimes(max_value=datetime(1, 1, 2), timezones=zones).map(lambda d: d.isoformat()),
    st.datetimes(datetime(1969, 12, 31), datetime(1970, 1, 2), timezones=zones).map(lambda d: d.isoformat()),
)
bad_ts = st.one_of(
    st.integers(-(10**20) + 1, -1), st.integers(MAX_TS_MS + 1, 10**20 - 1),
    st.datetimes().map(lambda d: d.isoformat()),  # no zone
    st.sampled_from(["", "Z", "2026-13-01T00:00:00Z", "9999-12-31T23:59:59.999999-23:59", "+275760-09-13T00:00Z"]),
    wrong,
)
attr_ranges = {
    "dwell_ms": st.integers(0, 7 * 86_400_000),
    "price": st.floats(0, 1e12) | st.integers(0, 10**12),
    "quantity": st.integers(1, 1_000_000),
    "rating": st.integers(1, 5),
}
attrs = field(
    st.fixed_dictionaries({k: field(v, st.integers(-(10**21), 10**21) | wrong) for k, v in attr_ranges.items()})
    .map(lambda d: {k: v for k, v in d.items() if v is not MISSING}),
)
categories = field(st.lists(clean_text, min_size=1, max_size=3), st.lists(clean_text | wrong, max_size=5) | wrong)


@st.composite
def event_docs(draw):
    doc = {
        "event_id": draw(field(ids)),
        "user_id": draw(field(ids)),
        "type": draw(field(st.sampled_from(EVENT_TYPES))),
        "ts": draw(field(good_ts | edge_ts, bad_ts)),
        "item_id": draw(field(ids)),
        "text": draw(field(clean_text, odd_text)),
        "attrs": draw(attrs),
        "categories": draw(categories),
    }
    extra = draw(st.dictionaries(clean_text, clean_text | st.integers(), max_size=2)
                 | st.dictionaries(odd_text, wrong, max_size=3))
    return {k: v for k, v in {**doc, **extra}.items() if v is not MISSING}


@settings(max_examples=1000, **SETTINGS)
@given(event_docs(), st.sampled_from([None, *EVENT_TYPES]), st.sampled_from([300.0, math.inf]))
def test_event_shaped_json(doc, topic_type, max_future_s):
    # max_future_s=inf turns the future check off, leaving the ts bound alone to keep ts in range.
    check(dump(doc).encode("utf-8"), doc, topic_type=topic_type, max_future_s=max_future_s, now_ms=NOW)


@settings(max_examples=300, **SETTINGS)
@given(st.one_of(good_ts, edge_ts, bad_ts), st.sampled_from([300.0, math.inf]))
def test_timestamps_in_an_otherwise_valid_event(ts, max_future_s):
    doc = {"event_id": "e1", "user_id": "u1", "type": "browse", "item_id": "i1", "ts": ts}
    check(dump(doc).encode("utf-8"), doc, max_future_s=max_future_s, now_ms=NOW)


# Valid events with one thing changed: a field's value (at and past its bounds, of another JSON type,
# written as JSON numbers json.dumps does not write), a duplicated, escaped or unknown key, or the bytes.
strings = st.sampled_from(["", "x", "x" * 128, "x" * 129, "😀" * 128, "😀" * 129, RESERVED_KEY_PREFIX + "u",
                           "\x00"])
JSON_NUMBER = r"-?(0|[1-9][0-9]{0,19})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?"  # digit runs under the bound
json_numbers = st.from_regex(JSON_NUMBER, fullmatch=True).map(Raw)
edges = {
    "event_id": strings, "user_id": strings, "item_id": strings | st.none(),
    "type": st.sampled_from(["browse", "Browse", "", None]),
    "ts": st.sampled_from([0, -1, MAX_TS_MS, MAX_TS_MS + 1, 10**20 - 1, NOW + 3_600_000, True, 1.0, "",
                           "2026-11-01T09:30:00Z", "2026-11-01T09:30:00", Raw("-0"), Raw("1E2"), Raw("1.0")])
    | json_numbers,
    "text": strings | st.none() | odd_text,
    "attrs": st.one_of(
        st.sampled_from([None, {}, [], {"dwell_ms": None}, {"rating": 0}, {"rating": 5}, {"rating": 6},
                         {"quantity": 10**6}, {"quantity": 10**6 + 1}, {"price": 10**12}, {"price": 10**12 + 1},
                         {"price": -0.0}, {"price": True}, {"dwell_ms": 1.0}, {"dwell_ms": Raw("1E2")},
                         {"price": Raw("-0")}, {"price": Raw("1e400")}, {"price": Raw("-1e-400")}]),
        st.sampled_from(list(attr_ranges)).flatmap(lambda k: json_numbers.map(lambda v: {k: v})),
        st.dictionaries(odd_text, wrong, max_size=2),
    ),
    "categories": st.sampled_from([[], ["a"], ["a"] * 3, ["a"] * 4, [""], ["x" * 128], ["x" * 129], [None], "a"]),
}
nestings = st.sampled_from([99, 100, 101, 500, 990, 995, 1000]).map(lambda n: Raw("[" * n + "]" * n))
splices = st.sampled_from([b"\xef\xbb\xbf", b" ", b"\x0c", b"\xff", b"\xed\xa0\x80", b"}", b"1"])  # BOM, not UTF-8, ...


@st.composite
def near_valid(draw) -> bytes:
    doc = {"event_id": draw(ids), "user_id": draw(ids), "type": draw(st.sampled_from(EVENT_TYPES)), "ts": draw(good_ts),
           "item_id": draw(ids), "text": draw(clean_text),
           "attrs": draw(st.fixed_dictionaries({}, optional=attr_ranges)),
           "categories": draw(st.lists(clean_text.filter(bool), min_size=1, max_size=3))}
    pairs = [(k, v) for k, v in doc.items() if k in ("event_id", "user_id", "type", "ts") or draw(st.integers(0, 4))]
    change = draw(st.sampled_from(["none", "value", "missing", "duplicate", "escaped key", "unknown", "bytes"]))
    name = draw(st.sampled_from(sorted(edges)))
    if change == "value":
        pairs = [(k, draw(edges[k]) if k == name else v) for k, v in pairs]
    elif change == "missing":
        pairs = [(k, v) for k, v in pairs if k != name]
    elif change == "duplicate":  # json.loads keeps the last
        pairs.insert(draw(st.integers(0, len(pairs))), (name, draw(edges[name] | wrong)))
    elif change == "escaped key":
        pairs = [(Raw('"\\u%04x%s"' % (ord(k[0]), k[1:])) if k == name else k, v) for k, v in pairs]
    elif change == "unknown":
        pairs.insert(draw(st.integers(0, len(pairs))), (draw(odd_text), draw(json_values | huge_ints | nestings)))
    ascii_only = draw(st.booleans())  # else UTF-8, where a lone surrogate makes bytes that are not UTF-8
    sep = draw(st.sampled_from([", ", ",", " ,\n\t", "\r\n,"]))
    text = "{" + sep.join(f"{dump(k, ascii_only)}: {dump(v, ascii_only)}" for k, v in pairs) + "}"
    raw = text.encode("utf-8", "surrogatepass")
    if change == "bytes":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(splices) + raw[at:]
    return raw


@settings(max_examples=1500, **SETTINGS)
@given(near_valid(), st.sampled_from([None, *EVENT_TYPES]), st.sampled_from([300.0, math.inf]))
def test_near_valid_events_get_what_the_checked_path_gives(raw, topic_type, max_future_s):
    check(raw, topic_type=topic_type, max_future_s=max_future_s, now_ms=NOW)


def test_nesting_near_the_recursion_limit_gets_what_the_checked_path_gives():
    # json and msgspec run out of recursion a few levels apart, where the stack happens to end.
    for n in range(1, sys.getrecursionlimit() + 10):
        raw = b'{"event_id": "e1", "user_id": "u1", "type": "browse", "ts": 0, "text": "t", "x": %s}' % (
            b"[" * n + b"]" * n)
        fast, checked = outcomes(raw, now_ms=NOW)
        assert fast == checked, n


def test_the_fast_path_takes_ordinary_events():
    _, events = generate(300, 20, seed=1, end_ms=NOW)
    for doc in events:
        for raw in (encode(doc), json.dumps(doc).encode()):  # as Strata writes it, and all-ASCII
            assert event_module._parse_fast(raw) is not None, raw
            fast, checked = outcomes(raw, now_ms=NOW)
            assert fast == checked


class _Loose(BaseModel):  # lax: pydantic would take "5" for an int
    n: int


class _Closed(BaseModel):  # refuses unknown fields, which msgspec would skip
    model_config = ConfigDict(strict=True, extra="forbid")
    n: int


class _Patterned(BaseModel):
    model_config = ConfigDict(strict=True)
    s: str = Field(pattern="^a")


class _Above(BaseModel):
    model_config = ConfigDict(strict=True)
    n: int = Field(gt=0)


class _Before(BaseModel):
    model_config = ConfigDict(strict=True)
    s: str

    @field_validator("s", mode="before")
    @classmethod
    def _strip(cls, v):
        return v.strip()


@pytest.mark.parametrize("model", [_Loose, _Closed, _Patterned, _Above, _Before])
def test_the_fast_path_is_not_derived_for_what_it_cannot_check(model):
    with pytest.raises(TypeError):
        event_module._fast_forms(model.__pydantic_core_schema__, model.__name__)
