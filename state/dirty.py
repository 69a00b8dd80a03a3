"""Users whose window changed since their last profile, per partition, with when they first changed."""
from __future__ import annotations

import time
from typing import Iterable


class DirtyUsers:
    def __init__(self) -> None:
        self._by_partition: dict[int, dict[str, float]] = {}

    def __len__(self) -> int:
        return sum(len(users) for users in self._by_partition.values())

    def mark(self, partition: int, user_id: str, at: float | None = None) -> None:
        """Keeps the first time: the event-to-profile delay counts from the oldest waiting event."""
        self._by_partition.setdefault(partition, {}).setdefault(user_id, time.monotonic() if at is None else at)

    def take(self, partitions: Iterable[int]) -> list[tuple[int, str, float]]:
        """Remove and return (partition, user, since) for the given partitions."""
        out = []
        for p in partitions:
            users = self._by_partition.pop(p, None)
            if users:
                out.extend((p, u, since) for u, since in users.items())
        return out

    def forget(self, keep: Iterable[int]) -> None:
        """Drop partitions this worker no longer owns: their new owner rescans them."""
        keep = set(keep)
        for p in [p for p in self._by_partition if p not in keep]:
            del self._by_partition[p]
