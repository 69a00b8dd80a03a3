"""The next-item model: causal self-attention over a user's items (SASRec's design, written here).

An item's vector is the sum of three parts: a learned id embedding (items seen in training), a
projection of its text's content vector (from the profile model's text encoder), and an
embedding of its surface category (weighted by how sure that label is). The same vectors embed
the input sequence and score every catalogue item at the output (tied), so an item that arrives
after training has a vector from its text and category alone; training drops id embeddings at
random so that those two parts learn to carry an item by themselves.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn


@dataclass
class SequentialConfig:
    n_ids: int  # id-embedding rows: items seen in training, plus row 0 for "no id"
    n_surface: int  # surface labels
    content_dim: int
    d_model: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 50
    dropout: float = 0.2
    id_dropout: float = 0.1  # share of items whose id embedding is hidden in a training step


@dataclass
class ItemFeatures:
    """Per catalogue row: id-embedding row (0: none), surface label and its certainty, content vector."""

    id_row: torch.Tensor  # [N] long
    surface: torch.Tensor  # [N] long
    sure: torch.Tensor  # [N] float
    content: torch.Tensor  # [N, content_dim] float

    @classmethod
    def of(cls, id_row: np.ndarray, surface: np.ndarray, sure: np.ndarray, content: np.ndarray) -> "ItemFeatures":
        """From catalogue arrays; content vectors are scaled to unit length (encoders differ in scale)."""
        norms = np.linalg.norm(content, axis=1, keepdims=True)
        return cls(torch.as_tensor(id_row, dtype=torch.long), torch.as_tensor(surface, dtype=torch.long),
                   torch.as_tensor(sure, dtype=torch.float32),
                   torch.as_tensor(content / np.clip(norms, 1e-9, None), dtype=torch.float32))

    def to(self, device: torch.device) -> "ItemFeatures":
        return ItemFeatures(*(t.to(device) for t in (self.id_row, self.surface, self.sure, self.content)))


class SequentialModel(nn.Module):
    def __init__(self, config: SequentialConfig):
        super().__init__()
        self.config = c = config
        self.ids = nn.Embedding(c.n_ids, c.d_model, padding_idx=0)
        self.surface = nn.Embedding(c.n_surface, c.d_model)
        self.content = nn.Linear(c.content_dim, c.d_model, bias=False)
        self.position = nn.Embedding(c.max_len, c.d_model)
        layer = nn.TransformerEncoderLayer(c.d_model, c.heads, 2 * c.d_model, c.dropout, batch_first=True,
                                           norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, c.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(c.d_model)
        self.drop = nn.Dropout(c.dropout)
        for emb in (self.ids, self.surface, self.position):
            nn.init.normal_(emb.weight, std=0.02)

    def item_vectors(self, items: ItemFeatures) -> torch.Tensor:
        """[N, d]: every catalogue row's vector; id embeddings dropped at random while training."""
        id_row = items.id_row
        if self.training and self.config.id_dropout > 0:
            id_row = id_row.masked_fill(torch.rand(id_row.shape, device=id_row.device) < self.config.id_dropout, 0)
        return (self.ids(id_row) + self.content(items.content)
                + items.sure[:, None] * self.surface(items.surface))

    @torch.no_grad()
    def catalogue_vectors(self, items: ItemFeatures) -> torch.Tensor:
        """[N, d] for serving and scoring: no id dropout, on the model's device."""
        self.eval()
        return self.item_vectors(items.to(next(self.parameters()).device))

    def hidden(self, vectors: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
        """seqs [B, L] catalogue rows, right-padded with -1 -> [B, L, d] (position t sees rows <= t)."""
        length = seqs.shape[1]
        x = vectors[seqs.clamp(min=0)] * (seqs >= 0)[..., None]
        x = self.drop(x * self.config.d_model ** 0.5 + self.position(torch.arange(length, device=seqs.device)))
        causal = nn.Transformer.generate_square_subsequent_mask(length, device=seqs.device)
        return self.norm(self.blocks(x, mask=causal, is_causal=True))

    def user_vectors(self, vectors: torch.Tensor, seqs: torch.Tensor) -> torch.Tensor:
        """[B, d]: the state after each sequence's last item (seqs right-padded, at least one item each)."""
        last = (seqs >= 0).sum(1) - 1
        return self.hidden(vectors, seqs)[torch.arange(len(seqs), device=seqs.device), last]

    @torch.no_grad()
    def scores(self, vectors: torch.Tensor, histories: Sequence[np.ndarray], chunk: int = 512) -> np.ndarray:
        """[B, N] float32: each catalogue row's score after each history (its newest max_len rows);
        0 for an empty history."""
        self.eval()
        device = vectors.device
        out = np.zeros((len(histories), len(vectors)), dtype=np.float32)
        for start in range(0, len(histories), chunk):
            part = [np.asarray(h[-self.config.max_len:]) for h in histories[start:start + chunk]]
            has = [i for i, h in enumerate(part) if len(h)]
            if not has:
                continue
            seqs = torch.full((len(has), max(len(part[i]) for i in has)), -1, dtype=torch.long)
            for j, i in enumerate(has):
                seqs[j, :len(part[i])] = torch.from_numpy(part[i])
            users = self.user_vectors(vectors, seqs.to(device))
            out[np.asarray(has) + start] = (users @ vectors.T).float().cpu().numpy()
        return out
