"""A user's bounded event window: what the profile model reads.

Stored as one record per user (the Faust table value and its changelog record), encoded once
here as compact UTF-8 JSON. Bounded three ways, oldest out first: event count, age (relative to
the newest event), and encoded bytes of the entries. Event ids of the most recent accepted events
are kept beyond the window itself, so a replay after a crash (at-least-once delivery) is
recognised as a duplicate and not counted twice; each kept id is at most 66 ASCII bytes (longer
or non-ASCII ids are kept as a hash), so the whole record stays under Kafka's record limit.
"""
from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

MAX_PLAIN_ID_BYTES = 64


@dataclass(frozen=True)
class WindowBounds:
    max_events: int = 128
    max_age_ms: int = 90 * 24 * 3600 * 1000
    max_bytes: int = 64 * 1024  # the entries, as encoded in the record
    # Ids remembered for dedupe: several windows' worth, so a replay of events already
    # evicted by count is still caught. At most 66 bytes each.
    max_seen_ids: int = 1024


@dataclass(slots=True)
class Entry:
    """One event as a window keeps it: scrubbed, bounded text and its jieba tokens, the category
    path (deep -> surface) when known, and the behaviour attributes. Built by model/entry.py."""

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

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Entry":
        return cls(**d)


def dedupe_key(event_id: str) -> str:
    """The id as remembered for dedupe: itself when short ASCII, else a 128-bit hash of it."""
    # Plain only when JSON writes it byte for byte: printable ASCII, no quote or backslash.
    if (len(event_id) <= MAX_PLAIN_ID_BYTES and event_id.isascii() and event_id.isprintable()
            and not any(c in event_id for c in '"\\#')):
        return event_id
    return "#" + hashlib.blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _encode(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Window:
    """A user's entries in time order, with what dedupe and the profiler need beside them.

    `partition` is the partition the user's events arrive on (where the profile is written);
    `events_seen` counts every distinct event ever accepted, evicted ones included.
    """

    __slots__ = ("user_id", "partition", "entries", "seen_ids", "events_seen", "updated_ms", "_seen")

    def __init__(
        self,
        user_id: str,
        partition: Optional[int] = None,
        entries: Optional[list[Entry]] = None,
        seen_ids: Optional[list[str]] = None,
        events_seen: int = 0,
        updated_ms: int = 0,
    ):
        self.user_id = user_id
        self.partition = partition
        self.entries = entries or []
        self.seen_ids = seen_ids or []
        self.events_seen = events_seen
        self.updated_ms = updated_ms
        self._seen = set(self.seen_ids)

    def __contains__(self, event_id: str) -> bool:
        return dedupe_key(event_id) in self._seen

    def add(self, entry: Entry, now_ms: int, bounds: WindowBounds) -> bool:
        """Insert in timestamp order; False (and no change) when the id was seen before."""
        key = dedupe_key(entry.id)
        if key in self._seen:
            return False
        keys = [e.ts for e in self.entries]
        self.entries.insert(bisect.bisect_right(keys, entry.ts), entry)
        self.seen_ids.append(key)
        self._seen.add(key)
        if len(self.seen_ids) > bounds.max_seen_ids:
            for old in self.seen_ids[: len(self.seen_ids) - bounds.max_seen_ids]:
                self._seen.discard(old)
            del self.seen_ids[: len(self.seen_ids) - bounds.max_seen_ids]
        self.events_seen += 1
        self.updated_ms = now_ms
        return True

    def trim(self, bounds: WindowBounds) -> int:
        """Apply the bounds; returns how many entries were evicted."""
        before = len(self.entries)
        if len(self.entries) > bounds.max_events:
            del self.entries[: len(self.entries) - bounds.max_events]
        if self.entries:
            horizon = self.entries[-1].ts - bounds.max_age_ms
            cut = bisect.bisect_left([e.ts for e in self.entries], horizon)
            del self.entries[:cut]
        # Measured as encoded; per-entry sizes only when the window is over the bound. The
        # newest entry always stays: one event is at most the ingest bound, far below a record.
        docs = [e.to_json() for e in self.entries]
        if len(_encode(docs)) > bounds.max_bytes:
            sizes = [len(_encode(d)) + 1 for d in docs]
            total, cut = sum(sizes) + 1, 0
            while total > bounds.max_bytes and cut < len(self.entries) - 1:
                total -= sizes[cut]
                cut += 1
            del self.entries[:cut]
        return before - len(self.entries)

    def encode(self) -> bytes:
        return _encode({
            "user_id": self.user_id,
            "partition": self.partition,
            "events_seen": self.events_seen,
            "updated_ms": self.updated_ms,
            "seen_ids": self.seen_ids,
            "entries": [e.to_json() for e in self.entries],
        })

    @classmethod
    def decode(cls, raw: bytes) -> "Window":
        d = json.loads(raw)
        return cls(d["user_id"], d.get("partition"), [Entry.from_json(e) for e in d["entries"]], d["seen_ids"],
                   d["events_seen"], d["updated_ms"])
