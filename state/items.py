"""The item catalogue as the recommender reads it: items by id and by surface category."""
from __future__ import annotations

from typing import Iterable, Optional

from state.event import Item


class ItemIndex:
    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.by_category: dict[str, dict[str, None]] = {}  # surface label -> ordered set of ids
        self.version = 0  # bumped by every change: readers rebuild what they derive from it

    def __len__(self) -> int:
        return len(self.items)

    def get(self, item_id: str) -> Optional[Item]:
        return self.items.get(item_id)

    def put(self, item: Item) -> None:
        old = self.items.get(item.item_id)
        if old is not None and old.categories:
            self.by_category.get(old.categories[-1], {}).pop(item.item_id, None)
        self.items[item.item_id] = item
        self.version += 1
        if item.categories:
            self.by_category.setdefault(item.categories[-1], {})[item.item_id] = None

    def remove(self, item_id: str) -> None:
        old = self.items.pop(item_id, None)
        self.version += 1
        if old is not None and old.categories:
            self.by_category.get(old.categories[-1], {}).pop(item_id, None)

    def in_category(self, surface: str) -> Iterable[str]:
        return self.by_category.get(surface, {}).keys()
