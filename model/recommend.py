"""Recommendations from a profile: catalogue items scored by the layers' probabilities of their categories.

A category's score blends its probability at each layer along its taxonomy path (surface
weighs most: it is what the user is into now). Items of the best categories come in catalogue
order; items the user already has in the window are skipped. The layer that contributes most
is the item's `layer`, and the reason names that layer's category.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from model.taxonomy import PATH_INDEX, Taxonomy
from state.items import ItemIndex

LAYER_WEIGHT = {"surface": 0.5, "middle": 0.3, "deep": 0.2}
_CANDIDATE_CATEGORIES = 5


def recommend(
    dists: dict[str, np.ndarray], taxonomy: Taxonomy, items: ItemIndex, seen: Iterable[str], k: int = 10
) -> list[dict]:
    seen = set(seen)
    out = []
    for i in np.argsort(-dists["surface"], kind="stable")[:_CANDIDATE_CATEGORIES]:
        surface = taxonomy.labels["surface"][i]
        path = taxonomy.path(surface)
        parts = {layer: LAYER_WEIGHT[layer] * float(dists[layer][taxonomy.index[layer][path[pos]]])
                 for layer, pos in PATH_INDEX.items()}
        layer = max(parts, key=parts.get)
        label = path[PATH_INDEX[layer]]
        reason = f"{layer} interest in {label} (p={float(dists[layer][taxonomy.index[layer][label]]):.2f})"
        score = round(sum(parts.values()), 6)
        # list(): one atomic copy, as the event loop may add items while the model thread reads
        fresh = (item_id for item_id in list(items.in_category(surface)) if item_id not in seen)
        for item_id, _ in zip(fresh, range(k)):
            out.append({"item_id": item_id, "score": score, "layer": layer, "reason": reason, "source": "interest"})
    out.sort(key=lambda r: -r["score"])  # stable: catalogue order within a category
    return out[:k]
