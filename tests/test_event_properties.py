"""Properties of parse_event over hostile input: it returns an Event or raises Rejected, never anything
else, and whatever it accepts or says can be written as UTF-8 JSON (the window, the DLQ record)."""
from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from state.event import EVENT_TYPES, MAX_TS_MS, REJECTION_CODES, Event, Rejected, iso_ms, parse_event

NOW = 1_795_000_000_000
# No deadline: the shared CI cores make single-example timings noisy; the example counts bound the time.
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


class Raw(str):
    """JSON text spliced in as it is: number literals json.dumps never writes, or refuses to (over 4,300 digits)."""


def dump(v) -> str:
    """json.dumps with Raw tokens; ensure_ascii, so a lone surrogate goes out as a \\udXXX escape."""
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {dump(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(dump(x) for x in v) + "]"
    return json.dumps(v)  # floats nan/inf come out as NaN/Infinity literals


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


def check(raw: bytes, doc=None, **kw) -> None:
    """The properties every call must have; records its outcome for --hypothesis-show-statistics."""
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
