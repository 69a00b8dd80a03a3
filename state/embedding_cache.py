"""Text vectors by text hash, least recently used out: each distinct text is encoded once."""
from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Optional

import numpy as np


def text_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


class EmbeddingCache:
    def __init__(self, max_entries: int = 200_000):
        self.max_entries = max_entries
        self._data: OrderedDict[bytes, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, text: str) -> Optional[np.ndarray]:
        key = text_key(text)
        vec = self._data.get(key)
        if vec is not None:
            self._data.move_to_end(key)
        return vec

    def put(self, text: str, vec: np.ndarray) -> None:
        self._data[text_key(text)] = vec
        if len(self._data) > self.max_entries:
            self._data.popitem(last=False)
