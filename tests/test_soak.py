"""The soak (`strata soak`): kill -9 cycles under a stream of valid and hostile records, then every
event checked. Its checks are pure functions, shown here to catch each kind of fault."""
from __future__ import annotations

import json

import pytest

from ops.soak import (
    COUNTS,
    check_dlq,
    check_windows,
    decode_window,
    hostile_records,
    run_soak,
    stale_profiles,
    version_regressions,
)
from streams.topics import partition_for


def _window(user, ids, events_seen):
    return {"user_id": user, "entries": [{"id": i, "ts": n} for n, i in enumerate(ids)], "events_seen": events_seen}


def test_check_windows_finds_lost_duplicated_and_miscounted_events():
    published = {"u1": ["a", "b", "c"], "u2": ["d"], "u3": ["e", "f"]}
    windows = {"u1": _window("u1", ["a", "a", "b"], 3), "u3": _window("u3", ["f", "e"], 2)}
    found = check_windows(published, windows)
    assert found["lost"] == [("u1", "c"), ("u2", "d")]
    assert found["duplicated"] == [("u1", "a", 2)]
    assert found["events_seen_mismatch"] == [("u2", None, 1)]
    windows["u2"] = _window("u2", ["d"], 2)
    assert check_windows(published, windows)["events_seen_mismatch"] == [("u2", 2, 1)]


def test_check_windows_passes_when_every_event_is_held_once():
    published = {"u1": ["a", "b"], "u2": ["c"]}
    windows = {"u1": _window("u1", ["b", "a"], 2), "u2": _window("u2", ["c"], 1), "other": _window("other", [], 0)}
    assert check_windows(published, windows) == {"lost": [], "duplicated": [], "events_seen_mismatch": []}


def test_stale_profiles_names_users_behind_or_without_a_profile():
    assert stale_profiles({"u1": 3, "u2": 1, "u3": 2}, {"u1": 3, "u2": 0}) == [("u2", 0, 1), ("u3", None, 2)]
    assert stale_profiles({"u1": 3}, {"u1": 3, "u9": 7}) == []


def test_version_regressions_reads_each_partition_in_offset_order():
    rows = [(0, 0, "u1", 1), (0, 1, "u1", 2), (0, 2, "u1", 2), (0, 3, "u1", 1), (0, 4, "u1", 3),
            (1, 0, "u2", 5), (1, 1, "u2", 6), (0, 5, "u3", 1)]
    bad = version_regressions(reversed(rows))  # arrival order must not matter
    assert bad == [("u1", 0, 2, 2, 2), ("u1", 0, 3, 2, 1)]
    assert version_regressions([r for r in rows if r[2] != "u1"]) == []


def _dlq(topic, partition, offset, code="bad_json") -> bytes:
    return json.dumps({"error": {"code": code, "message": "m", "field": None},
                       "source": {"topic": topic, "partition": partition, "offset": offset}, "raw": ""}).encode()


def test_check_dlq_finds_missing_duplicated_and_unexpected_records():
    malformed = {("events.browse", 0, 1): "bad_json", ("events.browse", 0, 2): "empty_value",
                 ("events.review", 1, 5): "nan", ("events.browse", 2, 7): "70kb"}
    values = [_dlq("events.browse", 0, 1), _dlq("events.browse", 0, 1),  # twice
              _dlq("events.browse", 0, 2, code=""),  # there, but without an error code
              _dlq("events.browse", 2, 7, code="too_large"),
              _dlq("events.browse", 3, 9, code="missing_field"),  # a valid event's offset
              b"not json", None]
    found = check_dlq(values, malformed)
    assert sorted(k for _, k in found["dlq_missing"]) == ["empty_value", "nan"]
    assert [d[:3] for d in found["dlq_duplicated"]] == [(("events.browse", 0, 1), "bad_json", 2)]
    assert len(found["dlq_unexpected"]) == 3
    assert found["dlq_unexpected"][0] == (("events.browse", 3, 9), "missing_field")
    assert found["codes"]["70kb"] == ["too_large"]
    clean = check_dlq([_dlq("events.browse", 0, 1)], {("events.browse", 0, 1): "bad_json"})
    assert not (clean["dlq_missing"] or clean["dlq_duplicated"] or clean["dlq_unexpected"])


def test_decode_window_reads_what_the_worker_writes():
    from state.window import Entry, Window

    w = Window("u1", entries=[Entry(id="e1", ts=1, type="browse")], events_seen=1)
    doc = decode_window(w.encode())
    assert [e["id"] for e in doc["entries"]] == ["e1"] and doc["events_seen"] == 1
    assert decode_window(None) is None


def test_hostile_records_are_unique_and_as_hostile_as_promised():
    records = hostile_records(2, 4, 1_700_000_000_000)
    kinds = [r[0] for r in records]
    assert len(kinds) == 2 * len(set(kinds))
    by_kind = {r[0]: r for r in records[: len(set(kinds))]}
    assert len(by_kind["70kb"][3]) > 64 * 1024 and len(by_kind["2mb"][3]) >= 2_000_000
    assert b"9" * 5000 in by_kind["5000_digit_int"][3] and b"NaN" in by_kind["nan"][3]
    assert b"\\ud83d hi" in by_kind["lone_surrogate"][3]
    assert by_kind["empty_value"][3] == b"" and by_kind["null_value"][3] is None
    _, _, key, _, partition = by_kind["wrong_partition"]
    assert partition is not None and partition != partition_for(key, 4) and 0 <= partition < 4
    assert all(r[4] is None for r in records if r[0] != "wrong_partition")
    with pytest.raises(ValueError):
        json.loads(by_kind["5000_digit_int"][3])  # past Python's int digit limit: not a JSONDecodeError


@pytest.mark.broker
@pytest.mark.timeout(900)
def test_soak_three_kill_cycles_two_workers_loses_and_doubles_nothing(tmp_path):
    summary = run_soak(cycles=3, workers=2, json_out=tmp_path / "soak.json")
    assert json.loads((tmp_path / "soak.json").read_text()) == summary
    assert summary["events"] == 6000 and summary["users"] == 500 and summary["malformed"] > 40
    failed = {k: summary[k] for k in COUNTS if summary[k]}
    assert not failed, f"{failed} in {json.dumps(summary)} (details on stderr)"
