"""Ranking the catalogue for a batch of users: next-item scores, layered interest, popularity.

score(u, i) = w_seq * next-item score
            + sum over layers of w_layer * sure(i, layer) * log(p_layer(u, label(i)) / prior(label(i)))
            + w_pop * log(1 + training count of i)

The interest term is a lift: how much more the user's layer likes the item's label than the
population does, so it does not count popularity twice. Weights are fitted on validation items
(model/recommend/train.py). The list then takes the best items with at most `per_category` of
one surface label, so that it is never one category deep, and each item names the part of its
score that put it there.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np

from model.recommend.catalogue import Catalogue
from model.taxonomy import LAYERS, Taxonomy

REASON_PREFIX = {"surface": "lately", "middle": "these weeks", "deep": "long-term"}
# A user with this few events has no sequence to speak of: popular items within what they showed.
COLD_USER_EVENTS = 2
CANDIDATE_DEPTH = 8


@dataclass(frozen=True)
class RankWeights:
    sequential: float = 1.0
    surface: float = 0.0
    middle: float = 0.0
    deep: float = 0.0
    popularity: float = 0.0

    def layer(self, name: str) -> float:
        return getattr(self, name)

    def to_dict(self) -> dict:
        return asdict(self)


# Without a sequence (the counting baseline; cold users until a checkpoint says better): the
# layers and popularity alone.
INTEREST_ONLY = RankWeights(sequential=0.0, surface=1.0, middle=1.0, deep=1.0, popularity=1.0)


def lifts(dists: Sequence[dict[str, np.ndarray]], prior: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per layer [B, labels]: log(p_layer(u, label) / prior(label)), how much more each user's layer
    likes each label than the population does. Kept per label, not per item: [B, N] arrays are
    gathered from it by `interest` only for the users being scored."""
    out = {}
    for layer in LAYERS:
        p = np.stack([d[layer] for d in dists]) if dists else np.zeros((0, len(prior[layer])))
        out[layer] = np.log(np.clip(p, 1e-9, None)) - np.log(np.clip(prior[layer], 1e-9, None))
    return out


def interest(lift: np.ndarray, labels: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """One layer's interest term (float32): the users' lift ([..., labels]) for each item's label
    (`labels`), scaled by how sure that label is (`sure`); [B, N] for [B, labels] and [N] items."""
    return (lift[..., labels] * sure).astype(np.float32)


def combine(weights: RankWeights, sequential: Optional[np.ndarray], lift: dict[str, np.ndarray], catalogue: Catalogue,
            log_popularity: np.ndarray, cold: Optional[np.ndarray] = None,
            cold_weights: RankWeights = INTEREST_ONLY) -> np.ndarray:
    """[B, N] scores (float32) from next-item scores [B, N] and the layers' `lift` (per label); rows of `cold`
    users (a [B] mask) are scored with `cold_weights`."""
    def score(w: RankWeights, rows) -> np.ndarray:
        out = np.repeat((w.popularity * log_popularity.astype(np.float32))[None, :], len(rows), 0)
        if sequential is not None and w.sequential:
            out += w.sequential * sequential[rows]
        for layer in LAYERS:
            if w.layer(layer):
                out += w.layer(layer) * interest(lift[layer][rows], catalogue.label[layer], catalogue.sure[layer])
        return out

    users = np.arange(len(lift[LAYERS[0]]))
    if cold is None or not cold.any():
        return score(weights, users)
    out = score(weights, users)
    out[cold] = score(cold_weights, users[cold])
    return out


def exclude(scores: np.ndarray, consumed: Sequence[np.ndarray]) -> None:
    """Consumed items (catalogue rows per user) can never be recommended."""
    for u, rows in enumerate(consumed):
        scores[u, rows] = -np.inf


def ranked(scores: np.ndarray, k: int, labels: np.ndarray, sure: np.ndarray, per_category: int) -> list[np.ndarray]:
    """Per user, up to k rows best first, at most `per_category` of one (known) surface label;
    excluded (-inf) rows never. Only the best CANDIDATE_DEPTH * k rows are looked at, not the catalogue;
    if they hold too few categories the list is filled with the best of them regardless."""
    n = scores.shape[1]
    depth = min(n, CANDIDATE_DEPTH * k)
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth] if depth < n else np.tile(np.arange(n), (len(scores), 1))
    out = []
    for u in range(len(scores)):
        cand = top[u][np.argsort(-scores[u, top[u]], kind="stable")]
        cand = cand[np.isfinite(scores[u, cand])]
        picked, taken = [], {}
        for row in cand:
            cat = int(labels[row]) if sure[row] > 0 else -1 - int(row)  # unlabelled items stand alone
            if taken.get(cat, 0) >= per_category:
                continue
            taken[cat] = taken.get(cat, 0) + 1
            picked.append(row)
            if len(picked) == k:
                break
        if len(picked) < k:  # too few categories: fill with the best of the rest
            chosen = set(picked)
            picked += [r for r in cand if r not in chosen][:k - len(picked)]
        out.append(np.array(picked, dtype=np.int64))
    return out


def explain(row: int, u: int, weights: RankWeights, sequential: Optional[np.ndarray], lift: dict[str, np.ndarray],
            log_popularity: np.ndarray, has_id: np.ndarray, catalogue: Catalogue, taxonomy: Taxonomy) -> dict:
    """The layer, reason and source of one recommended item: the score part that lifts it most
    above the catalogue's average."""
    part = {name: weights.layer(name) * interest(lift[name][u], catalogue.label[name][row], catalogue.sure[name][row])
            for name in LAYERS}
    layer = max(LAYERS, key=part.get)
    label = taxonomy.labels[layer][catalogue.label[layer][row]] if catalogue.sure[layer][row] > 0 else None
    parts = {"interest": sum(part.values()),
             "popular": weights.popularity * (log_popularity[row] - log_popularity.mean())}
    if sequential is not None and weights.sequential:
        parts["sequential"] = weights.sequential * (sequential[u, row] - sequential[u].mean())
    source = max(parts, key=parts.get)
    if source == "sequential" and not has_id[row]:
        source = "content"  # new since training: its text and category carried it
    if source == "interest" and label is not None:
        reason = f"{REASON_PREFIX[layer]}: {label}"
    elif source == "popular":
        reason = f"popular in {label}" if label is not None and parts["interest"] > 0 else "popular"
    elif source == "content":
        reason = f"new, like what you read{f' ({label})' if label else ''}"
    else:
        reason = "follows your recent items"
    return {"layer": layer, "reason": reason, "source": source}
