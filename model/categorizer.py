"""Text -> categories, per event, cascaded like the layers:
P(surface | text), P(middle | text, p_surface), P(deep | text, p_surface, p_middle).

An event's text is read as hashed jieba unigrams and bigrams weighted by tf-idf, summed into a
dense vector (fastText-style), with the event type: a low-rank linear model over n-grams is what
classifies short titles, searches and reviews best per CPU second, and its weights stay a few MB
of safetensors however many labels the taxonomy has. It is trained on the labelled events of
training users and applied to every event whose category path is missing or partial, in the
trainer and in the worker; a partial path (deep, or deep and middle) confines the inferred lower
levels to its subtree.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from model.categories import Infer, known_labels, top_labels
from model.taxonomy import LAYERS, Taxonomy
from state.embedding_cache import EmbeddingCache
from state.event import EVENT_TYPES
from state.window import Entry

TYPE_IDS = {t: i + 1 for i, t in enumerate(EVENT_TYPES)}  # 0: unknown


@dataclass(frozen=True)
class CategorizerConfig:
    n_labels: dict[str, int]
    buckets: int = 1 << 16
    dim: int = 96


def ngram_ids(tokens: Sequence[str], buckets: int) -> list[int]:
    """Hashed unigrams and bigrams (crc32: stable across processes, unlike Python's hash)."""
    grams = list(tokens) + [f"{a}\x1f{b}" for a, b in zip(tokens, tokens[1:])]
    return [zlib.crc32(g.encode("utf-8", "surrogatepass")) % buckets for g in grams]


class Categorizer(nn.Module):
    def __init__(self, config: CategorizerConfig):
        super().__init__()
        self.config = config
        n = config.n_labels
        self.bag = nn.EmbeddingBag(config.buckets, config.dim, mode="sum")
        self.text = nn.ModuleDict({lv: nn.Linear(config.dim, n[lv]) for lv in LAYERS})
        self.type_bias = nn.ModuleDict({lv: nn.Embedding(len(TYPE_IDS) + 1, n[lv]) for lv in LAYERS})
        self.from_surface = nn.Linear(n["surface"], n["middle"], bias=False)
        self.from_upper = nn.Linear(n["surface"] + n["middle"], n["deep"], bias=False)
        nn.init.normal_(self.bag.weight, std=0.1)
        self.register_buffer("idf", torch.ones(config.buckets))

    def fit_idf(self, texts: Sequence[Sequence[str]]) -> None:
        df = np.zeros(self.config.buckets)
        for tokens in texts:
            df[list(set(ngram_ids(tokens, self.config.buckets)))] += 1
        self.idf.copy_(torch.from_numpy(np.log((1 + len(texts)) / (1 + df)) + 1).float())

    def inputs(self, entries: Sequence[Entry]) -> dict[str, torch.Tensor]:
        """Bag inputs: n-gram ids, offsets, L2-normalised tf-idf weights, type ids."""
        ids, offsets = [], []
        for e in entries:
            offsets.append(len(ids))
            ids.extend(ngram_ids(e.tokens, self.config.buckets))
        ids_t = torch.tensor(ids, dtype=torch.long)
        weights = self.idf[ids_t] if ids else torch.zeros(0)
        # L2 norm per bag, so long reviews and short titles speak equally loudly.
        bag = torch.repeat_interleave(torch.arange(len(entries)), torch.diff(torch.tensor(offsets + [len(ids)])))
        norms = torch.zeros(len(entries)).index_add_(0, bag, weights ** 2).sqrt().clamp(min=1e-6)
        return {"ids": ids_t, "offsets": torch.tensor(offsets, dtype=torch.long), "weights": weights / norms[bag],
                "types": torch.tensor([TYPE_IDS.get(e.type, 0) for e in entries], dtype=torch.long)}

    def forward(self, ids, offsets, weights, types) -> dict[str, torch.Tensor]:
        """Log-probabilities per layer, cascaded surface -> middle -> deep."""
        text = self.bag(ids, offsets, per_sample_weights=weights)

        def logits(lv):
            return self.text[lv](text) + self.type_bias[lv](types)

        surface = torch.log_softmax(logits("surface"), -1)
        middle = torch.log_softmax(logits("middle") + self.from_surface(surface.exp()), -1)
        deep = torch.log_softmax(logits("deep") + self.from_upper(torch.cat([surface.exp(), middle.exp()], -1)), -1)
        return {"surface": surface, "middle": middle, "deep": deep}

    @torch.no_grad()
    def predict(self, entries: Sequence[Entry]) -> dict[str, np.ndarray]:
        if not entries:
            return {lv: np.zeros((0, n)) for lv, n in self.config.n_labels.items()}
        out = self(**self.inputs(entries))
        return {lv: out[lv].exp().numpy().astype(np.float64) for lv in LAYERS}


def train_categorizer(entries: Sequence[Entry], taxonomy: Taxonomy, seed: int = 0, epochs: int = 8,
                      batch_size: int = 256, lr: float = 0.01, progress=None) -> Categorizer:
    """Fit on the distinct (text, type) pairs of labelled entries, each with its label distribution."""
    groups: dict[tuple[str, str], list[Entry]] = {}
    for e in entries:
        if e.tokens and e.cats:
            groups.setdefault((e.text, e.type), []).append(e)
    keys = sorted(groups)
    reps = [groups[k][0] for k in keys]
    flat = [e for k in keys for e in groups[k]]
    owner = np.repeat(np.arange(len(keys)), [len(groups[k]) for k in keys])
    rows = known_labels(flat, taxonomy)[0]
    targets = {lv: np.zeros((len(keys), len(taxonomy.labels[lv]))) for lv in LAYERS}
    for lv in LAYERS:
        np.add.at(targets[lv], owner, rows[lv])
    model = Categorizer(CategorizerConfig({lv: len(taxonomy.labels[lv]) for lv in LAYERS}))
    model.fit_idf([e.tokens for e in reps])
    if not keys:
        return model.eval()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(keys))
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            out = model(**model.inputs([reps[i] for i in chunk]))
            loss = 0.0
            for lv in LAYERS:
                t = torch.from_numpy(targets[lv][chunk])
                mass = t.sum(-1, keepdim=True)
                keep = mass.squeeze(-1) > 0
                if keep.any():
                    loss = loss + (-(t[keep] / mass[keep]) * out[lv][keep]).sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if progress is not None:
            progress(epoch + 1, epochs)
    return model.eval()



def cached(predict: Callable[[Sequence[Entry]], dict[str, np.ndarray]], max_size: int = 200_000) -> Infer:
    """`predict` behind an LRU cache by text hash (of type and text): each distinct text goes
    through the categorizer once, in the trainer and in the worker's model thread alike. Each
    row keeps its MAX_LABELS most likely labels (rescaled to sum to 1)."""
    cache = EmbeddingCache(max_size)

    def infer(entries: Sequence[Entry]) -> dict[str, np.ndarray]:
        keys = [f"{e.type}\x1f{e.text}" for e in entries]
        rows = [cache.get(k) for k in keys]
        todo = {k: e for k, e, row in zip(keys, entries, rows) if row is None}
        if todo:
            out = {layer: top_labels(rows) for layer, rows in predict(list(todo.values())).items()}
            fresh = {k: {layer: out[layer][i] for layer in LAYERS} for i, k in enumerate(todo)}
            for k, row in fresh.items():
                cache.put(k, row)
            rows = [row if row is not None else fresh[k] for k, row in zip(keys, rows)]
        return {layer: np.stack([r[layer] for r in rows]) if rows else np.zeros((0, 0)) for layer in LAYERS}

    return infer
