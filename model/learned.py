"""The learned profile model behind the worker's ProfileModel interface.

Batched inference on CUDA with bf16 when a GPU is present, on the CPU otherwise. Text vectors
come from an LRU cache by text hash, so each distinct text goes through the encoder once.
"""
from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from model.categorizer import cached
from model.checkpoint import load_checkpoint
from model.features import featurize
from model.profile import ProfileModel
from model.recommend.recommender import Recommender
from model.taxonomy import LAYERS
from model.user_model import batch_tensors
from state.embedding_cache import EmbeddingCache
from state.window import Entry


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class LearnedModel(ProfileModel):
    def __init__(self, directory: Path, device: Optional[torch.device] = None, cache_size: int = 200_000,
                 encode_batch: int = 256):
        self.device = device or default_device()
        ckpt = load_checkpoint(directory, self.device)
        self.model, self.encoder, self.taxonomy, self.horizons, self.config = (
            ckpt.model, ckpt.encoder, ckpt.taxonomy, ckpt.horizons, ckpt.config)
        self.infer = cached(ckpt.categorizer.predict, cache_size)  # categories from text, by text hash
        self.version = self.config["version"]
        self.cache = EmbeddingCache(cache_size)
        self.encode_batch = encode_batch
        self.recommender = Recommender(self.taxonomy, ckpt.recommender, ckpt.sequential, self.infer,
                                       lambda texts: self.text_vectors(texts).float().cpu().numpy())
        # Called with (hits, misses) after each batch; the worker turns it into metrics.
        self.on_encode: Optional[Callable[[int, int], None]] = None

    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    @torch.no_grad()
    def text_vectors(self, texts: Sequence[str]) -> torch.Tensor:
        vecs: list[Optional[np.ndarray]] = [self.cache.get(t) for t in texts]
        missing = [i for i, v in enumerate(vecs) if v is None]
        for start in range(0, len(missing), self.encode_batch):
            chunk = missing[start:start + self.encode_batch]
            ids, mask = self.encoder.tokenize([texts[i] for i in chunk])
            with self._autocast():
                out = self.encoder(ids.to(self.device), mask.to(self.device)).float().cpu().numpy()
            for i, v in zip(chunk, out):
                self.cache.put(texts[i], v)
                vecs[i] = v
        if self.on_encode is not None:
            self.on_encode(len(texts) - len(missing), len(missing))
        if not texts:
            return torch.zeros((1, self.model.config.text_dim), device=self.device)
        return torch.from_numpy(np.stack(vecs)).to(self.device)

    @torch.no_grad()
    def predict(self, windows: Sequence[Sequence[Entry]]) -> list[dict[str, np.ndarray]]:
        batch = featurize(windows, self.taxonomy, self.horizons, self.model.max_events, self.infer)
        vecs = self.text_vectors(batch.texts)
        with self._autocast():
            out = self.model(vecs, batch_tensors(batch, self.device))
        probs = {layer: out[layer].float().exp().cpu().numpy().astype(np.float64) for layer in LAYERS}
        return [{layer: probs[layer][i] / probs[layer][i].sum() for layer in LAYERS} for i in range(len(windows))]
