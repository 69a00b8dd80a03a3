"""Event parsing: every kind of bad input gets a precise reason; valid input is never refused."""
import json
import re
from pathlib import Path

import pytest

from state.event import MAX_TS_MS, REJECTION_CODES, Rejected, iso_ms, parse_event

NOW = 1_795_000_000_000  # a fixed "now" (2026-11) for the future-timestamp check
GOOD = {"event_id": "e1", "user_id": "u1", "type": "purchase", "ts": "2026-11-01T09:30:00Z",
        "item_id": "sku-1", "text": "三体 全集", "attrs": {"price": 89.0, "quantity": 1},
        "categories": ["文娱", "阅读", "科幻小说"]}


def parse(doc, **kw):
    raw = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_event(raw, now_ms=NOW, **kw)


def code_of(doc, **kw):
    with pytest.raises(Rejected) as info:
        parse(doc, **kw)
    return info.value.rejection


def test_valid_event_parses_with_iso_or_epoch_ms():
    e = parse(GOOD, topic_type="purchase")
    assert e.ts_ms == 1793525400000 and e.attrs.price == 89.0
    assert parse({**GOOD, "ts": 1793525400000}).ts_ms == 1793525400000
    assert parse({**GOOD, "attrs": {"price": 5}}).attrs.price == 5  # an int is a JSON number
    assert parse({k: v for k, v in GOOD.items() if k != "text"}).item_id == "sku-1"


@pytest.mark.parametrize("doc, code, field", [
    (b"{oops", "bad_json", None),
    (b"\xff\xfe{}", "bad_utf8", None),
    (b"[]", "wrong_type", None),
    ({**GOOD, "user_id": 42}, "wrong_type", "user_id"),
    ({**GOOD, "event_id": ""}, "out_of_range", "event_id"),
    ({**GOOD, "type": "click"}, "unknown_type", "type"),
    ({**GOOD, "ts": "last tuesday"}, "bad_timestamp", "ts"),
    ({**GOOD, "ts": "2026-11-01T09:30:00"}, "bad_timestamp", "ts"),
    ({**GOOD, "ts": True}, "wrong_type", "ts"),
    ({**GOOD, "attrs": {"rating": 6}}, "out_of_range", "attrs.rating"),
    ({**GOOD, "attrs": {"price": -1}}, "out_of_range", "attrs.price"),
    ({**GOOD, "attrs": {"dwell_ms": "10"}}, "wrong_type", "attrs.dwell_ms"),
    ({**GOOD, "categories": "文娱"}, "wrong_type", "categories"),
    ({k: v for k, v in GOOD.items() if k != "user_id"}, "missing_field", "user_id"),
    ({k: v for k, v in GOOD.items() if k not in ("text", "item_id")}, "no_content", None),
    (b"[" * 60_000, "bad_json", None),
    (json.dumps({**GOOD, "attrs": {"price": 1}}).replace(": 1}", ": Infinity}").encode(), "bad_json", "attrs.price"),
    ({**GOOD, "attrs": {"quantity": 10**400}}, "number_too_large", "attrs.quantity"),
    ({**GOOD, "ts": "0001-01-01T00:00:00+14:00"}, "bad_timestamp", "ts"),
    # Hostile records that once killed the ingest agent, and their neighbours.
    (b'{"event_id": "e1", "user_id": "u1", "type": "browse", "item_id": "i", "ts": 1%s}' % (b"0" * 399),
     "number_too_large", "ts"),
    (json.dumps(GOOD)[:-1].encode() + b', "attrs": {"dwell_ms": 9%s}}' % (b"9" * 4400), "number_too_large",
     "attrs.dwell_ms"),
    (json.dumps(GOOD)[:-1].encode() + b', "attrs": {"price": 1e400}}', "out_of_range", "attrs.price"),  # inf
    ({**GOOD, "text": "\ud83d hi"}, "bad_unicode", "text"),
    ({**GOOD, "categories": ["文娱", "\udc00"]}, "bad_unicode", "categories.1"),
    ({**GOOD, "attrs": {"\udfff": 1}}, "bad_unicode", "attrs.\\udfff"),
    (json.dumps({**GOOD, "attrs": {"price": 1}}).replace(": 1}", ": NaN}").encode(), "bad_json", "attrs.price"),
    (json.dumps(GOOD).replace('"ts": "2026-11-01T09:30:00Z"', '"ts": -Infinity').encode(), "bad_json", "ts"),
    ({**GOOD, "ts": MAX_TS_MS + 1}, "bad_timestamp", "ts"),
    ({**GOOD, "ts": 10**20 - 1}, "bad_timestamp", "ts"),
    ({**GOOD, "ts": "9999-12-31T23:59:59.999-00:01"}, "bad_timestamp", "ts"),  # year 10000 in UTC
])
def test_invalid_events_are_rejected_with_a_precise_reason(doc, code, field):
    r = code_of(doc)
    assert (r.code, r.field) == (code, field)
    assert r.message


def test_json_bounds_accept_what_they_should():
    assert parse({**GOOD, "attrs": {"quantity": 10}, "x": 10**19, "y": -10**19}).attrs.quantity == 10
    assert parse({**GOOD, "text": "\ud83d\ude00 pair"}).text == "😀 pair"  # a surrogate pair is one char
    # timestamp() * 1000 gave ...530 here (and for 0.6% of all milliseconds): the ms are now exact.
    assert parse({**GOOD, "ts": "2004-04-03T15:39:05.531Z"}).ts_ms == 1081006745531
    assert parse({**GOOD, "ts": 0}).ts_ms == 0
    assert parse({**GOOD, "ts": iso_ms(MAX_TS_MS)}, max_future_s=1e12).ts_ms == MAX_TS_MS
    assert iso_ms(MAX_TS_MS) == "9999-12-31T23:59:59.999Z"


def test_rejection_codes_list_every_code_used():
    """REJECTION_CODES is the one list, the ingest agent's codes included."""
    root = Path(__file__).parent.parent
    used = set()
    for path in [root / "state" / "event.py", *(root / "streams").glob("*.py")]:
        used |= set(re.findall(r'(?:Rejection|_Bad|_rejected)\(\s*"(\w+)"', path.read_text()))
    assert {"bad_unicode", "number_too_large", "key_mismatch"} <= used  # the pattern finds them
    assert used <= REJECTION_CODES


def test_topic_mismatch_future_timestamp_and_size_bound():
    assert code_of(GOOD, topic_type="browse").code == "type_mismatch"
    assert code_of({**GOOD, "ts": NOW + 3600_000}).code == "future_timestamp"
    assert parse({**GOOD, "ts": NOW + 60_000}).ts_ms  # small clock skew is fine
    big = {**GOOD, "text": "字" * 30_000}
    assert code_of(big, max_bytes=64 * 1024).code == "too_large"
