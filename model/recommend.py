"""Recommendations from a profile: catalogue items scored by the layers' probabilities of their categories.

An item's score blends its category's probability at each layer (surface weighs most: it is
what the user is into now); items the user already has in the window are skipped. The layer
that contributes most to the score is the item's `layer`, and the reason names its category.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from model.taxonomy import PATH_INDEX, Taxonomy
from state.items import ItemIndex

LAYER_WEIGHT = {"surface": 0.5, "middle": 0.3, "deep": 0.2}
_CANDIDATE_CATEGORIES = 5
_PER_CATEGORY = 50


def recommend(
    dists: dict[str, np.ndarray], taxonomy: Taxonomy, items: ItemIndex, seen: Iterable[str], k: int = 10
) -> list[dict]:
    seen = set(seen)
    surface_p = dists["surface"]
    top_surfaces = [taxonomy.labels["surface"][i] for i in np.argsort(-surface_p)[:_CANDIDATE_CATEGORIES]]
    scored = []
    for surface in top_surfaces:
        n = 0
        for item_id in items.in_category(surface):
            if item_id in seen:
                continue
            path = items.get(item_id).categories
            parts = {}
            for layer, pos in PATH_INDEX.items():
                idx = taxonomy.index[layer].get(path[pos]) if pos < len(path) else None
                parts[layer] = LAYER_WEIGHT[layer] * float(dists[layer][idx]) if idx is not None else 0.0
            layer = max(parts, key=parts.get)
            label = path[PATH_INDEX[layer]]
            scored.append((sum(parts.values()), item_id, layer, label))
            n += 1
            if n >= _PER_CATEGORY:
                break
    scored.sort(key=lambda s: (-s[0], s[1]))
    return [
        {"item_id": item_id, "score": round(score, 6), "layer": layer,
         "reason": f"{layer} interest in {label} (p={float(dists[layer][taxonomy.index[layer][label]]):.2f})"}
        for score, item_id, layer, label in scored[:k]
    ]
