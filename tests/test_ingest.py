"""The ingest agent's record checks, without a broker."""
import json

import pytest

from model.documents import dlq_key
from state.event import Rejected, parse_event
from streams.ingest import check_key, check_partition
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
