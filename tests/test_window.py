import json

from state.window import COMPRESS_ABOVE, COMPRESSED, Entry, Window, WindowBounds

DAY = 86400_000


def entry(i, ts, text="x", **fields):
    return Entry(**{"id": f"e{i}", "ts": ts, "type": "browse", "text": text, **fields})


def test_duplicates_are_skipped_and_entries_kept_in_time_order():
    w, b = Window("u"), WindowBounds()
    assert w.add(entry(1, 300), 0, b) and w.add(entry(2, 100), 0, b) and w.add(entry(3, 200), 0, b)
    assert not w.add(entry(2, 100), 0, b)
    assert [e.id for e in w.entries] == ["e2", "e3", "e1"] and w.events_seen == 3


def test_bounds_by_count_age_and_bytes():
    b = WindowBounds(max_events=5, max_age_ms=10 * DAY, max_bytes=10_000)
    w = Window("u")
    for i in range(8):
        w.add(entry(i, i * DAY), 0, b)
    assert w.trim(b) == 3 and [e.id for e in w.entries] == ["e3", "e4", "e5", "e6", "e7"]
    w.add(entry(99, 30 * DAY), 0, b)
    w.trim(b)
    assert [e.id for e in w.entries] == ["e99"]  # the others are older than 10 days
    small = WindowBounds(max_bytes=600)
    w = Window("u")
    for i in range(10):
        w.add(entry(i, i, text="字" * 50), 0, small)
    w.trim(small)
    assert 1 <= len(w.entries) < 10 and w.entries[-1].id == "e9"


def test_evicted_ids_are_still_recognised_and_round_trip():
    b = WindowBounds(max_events=2, max_seen_ids=4)
    w = Window("u")
    for i in range(4):
        w.add(entry(i, i), 0, b)
        w.trim(b)
    assert len(w.entries) == 2 and not w.add(entry(0, 0), 0, b)  # replay of an evicted event
    w2 = Window.decode(w.encode())
    assert "e1" in w2 and w2.events_seen == 4
    w2.add(entry(4, 4), 0, b)
    assert "e0" not in w2  # the id memory is bounded too


def test_ids_of_any_length_are_remembered_as_hashes_across_encoding():
    b = WindowBounds()
    w = Window("u")
    long_id, wide_id = "x" * 128, "事件" * 40
    assert w.add(entry(0, 0, id=long_id), 0, b) and w.add(entry(1, 1, id=wide_id), 0, b)
    assert long_id in w and wide_id in w and "x" * 127 not in w
    w2 = Window.decode(w.encode())
    assert not w2.add(entry(2, 2, id=wide_id), 0, b) and long_id in w2  # still duplicates


def test_every_event_in_a_window_larger_than_the_id_memory_is_still_a_duplicate():
    b = WindowBounds(max_events=600, max_seen_ids=256)
    w = Window("u")
    for i in range(600):
        w.add(entry(i, i), 0, b)
    w = Window.decode(w.encode())
    assert not any(w.add(entry(i, i), 0, b) for i in range(600)) and len(w) == 600


def test_entries_round_trip_exactly_and_decode_only_when_read():
    b = WindowBounds()
    w = Window("u", 2)
    kept = [entry(1, 10, item="sku-1", cats=["深", "中", "浅"], attrs={"price": 9.5, "quantity": 2}),
            Entry(id="e2", ts=5, type="review", text="", attrs={"rating": 5}),
            entry(3, 7, type="purchase")]
    for e in kept:
        w.add(e, 99, b)
    back = Window.decode(w.encode())
    assert back._entries is None  # nothing decoded yet
    assert back.entries == sorted(kept, key=lambda e: e.ts)
    assert isinstance(back.entries[0].attrs["rating"], int) and back.updated_ms == 99 and back.partition == 2
    back.add(entry(4, 6), 100, b)  # extended without decoding the others
    assert [e.id for e in Window.decode(back.encode()).entries] == ["e2", "e4", "e3", "e1"]


def test_a_window_written_as_json_by_the_previous_format_is_still_read():
    old = {"user_id": "u", "partition": 1, "events_seen": 3, "updated_ms": 5, "seen_ids": ["e0", "e1", "#" + "0" * 32],
           "entries": [{"id": "e1", "ts": 1, "type": "browse", "item": None, "text": "看书", "tokens": ["看书"],
                        "cats": None, "attrs": {}}]}
    w = Window.decode(json.dumps(old).encode())
    assert [e.text for e in w.entries] == ["看书"] and w.events_seen == 3 and w.partition == 1
    assert "e0" in w and "e1" in w and not w.add(entry(0, 0), 0, WindowBounds())


def test_the_encoded_record_stays_bounded_with_hostile_ids_and_text():
    """Entries bounded as encoded, ids bounded by the hash: the record fits a 1 MB Kafka record."""
    b = WindowBounds(max_events=10_000, max_bytes=900 * 1024)
    w = Window("u" * 128, 3)
    for i in range(5000):
        w.add(entry(i, i, text="字" * 512, id=f"{i}-" + ("標識" if i % 2 else "\x01") * 60, tokens=["字" * 512]), 0, b)
        if i % 500 == 0:
            w.trim(b)
    w.trim(b)
    assert len(w.encode()) < 1_000_000 and w.events_seen == 5000
    assert len(Window.decode(w.encode()).entries) == len(w.entries) and w.partition == 3


def test_a_large_record_is_stored_compressed_and_a_small_one_plain(monkeypatch):
    b = WindowBounds()
    small, full = Window("u", 0), Window("v", 1)
    small.add(entry(0, 1, text="短"), 1, b)
    for i in range(128):  # repetitive, as a user's texts and categories are
        full.add(entry(i, i, text=f"第{i % 7}部科幻小说 三体 刘慈欣", cats=["阅读", "小说", "科幻小说"],
                       attrs={"dwell_ms": 1000 * i}), i, b)
    stored = full.encode()
    monkeypatch.setattr("state.window.COMPRESS_ABOVE", 1 << 30)
    plain = full.encode()
    monkeypatch.undo()
    assert len(plain) > COMPRESS_ABOVE and plain[:1] != COMPRESSED
    assert small.encode()[:1] != COMPRESSED and stored[:1] == COMPRESSED and len(stored) < len(plain) / 2
    back = Window.decode(stored)
    assert back.entries == full.entries and back.events_seen == 128 and all(f"e{i}" in back for i in range(128))
