"""`strata bench inference`: texts/s and users/s of a checkpoint, next to a raw forward of the same batch.

The raw forward is the encoder's bare transformers model (or, for cnn-lstm, the bare torch
module) on the same token tensors: the ratio shows what tokenising, caching and the user
model add on top.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from model.learned import LearnedModel
from state.window import Entry


def _median_time(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _raw_forward(model: LearnedModel, ids: torch.Tensor, mask: torch.Tensor):
    enc = model.encoder
    if enc.kind == "hf":
        return lambda: enc.model(input_ids=ids, attention_mask=mask.long())
    if enc.kind == "scratch":
        return lambda: enc.gpt.transformer(input_ids=ids, attention_mask=mask.long())
    return lambda: enc(ids, mask)


@torch.no_grad()
def bench_checkpoint(directory: Path, windows: list[list[Entry]], reps: int = 5, device=None) -> dict:
    model = LearnedModel(directory, device=device)
    texts = sorted({e.text for w in windows for e in w if e.text})
    ids, mask = model.encoder.tokenize(texts)
    ids, mask = ids.to(model.device), mask.to(model.device)

    def encode_cold():
        model.cache = type(model.cache)(model.cache.max_entries)
        model.text_vectors(texts)

    raw = _median_time(_raw_forward(model, ids, mask), reps)
    ours = _median_time(encode_cold, reps)
    cold_users = _median_time(lambda: (encode_cold(), model.predict(windows)), reps)
    warm_users = _median_time(lambda: model.predict(windows), reps)
    return {
        "checkpoint": str(directory), "encoder": model.config["encoder"]["kind"], "device": str(model.device),
        "texts": len(texts), "users": len(windows),
        "raw_texts_per_s": len(texts) / raw, "texts_per_s": len(texts) / ours, "ratio": raw / ours,
        "users_per_s_cold": len(windows) / cold_users, "users_per_s_warm": len(windows) / warm_users,
    }


def bench_recommendations(model, windows: list[list[Entry]], n_items: int, reps: int = 5, k: int = 10) -> dict:
    """Recommendation lists/s for a batch of windows against a made-up catalogue of `n_items`, next to
    the floor: one matrix product of the same users and items plus a partial sort."""
    import random

    import numpy as np

    from model.datasets.synthetic import make_catalog
    from model.recommend.catalogue import CatalogueItem

    surfaces = len(model.taxonomy.labels["surface"])
    items = make_catalog(model.taxonomy, random.Random(0), -(-n_items // surfaces))[:n_items]
    rec = model.recommender
    started = time.perf_counter()
    rec.set_catalogue([CatalogueItem(i["item_id"], i["title"], tuple(i["categories"])) for i in items])
    build_s = time.perf_counter() - started
    dists = model.predict(windows)
    ours = _median_time(lambda: rec.recommend(windows, dists, k), reps)
    d = rec.vectors.shape[1] if rec.vectors is not None else 64
    users, vectors = np.random.rand(len(windows), d).astype(np.float32), np.random.rand(n_items, d).astype(np.float32)
    floor = _median_time(lambda: np.argpartition(-(users @ vectors.T), k, axis=1)[:, :k], reps)
    return {"items": n_items, "users": len(windows), "lists_per_s": len(windows) / ours,
            "floor_lists_per_s": len(windows) / floor, "ratio": floor / ours, "catalogue_build_s": build_s}
