"""Windows as arrays: what the user model reads, and the forecast targets it is trained on. No torch.

A batch of windows becomes per-event arrays (text index, type, behaviour attributes, time gaps,
category rows: one-hot where the event names the label, inferred from text where it does not)
plus, per layer, the (soft) category counts over the three past horizons: exactly the numbers
the counting baseline uses, so the model starts where the baseline is.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from model.categories import Infer, distributions, soft_counts
from model.profile import Horizons, count_window, horizon_weights
from model.taxonomy import LAYERS, Taxonomy
from state.event import EVENT_TYPES
from state.window import Entry

EVENT_TYPE_IDS = {t: i + 1 for i, t in enumerate(EVENT_TYPES)}  # 0 is padding
N_ATTRS = 6
N_TIMES = 2


@dataclass
class Batch:
    texts: list[str]  # the distinct texts of the batch; text_idx points into it
    text_idx: np.ndarray  # [B, T] int64, -1 where the event has no text or is padding
    types: np.ndarray  # [B, T] int64, 0 = padding
    attrs: np.ndarray  # [B, T, N_ATTRS] float32
    times: np.ndarray  # [B, T, N_TIMES] float32
    cats: dict[str, np.ndarray]  # layer -> [B, T, C] float32: the entry's label distribution (0 unknown)
    inferred: np.ndarray  # [B, T, 3] float32: 1 where that layer's row was inferred from text (LAYERS order)
    mask: np.ndarray  # [B, T] bool
    # layer -> [B, 3, C]: counts of the layer's labels weighted by each past horizon, in LAYERS
    # order (surface: last session, middle: two weeks, deep: decayed history). [:, own] is what
    # the counting baseline uses; the others let the model see e.g. long-running habits when
    # forecasting the next session.
    past: dict[str, np.ndarray]


def _attrs(entry: Entry) -> list[float]:
    a = entry.attrs
    dwell, price, rating = a.get("dwell_ms"), a.get("price"), a.get("rating")
    return [
        math.log1p(dwell / 1000) if dwell is not None else 0.0,
        math.log1p(price) if price is not None else 0.0,
        float(a.get("quantity", 0)),
        (rating - 3) / 2 if rating is not None else 0.0,
        1.0 if rating is not None else 0.0,
        1.0 if dwell is not None or price is not None else 0.0,
    ]


def featurize(windows: Sequence[Sequence[Entry]], taxonomy: Taxonomy, horizons: Horizons, max_events: int,
              infer: Optional[Infer] = None) -> Batch:
    b = len(windows)
    t = max(1, min(max_events, max((len(w) for w in windows), default=1)))
    text_idx = np.full((b, t), -1, dtype=np.int64)
    types = np.zeros((b, t), dtype=np.int64)
    attrs = np.zeros((b, t, N_ATTRS), dtype=np.float32)
    times = np.zeros((b, t, N_TIMES), dtype=np.float32)
    cats = {layer: np.zeros((b, t, len(taxonomy.labels[layer])), dtype=np.float32) for layer in LAYERS}
    inferred = np.zeros((b, t, len(LAYERS)), dtype=np.float32)
    mask = np.zeros((b, t), dtype=bool)
    past = {layer: np.zeros((b, len(LAYERS), len(taxonomy.labels[layer])), dtype=np.float32) for layer in LAYERS}
    texts: dict[str, int] = {}
    for i, window in enumerate(windows):
        entries = list(window)[-t:]
        if not entries:
            continue
        n = len(entries)
        counted = count_window(entries, taxonomy, horizons, infer)
        for k, layer in enumerate(LAYERS):
            cats[layer][i, :n] = counted.rows[layer]
            inferred[i, :n, k] = counted.inferred[layer]
            past[layer][i] = counted.past[layer]
        prev, last = entries[0].ts, entries[-1].ts
        for j, e in enumerate(entries):
            if e.text:
                text_idx[i, j] = texts.setdefault(e.text, len(texts))
            types[i, j] = EVENT_TYPE_IDS.get(e.type, 0)
            attrs[i, j] = _attrs(e)
            times[i, j] = (math.log1p((e.ts - prev) / 3_600_000), math.log1p((last - e.ts) / 86_400_000))
            prev = e.ts
        mask[i, :n] = True
    return Batch(list(texts), text_idx, types, attrs, times, cats, inferred, mask, past)


def future_targets(future: Sequence[Entry], cut_ts: float, taxonomy: Taxonomy, horizons: Horizons) -> dict[str, np.ndarray]:
    """Each layer's weighted category counts in its horizon *after* the moment of prediction.

    surface: the events up to the next gap of `session_gap_ms` (the rest of this session, or
    the next one); middle: the events within `middle_ms`; deep: all later events, decayed.
    """
    weights = horizon_weights(np.array([e.ts for e in future], dtype=float), cut_ts, horizons, forward=True)
    rows = distributions(future, taxonomy)[0]  # targets: the labels events name, never inferred ones
    return {layer: soft_counts(rows[layer], weights[layer]) for layer in LAYERS}
