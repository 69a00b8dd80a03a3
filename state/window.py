"""A user's bounded event window: what the profile model reads.

Stored as one JSON document per user (the Faust table value). Bounded three ways, oldest out
first: event count, age (relative to the newest event), and encoded bytes. Event ids of the
most recent accepted events are kept beyond the window itself, so a replay after a crash
(at-least-once delivery) is recognised as a duplicate and not counted twice.
"""
from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class WindowBounds:
    max_events: int = 128
    max_age_ms: int = 90 * 24 * 3600 * 1000
    max_bytes: int = 64 * 1024
    # Ids remembered for dedupe: several windows' worth, so a replay of events already
    # evicted by count is still caught.
    max_seen_ids: int = 1024


class Window:
    """Entries are dicts: id, ts (epoch ms), type, item, text, tokens, cats, attrs."""

    __slots__ = ("user_id", "entries", "seen_ids", "events_seen", "updated_ms", "_seen")

    def __init__(
        self,
        user_id: str,
        entries: Optional[list[dict]] = None,
        seen_ids: Optional[list[str]] = None,
        events_seen: int = 0,
        updated_ms: int = 0,
    ):
        self.user_id = user_id
        self.entries = entries or []
        self.seen_ids = seen_ids or []
        self.events_seen = events_seen
        self.updated_ms = updated_ms
        self._seen = set(self.seen_ids)

    def __contains__(self, event_id: str) -> bool:
        return event_id in self._seen

    def add(self, entry: dict, now_ms: int, bounds: WindowBounds) -> bool:
        """Insert in timestamp order; False (and no change) when the id was seen before."""
        event_id = entry["id"]
        if event_id in self._seen:
            return False
        keys = [e["ts"] for e in self.entries]
        self.entries.insert(bisect.bisect_right(keys, entry["ts"]), entry)
        self.seen_ids.append(event_id)
        self._seen.add(event_id)
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
            horizon = self.entries[-1]["ts"] - bounds.max_age_ms
            cut = bisect.bisect_left([e["ts"] for e in self.entries], horizon)
            del self.entries[:cut]
        # Measured as UTF-8 JSON; per-entry sizes only when the window is over the bound.
        if len(json.dumps(self.entries, ensure_ascii=False).encode()) > bounds.max_bytes:
            sizes = [len(json.dumps(e, ensure_ascii=False).encode()) + 1 for e in self.entries]
            total, cut = sum(sizes), 0
            while total > bounds.max_bytes and cut < len(self.entries) - 1:
                total -= sizes[cut]
                cut += 1
            del self.entries[:cut]
        return before - len(self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "entries": self.entries,
            "seen_ids": self.seen_ids,
            "events_seen": self.events_seen,
            "updated_ms": self.updated_ms,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Window":
        return cls(d["user_id"], d["entries"], d["seen_ids"], d["events_seen"], d["updated_ms"])
