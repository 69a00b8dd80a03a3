"""The catalogue as the recommender ranks it: every item a row, with what scoring needs in arrays.

Per item and layer: its label (the one its category path names, or the categorizer's likeliest
from its title when the path stops short or is missing) and how sure that label is (1 when
named, the categorizer's probability when inferred, 0 when neither is known). An item with no
categories is still a row: its text carries it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

import numpy as np

from model.categories import Infer, distributions
from model.taxonomy import LAYERS, Taxonomy
from model.text import segment
from state.window import Entry


BUILD_CHUNK = 4096


@dataclass(frozen=True)
class CatalogueItem:
    item_id: str
    text: str
    categories: tuple[str, ...]  # deep -> surface, possibly partial or empty


@dataclass
class Catalogue:
    ids: list[str]
    texts: list[str]
    label: dict[str, np.ndarray]  # layer -> [N] label index (0 where unknown: see `sure`)
    sure: dict[str, np.ndarray]  # layer -> [N] float32, the label's probability (0: unknown)
    index: dict[str, int] = field(init=False)  # item_id -> row

    def __post_init__(self) -> None:
        self.index = {item_id: i for i, item_id in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, items: Sequence[CatalogueItem], taxonomy: Taxonomy, infer: Optional[Infer] = None) -> "Catalogue":
        """One row per item id (a later duplicate replaces an earlier one, as in the items topic)."""
        items = list({it.item_id: it for it in items}.values())
        label = {layer: np.zeros(len(items), np.int64) for layer in LAYERS}
        sure = {layer: np.zeros(len(items), np.float32) for layer in LAYERS}
        for start in range(0, len(items), BUILD_CHUNK):  # dense label rows, a chunk at a time
            chunk = items[start:start + BUILD_CHUNK]
            entries = [Entry(id=it.item_id, ts=0, type="browse", item=it.item_id, text=it.text,
                             tokens=list(segment(it.text)) if it.text else [], cats=list(it.categories) or None)
                       for it in chunk]
            rows, _ = distributions(entries, taxonomy, infer)
            for layer in LAYERS:
                label[layer][start:start + len(chunk)] = rows[layer].argmax(1)
                sure[layer][start:start + len(chunk)] = rows[layer].max(1)
        return cls([it.item_id for it in items], [it.text for it in items], label, sure)

    def rows_of(self, item_ids: Iterable[str]) -> np.ndarray:
        """Catalogue rows of the given ids that it holds, in order."""
        return np.array([self.index[i] for i in item_ids if i in self.index], dtype=np.int64)
