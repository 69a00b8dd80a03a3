"""The recommender as the worker and the evaluation run it: a catalogue in arrays, a batch of users
in, lists with reasons out. Matrix products and a partial sort per batch; Python loops only over
each user's few best candidates."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable, Optional, Sequence

import numpy as np
import torch

from model.categories import Infer
from model.recommend.catalogue import Catalogue, CatalogueItem
from model.recommend.ranking import (COLD_USER_EVENTS, INTEREST_ONLY, RankWeights, combine, exclude, explain,
                                     interest, ranked)
from model.recommend.sequential import ItemFeatures, SequentialConfig, SequentialModel
from model.taxonomy import LAYERS, Taxonomy
from state.window import Entry

PER_CATEGORY = 4  # of a list of 10: at least three categories


@dataclass
class RecommenderState:
    """What a checkpoint keeps beside the sequential model's weights (recommender.json)."""

    weights: RankWeights
    prior: dict[str, list[float]]  # per layer: the population's label distribution (for the lift)
    vocab: list[str] = field(default_factory=list)  # item ids of id-embedding rows 1..V
    counts: list[float] = field(default_factory=list)  # their training counts (popularity)
    sequential: Optional[dict] = None  # SequentialConfig as a dict; None: no next-item model
    per_category: int = PER_CATEGORY

    def to_dict(self) -> dict:
        return {**asdict(self), "weights": self.weights.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "RecommenderState":
        return cls(**{**d, "weights": RankWeights(**d["weights"])})


class Recommender:
    def __init__(self, taxonomy: Taxonomy, state: RecommenderState, model: Optional[SequentialModel] = None,
                 infer: Optional[Infer] = None, content: Optional[Callable[[list[str]], np.ndarray]] = None,
                 device: torch.device = torch.device("cpu")):
        self.taxonomy, self.state, self.model, self.infer, self.content, self.device = (
            taxonomy, state, model, infer, content, device)
        self.prior = {layer: np.asarray(state.prior[layer], dtype=np.float64) for layer in LAYERS}
        self.id_of = {item_id: i + 1 for i, item_id in enumerate(state.vocab)}
        self.count_of = dict(zip(state.vocab, state.counts))
        self.catalogue = Catalogue.build([], taxonomy)
        self.vectors: Optional[torch.Tensor] = None
        self.log_popularity = np.zeros(0, np.float32)
        self.has_id = np.zeros(0, bool)
        self.synced = None  # the catalogue version last built

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
        self.vectors = self.item_vectors(self.features()) if self.model is not None and ids else None

    def sync(self, items: Iterable[CatalogueItem], version) -> None:
        """Rebuild when the catalogue changed (`version` differs from the last build)."""
        if version != self.synced:
            self.set_catalogue(list(items), version)

    def features(self) -> ItemFeatures:
        c = self.catalogue
        content = self.content(c.texts) if self.content is not None else np.zeros((len(c), self.model.config.content_dim))
        norms = np.linalg.norm(content, axis=1, keepdims=True)
        return ItemFeatures(torch.tensor([self.id_of.get(i, 0) for i in c.ids], dtype=torch.long),
                            torch.from_numpy(c.label["surface"]), torch.from_numpy(c.sure["surface"]).float(),
                            torch.from_numpy(content / np.clip(norms, 1e-9, None)).float())

    @torch.no_grad()
    def item_vectors(self, features: ItemFeatures) -> torch.Tensor:
        self.model.eval()
        return self.model.item_vectors(features.to(self.device))

    @torch.no_grad()
    def sequential_scores(self, histories: Sequence[np.ndarray], chunk: int = 512) -> Optional[np.ndarray]:
        """[B, N] next-item scores after each history (catalogue rows); 0 for an empty history."""
        if self.model is None or self.vectors is None:
            return None
        self.model.eval()
        max_len = self.model.config.max_len
        out = np.zeros((len(histories), len(self.catalogue)), dtype=np.float32)
        for start in range(0, len(histories), chunk):
            part = [h[-max_len:] for h in histories[start:start + chunk]]
            has = [i for i, h in enumerate(part) if len(h)]
            if not has:
                continue
            seqs = torch.full((len(has), max(len(part[i]) for i in has)), -1, dtype=torch.long)
            for j, i in enumerate(has):
                seqs[j, :len(part[i])] = torch.as_tensor(part[i])
            users = self.model.user_vectors(self.vectors, seqs.to(self.device))
            out[np.asarray(has) + start] = (users @ self.vectors.T).float().cpu().numpy()
        return out

    def scores(self, histories: Sequence[np.ndarray], dists: Sequence[dict[str, np.ndarray]], cold: np.ndarray,
               weights: Optional[RankWeights] = None) -> tuple[np.ndarray, Optional[np.ndarray], dict[str, np.ndarray]]:
        """(combined [B, N], next-item [B, N] or None, interest per layer [B, N])."""
        seq = self.sequential_scores(histories)
        layers = interest(dists, self.prior, self.catalogue)
        weights = weights or self.state.weights
        return combine(weights, seq, layers, self.log_popularity, cold), seq, layers

    def recommend(self, windows: Sequence[Sequence[Entry]], dists: Sequence[dict[str, np.ndarray]], k: int = 10
                  ) -> list[list[dict]]:
        """Per window: up to k items, best first, none the user already has, with layer, reason, source."""
        if not len(self.catalogue) or not windows:
            return [[] for _ in windows]
        histories = [self.catalogue.rows_of(e.item for e in w if e.item) for w in windows]
        cold = np.array([len(w) <= COLD_USER_EVENTS for w in windows])
        scores, seq, layers = self.scores(histories, dists, cold)
        exclude(scores, histories)
        lists = ranked(scores, k, self.catalogue.label["surface"], self.catalogue.sure["surface"], self.state.per_category)
        out = []
        for u, rows in enumerate(lists):
            weights = INTEREST_ONLY if cold[u] else self.state.weights
            out.append([{"item_id": self.catalogue.ids[r], "score": float(scores[u, r]),
                         **explain(r, u, weights, seq, layers, self.log_popularity, self.has_id, self.catalogue,
                                   self.taxonomy, bool(cold[u]))} for r in rows])
        return out
