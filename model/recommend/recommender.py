"""The recommender as the worker and the evaluation run it: a catalogue in arrays, a batch of users
in, lists with reasons out. Matrix products and a partial sort per batch; Python loops only over
each user's few best candidates. No torch here: the baseline worker serves it without a next-item
model (model/recommend/sequential.py, loaded with a checkpoint)."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Sequence

import numpy as np

from model.categories import Infer
from model.recommend.catalogue import Catalogue, CatalogueItem
from model.recommend.ranking import (COLD_USER_EVENTS, INTEREST_ONLY, RankWeights, combine, exclude, explain, lifts,
                                     ranked)
from model.taxonomy import LAYERS, Taxonomy
from state.window import Entry

if TYPE_CHECKING:
    from model.recommend.sequential import ItemFeatures, SequentialModel

PER_CATEGORY = 4  # of a list of 10: at least three categories
CATALOGUE_REFRESH_S = 5.0


@dataclass
class RecommenderState:
    """What a checkpoint keeps beside the sequential model's weights (recommender.json)."""

    weights: RankWeights
    prior: dict[str, list[float]]  # per layer: the population's label distribution (for the lift)
    cold_weights: RankWeights = INTEREST_ONLY  # for users with at most COLD_USER_EVENTS events
    vocab: list[str] = field(default_factory=list)  # item ids of id-embedding rows 1..V
    counts: list[float] = field(default_factory=list)  # their training counts (popularity)
    sequential: Optional[dict] = None  # SequentialConfig as a dict; None: no next-item model
    per_category: int = PER_CATEGORY

    def to_dict(self) -> dict:
        return {**asdict(self), "weights": self.weights.to_dict(), "cold_weights": self.cold_weights.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "RecommenderState":
        return cls(**{**d, "weights": RankWeights(**d["weights"]), "cold_weights": RankWeights(**d["cold_weights"])})


class Recommender:
    def __init__(self, taxonomy: Taxonomy, state: RecommenderState, model: Optional["SequentialModel"] = None,
                 infer: Optional[Infer] = None, content: Optional[Callable[[list[str]], np.ndarray]] = None):
        self.taxonomy, self.state, self.model, self.infer, self.content = taxonomy, state, model, infer, content
        self.prior = {layer: np.asarray(state.prior[layer], dtype=np.float64) for layer in LAYERS}
        self.id_of = {item_id: i + 1 for i, item_id in enumerate(state.vocab)}
        self.count_of = dict(zip(state.vocab, state.counts))
        self.catalogue = Catalogue.build([], taxonomy)
        self.vectors = None  # [N, d] torch tensor of the next-item model's item vectors, when there is one
        self.log_popularity = np.zeros(0, np.float32)
        self.has_id = np.zeros(0, bool)
        self.synced = None  # the catalogue version last built
        self.built_at = 0.0  # and when (time.monotonic())

    @classmethod
    def interest_only(cls, taxonomy: Taxonomy, prior: Optional[dict[str, np.ndarray]] = None,
                      infer: Optional[Infer] = None) -> "Recommender":
        """Without a trained next-item model: the layers' lift alone (popularity unknown)."""
        prior = prior or {layer: np.full(len(taxonomy.labels[layer]), 1.0 / len(taxonomy.labels[layer]))
                          for layer in LAYERS}
        weights = RankWeights(sequential=0.0, surface=1.0, middle=1.0, deep=1.0, popularity=0.0)
        return cls(taxonomy, RecommenderState(weights, {k: list(map(float, v)) for k, v in prior.items()}), infer=infer)

    def set_catalogue(self, items: Sequence[CatalogueItem], version=None) -> None:
        """Rebuild the arrays for this catalogue (labels, popularity, item vectors)."""
        self.use(Catalogue.build(items, self.taxonomy, self.infer))
        self.synced = version

    def use(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        ids = catalogue.ids
        self.has_id = np.array([i in self.id_of for i in ids], dtype=bool)
        self.log_popularity = np.log1p(np.array([self.count_of.get(i, 0.0) for i in ids], dtype=np.float32))
        self.vectors = self.model.catalogue_vectors(self.features()) if self.model is not None and ids else None

    def sync(self, items: Callable[[], Iterable[CatalogueItem]], version, now: Optional[float] = None) -> None:
        """Rebuild from `items()` when the catalogue changed (`version` differs from the last build),
        at most every CATALOGUE_REFRESH_S: a rebuild is O(items), and a catalogue that changes all
        the time must not cost every batch that much."""
        now = time.monotonic() if now is None else now
        if version != self.synced and (self.synced is None or now - self.built_at >= CATALOGUE_REFRESH_S):
            self.set_catalogue(list(items()), version)
            self.built_at = now

    def features(self) -> "ItemFeatures":
        from model.recommend.sequential import ItemFeatures

        c = self.catalogue
        content = self.content(c.texts) if self.content is not None else np.zeros((len(c), self.model.config.content_dim))
        return ItemFeatures.of(np.array([self.id_of.get(i, 0) for i in c.ids]), c.label["surface"], c.sure["surface"],
                               content)

    def sequential_scores(self, histories: Sequence[np.ndarray]) -> Optional[np.ndarray]:
        """[B, N] next-item scores after each history (catalogue rows); None without a next-item model."""
        if self.model is None or self.vectors is None:
            return None
        return self.model.scores(self.vectors, histories)

    def scores(self, histories: Sequence[np.ndarray], dists: Sequence[dict[str, np.ndarray]], cold: np.ndarray
               ) -> tuple[np.ndarray, Optional[np.ndarray], dict[str, np.ndarray]]:
        """(combined [B, N], next-item [B, N] or None, lift per layer [B, labels])."""
        seq = self.sequential_scores(histories)
        lift = lifts(dists, self.prior)
        return (combine(self.state.weights, seq, lift, self.catalogue, self.log_popularity, cold, self.state.cold_weights),
                seq, lift)

    def recommend(self, windows: Sequence[Sequence[Entry]], dists: Sequence[dict[str, np.ndarray]], k: int = 10
                  ) -> list[list[dict]]:
        """Per window: up to k items, best first, none the user already has, with layer, reason, source."""
        if not len(self.catalogue) or not windows:
            return [[] for _ in windows]
        histories = [self.catalogue.rows_of(e.item for e in w if e.item) for w in windows]
        cold = np.array([len(w) <= COLD_USER_EVENTS for w in windows])
        scores, seq, lift = self.scores(histories, dists, cold)
        exclude(scores, histories)
        lists = ranked(scores, k, self.catalogue.label["surface"], self.catalogue.sure["surface"], self.state.per_category)
        out = []
        for u, rows in enumerate(lists):
            weights = self.state.cold_weights if cold[u] else self.state.weights
            out.append([{"item_id": self.catalogue.ids[r], "score": float(scores[u, r]),
                         **explain(r, u, weights, seq, lift, self.log_popularity, self.has_id, self.catalogue,
                                   self.taxonomy)} for r in rows])
        return out
