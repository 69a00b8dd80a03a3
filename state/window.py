"""A user's bounded event window: what the profile model reads.

Stored as one record per user (the Faust table value and its changelog record) in MessagePack,
encoded once. Bounded three ways, oldest out first: event count, age (relative to the newest
event), and encoded bytes of the entries. The record also remembers a 64-bit hash of each of the
most recently accepted event ids, beyond the window itself, so a replay after a crash
(at-least-once delivery) is recognised as a duplicate and not counted twice.

The ingest path reads, extends, bounds and writes a window once per batch; it never needs the
entries it did not add. So each entry is kept as its own encoded bytes, with its timestamp
beside it: updating a window of 128 entries moves bytes rather than building 128 objects, and
the entries are decoded only when something reads them (the profiler, the profile page).

A record over COMPRESS_ABOVE bytes is stored LZ4-compressed, behind the byte 0xC1, which
MessagePack never uses (nor JSON): a full window of 128 synthetic Chinese events goes from 15.3 KB
to 6.6 KB for ~25 µs more per read-modify-write (zlib level 1: 5.8 KB, but ~150-180 µs to
compress and decompress). Small windows, most of them, stay plain and cost nothing more.
"""
from __future__ import annotations

import bisect
import hashlib
import json
from array import array
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Union

import lz4.block
import msgspec

from state.event import EVENT_TYPES

FORMAT = 2  # the record's first field; format 1 was a JSON object, still read (see _decode_json)
COMPRESSED = b"\xc1"  # leads a compressed record: a byte no MessagePack or JSON record starts with
COMPRESS_ABOVE = 4096  # bytes of the plain record


@dataclass(frozen=True)
class WindowBounds:
    max_events: int = 128
    max_age_ms: int = 90 * 24 * 3600 * 1000
    max_bytes: int = 64 * 1024  # the entries, as encoded in the record
    # Ids remembered for dedupe (8 bytes each): two windows' worth, so a replay of events already
    # evicted by count is still caught; never fewer than the window's own events.
    max_seen_ids: int = 256


@dataclass(slots=True)
class Entry:
    """One event as a window keeps it: scrubbed, bounded text, the category path (deep -> surface)
    when known, and the behaviour attributes. Built by model/entry.py, which also derives `tokens`
    (jieba) from the text where a model reads it; tokens are not stored."""

    id: str
    ts: int  # epoch ms
    type: str  # browse | purchase | review
    item: Optional[str] = None
    text: str = ""
    tokens: list[str] = field(default_factory=list)
    cats: Optional[list[str]] = None
    attrs: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# An entry as stored (its ts is kept beside it): type as its index in EVENT_TYPES.
_Row = tuple[str, int, Optional[str], str, Optional[list[str]], dict[str, Union[int, float]]]
_TYPE_INDEX = {t: i for i, t in enumerate(EVENT_TYPES)}


class _Record(msgspec.Struct, array_like=True):
    format: int
    user_id: str
    partition: Optional[int]
    events_seen: int
    updated_ms: int
    seen: bytes  # 8-byte id hashes, oldest first
    ts: list[int]  # each entry's, in order
    entries: list[msgspec.Raw]  # each a _Row


_ENCODER = msgspec.msgpack.Encoder()
_RECORD = msgspec.msgpack.Decoder(_Record)
_ROW = msgspec.msgpack.Decoder(_Row)


def _row(entry: Entry) -> msgspec.Raw:
    return msgspec.Raw(_ENCODER.encode((entry.id, _TYPE_INDEX[entry.type], entry.item, entry.text, entry.cats,
                                        entry.attrs)))


def _entry(ts: int, raw: msgspec.Raw) -> Entry:
    id_, type_, item, text, cats, attrs = _ROW.decode(raw)
    return Entry(id=id_, ts=ts, type=EVENT_TYPES[type_], item=item, text=text, cats=cats, attrs=attrs)


def id_hash(event_id: str) -> int:
    """The id as remembered for dedupe: 64 bits of its BLAKE2b hash."""
    digest = hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class Window:
    """A user's entries in time order, with what dedupe and the profiler need beside them.

    `partition` is the partition the user's events arrive on (where the profile is written);
    `events_seen` counts every distinct event ever accepted, evicted ones included.
    """

    __slots__ = ("user_id", "partition", "events_seen", "updated_ms", "_seen", "_seen_set", "_ts", "_rows",
                 "_entries")

    def __init__(self, user_id: str, partition: Optional[int] = None, entries: Optional[list[Entry]] = None,
                 events_seen: int = 0, updated_ms: int = 0):
        self.user_id = user_id
        self.partition = partition
        self.events_seen = events_seen
        self.updated_ms = updated_ms
        self.entries = entries or []
        self._seen = [id_hash(e.id) for e in self.entries]
        self._seen_set = set(self._seen)

    @property
    def entries(self) -> list[Entry]:
        """The entries, decoded on first read."""
        if self._entries is None:
            self._entries = [_entry(ts, raw) for ts, raw in zip(self._ts, self._rows)]
        return self._entries

    @entries.setter
    def entries(self, entries: list[Entry]) -> None:
        self._entries = list(entries)
        self._ts = [e.ts for e in self._entries]
        self._rows: Optional[list[msgspec.Raw]] = None  # encoded when next needed

    def _encoded_rows(self) -> list[msgspec.Raw]:
        if self._rows is None:
            self._rows = [_row(e) for e in self._entries]
        return self._rows

    def __len__(self) -> int:
        return len(self._ts)

    def __contains__(self, event_id: str) -> bool:
        return id_hash(event_id) in self._seen_set

    def add(self, entry: Entry, now_ms: int, bounds: WindowBounds) -> bool:
        """Insert in timestamp order; False (and no change) when the id was seen before."""
        key = id_hash(entry.id)
        if key in self._seen_set:
            return False
        rows = self._encoded_rows()
        at = bisect.bisect_right(self._ts, entry.ts)
        self._ts.insert(at, entry.ts)
        rows.insert(at, _row(entry))
        if self._entries is not None:
            self._entries.insert(at, entry)
        self._seen.append(key)
        self._seen_set.add(key)
        excess = len(self._seen) - max(bounds.max_seen_ids, bounds.max_events)
        if excess > 0:
            self._seen_set.difference_update(self._seen[:excess])
            del self._seen[:excess]
        self.events_seen += 1
        self.updated_ms = now_ms
        return True

    def trim(self, bounds: WindowBounds) -> int:
        """Apply the bounds; returns how many entries were evicted. The newest entry always stays:
        one event is at most the ingest bound, far below a record."""
        before = len(self._ts)
        cut = max(0, before - bounds.max_events)
        if before:
            cut = max(cut, bisect.bisect_left(self._ts, self._ts[-1] - bounds.max_age_ms))
        rows = self._encoded_rows()
        total = sum(len(r) for r in rows[cut:])
        while total > bounds.max_bytes and cut < before - 1:
            total -= len(rows[cut])
            cut += 1
        if cut:
            del self._ts[:cut], rows[:cut]
            if self._entries is not None:
                del self._entries[:cut]
        return cut

    def encode(self) -> bytes:
        raw = _ENCODER.encode(_Record(FORMAT, self.user_id, self.partition, self.events_seen, self.updated_ms,
                                      array("Q", self._seen).tobytes(), self._ts, self._encoded_rows()))
        return COMPRESSED + lz4.block.compress(raw) if len(raw) > COMPRESS_ABOVE else raw

    @classmethod
    def decode(cls, raw: bytes) -> "Window":
        if raw[:1] == COMPRESSED:
            raw = lz4.block.decompress(raw[1:])
        if raw[:1] == b"{":
            return _decode_json(raw)
        record = _RECORD.decode(raw)
        if record.format != FORMAT:
            raise ValueError(f"window record format {record.format}, this worker reads {FORMAT}")
        window = cls.__new__(cls)
        window.user_id, window.partition = record.user_id, record.partition
        window.events_seen, window.updated_ms = record.events_seen, record.updated_ms
        window._ts, window._rows, window._entries = record.ts, record.entries, None
        window._seen = array("Q", record.seen).tolist()
        window._seen_set = set(window._seen)
        return window


def _decode_json(raw: bytes) -> Window:
    """A format-1 record (JSON, written before format 2): read, so an upgraded worker keeps its
    users' windows. Ids it remembered only as a hash of another kind are not carried over."""
    d = json.loads(raw)
    window = Window(d["user_id"], d.get("partition"),
                    [Entry(**{k: v for k, v in e.items() if k != "tokens"}) for e in d["entries"]],
                    d["events_seen"], d["updated_ms"])
    window._seen = [id_hash(i) for i in d["seen_ids"] if not i.startswith("#")]
    window._seen_set = set(window._seen) | {id_hash(e.id) for e in window.entries}
    return window
