"""Ingest's record checks, without a broker."""
import json
from types import SimpleNamespace

import pytest

from model.documents import dlq_key
from state.event import Rejected, parse_event
from streams.ingest import check_key, check_partition, in_source_order
from streams.topics import partition_for


def _event(user_id):
    return parse_event(json.dumps({"event_id": "e1", "user_id": user_id, "type": "browse",
                                   "ts": "2026-11-01T00:00:00Z", "text": "x"}).encode())


def test_the_key_must_be_the_user_id_byte_for_byte():
    check_key(b"u1", _event("u1"))
    for key in (None, b"u2", b"\xff"):
        with pytest.raises(Rejected) as info:
            check_key(key, _event("\ufffd" if key == b"\xff" else "u1"))
        assert info.value.rejection.code == "key_mismatch"


def test_faust_bookkeeping_keys_are_no_user_ids_and_no_dlq_keys():
    with pytest.raises(Rejected) as info:
        _event("__faust\x00offset__")
    assert (info.value.rejection.code, info.value.rejection.field) == ("invalid_value", "user_id")
    assert dlq_key(b"__faust\x00offset__") == b"#__faust\x00offset__" and dlq_key(None) == b""


def test_a_record_off_its_murmur2_partition_is_refused():
    right = partition_for(b"u1", 4)
    check_partition(b"u1", right, 4)
    with pytest.raises(Rejected) as info:
        check_partition(b"u1", (right + 1) % 4, 4)
    assert info.value.rejection.code == "wrong_partition"


def test_refused_records_go_to_the_dlq_in_offset_order_per_partition_and_once_per_offset():
    def refused(topic, partition, offset, code="bad_json"):
        return SimpleNamespace(topic=topic, partition=partition, offset=offset), code

    batch = [refused("events.review", 0, 9), refused("events.browse", 1, 4), refused("events.browse", 0, 7),
             refused("events.browse", 1, 2), refused("events.browse", 1, 4, "copy"), refused("events.review", 0, 3)]
    once, copies = in_source_order(batch)
    assert [(m.topic, m.partition, m.offset) for m, _ in once] == [
        ("events.browse", 0, 7), ("events.browse", 1, 2), ("events.browse", 1, 4),
        ("events.review", 0, 3), ("events.review", 0, 9)]
    assert [(m.offset, code) for m, code in copies] == [(4, "copy")]
