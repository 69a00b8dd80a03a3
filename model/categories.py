"""An entry's categories as distributions per layer: what every count, baseline and model reads.

A level the event names is a one-hot row; a level it does not name (no categories, or a partial
path) is inferred from its text when a categorizer is at hand (model/categorizer.py), confined to
the subtree of the deepest level it does name, and marked as inferred. Counts over a horizon are
then soft: weights @ rows.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np

from model.taxonomy import LAYERS, PATH, PATH_INDEX, Taxonomy
from state.window import Entry

# Rows of P(label) per layer for the given entries: the categorizer's predict, or any stand-in.
Infer = Callable[[Sequence[Entry]], dict[str, np.ndarray]]
# The categorizer's rows keep their most likely labels only (model/categorizer.cached): the long
# tail is noise, and rows this sparse let the trainer hold a million entries' categories in
# memory (model/features.py).
MAX_LABELS = 8


def top_labels(rows: np.ndarray, k: int = MAX_LABELS) -> np.ndarray:
    """Each row [N, C] with all but its k largest entries zeroed, rescaled to its former mass."""
    if rows.shape[1] <= k:
        return rows
    out = np.zeros_like(rows)
    top = np.argpartition(-rows, k - 1, axis=1)[:, :k]
    kept = np.take_along_axis(rows, top, 1)
    scale = rows.sum(1, keepdims=True) / np.clip(kept.sum(1, keepdims=True), 1e-12, None)
    np.put_along_axis(out, top, kept * scale, 1)
    return out


def known_labels(entries: Sequence[Entry], taxonomy: Taxonomy) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(one-hot rows of the labels entries name, per layer; whether each row is named)."""
    rows, known = {}, {}
    for layer in LAYERS:
        pos, index = PATH_INDEX[layer], taxonomy.index[layer]
        r = np.zeros((len(entries), len(taxonomy.labels[layer])))
        k = np.zeros(len(entries), dtype=bool)
        for i, e in enumerate(entries):
            if e.cats and pos < len(e.cats) and e.cats[pos] in index:
                r[i, index[e.cats[pos]]] = 1.0
                k[i] = True
        rows[layer], known[layer] = r, k
    return rows, known


def descendants(taxonomy: Taxonomy) -> dict[tuple[str, str], np.ndarray]:
    """(upper, lower) -> [upper labels, lower labels], 1 where the lower label lies under the upper."""
    child = {}
    for upper, lower in zip(PATH, PATH[1:]):
        m = np.zeros((len(taxonomy.labels[upper]), len(taxonomy.labels[lower])))
        for j, label in enumerate(taxonomy.labels[lower]):
            m[taxonomy.index[upper][taxonomy.parent[label]], j] = 1.0
        child[upper, lower] = m
    return {**child, ("deep", "surface"): child["deep", "middle"] @ child["middle", "surface"]}


def distributions(entries: Sequence[Entry], taxonomy: Taxonomy, infer: Optional[Infer] = None
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(rows per layer [N, C], inferred per layer [N] bool). Without `infer`, unknown rows stay 0."""
    rows, known = known_labels(entries, taxonomy)
    # A level the path does not name (or names wrongly) above one it does is that label's ancestor.
    for upper, lower in reversed(list(zip(PATH, PATH[1:]))):
        for i in np.nonzero(known[lower] & ~known[upper])[0]:
            parent = taxonomy.parent[taxonomy.labels[lower][rows[lower][i].argmax()]]
            rows[upper][i] = 0.0
            rows[upper][i, taxonomy.index[upper][parent]] = 1.0
            known[upper][i] = True
    inferred = {layer: np.zeros(len(entries), dtype=bool) for layer in LAYERS}
    todo = [i for i in range(len(entries)) if not all(known[layer][i] for layer in LAYERS)]
    if infer is None or not todo:
        return rows, inferred
    guessed = infer([entries[i] for i in todo])
    under = descendants(taxonomy)
    for j, i in enumerate(todo):
        for lower in PATH:
            if known[lower][i]:
                continue
            row = guessed[lower][j]
            for upper in reversed(PATH[:PATH.index(lower)]):  # the deepest named level above confines it
                if known[upper][i]:
                    kept = row * under[upper, lower][rows[upper][i].argmax()]
                    row = kept / kept.sum() if kept.sum() > 0 else row
                    break
            rows[lower][i] = row
            inferred[lower][i] = True
    return rows, inferred


def soft_counts(rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted label counts over a horizon: `weights` [N] times rows [N, C]."""
    return weights @ rows if len(weights) else np.zeros(rows.shape[1])
