"""Per-text results (text vectors, inferred categories) by text hash, least recently used out:
each distinct text goes through a model once."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Optional


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class EmbeddingCache:
    def __init__(self, max_entries: int = 200_000):
        self.max_entries = max_entries
        self._data: OrderedDict[bytes, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, text: str) -> Optional[Any]:
        key = text_key(text)
        vec = self._data.get(key)
        if vec is not None:
            self._data.move_to_end(key)
        return vec

    def put(self, text: str, vec: Any) -> None:
        self._data[text_key(text)] = vec
        if len(self._data) > self.max_entries:
            self._data.popitem(last=False)
