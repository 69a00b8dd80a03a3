"""Windows as arrays: what the user model reads, and the forecast targets it is trained on. No torch.

Every entry is turned into numbers once (`EntryTable`): text id, type, behaviour attributes, time
and its category rows (one-hot where the event names the label, inferred from text where it does
not), stored sparsely: at most `MAX_LABELS` labels per layer, as the categorizer's rows carry.
A window is then a slice of the table, and a batch of windows becomes per-event arrays plus, per
layer, the (soft) category counts over the three past horizons: exactly the numbers the counting
baseline uses, so the model starts where the baseline is. The trainer builds one table for all its users and slices it every epoch;
the worker builds one per batch of windows.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from model.categories import MAX_LABELS, Infer, distributions, soft_counts
from model.profile import Horizons, horizon_weights, layer_weights
from model.taxonomy import LAYERS, Taxonomy
from state.event import EVENT_TYPES
from state.window import Entry

EVENT_TYPE_IDS = {t: i + 1 for i, t in enumerate(EVENT_TYPES)}  # 0 is padding
N_ATTRS = 6
N_TIMES = 2


@dataclass
class Batch:
    texts: list[str]  # the distinct texts of the batch; text_idx points into it
    text_ids: np.ndarray  # [len(texts)] int64: the same texts as ids into the EntryTable's texts
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


def _sparse(rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Dense rows [N, C] with at most k non-zeros each -> (label ids [N, k], weights [N, k])."""
    top = np.argpartition(-rows, k - 1, axis=1)[:, :k] if k < rows.shape[1] else np.tile(np.arange(k), (len(rows), 1))
    return top.astype(np.int32), np.take_along_axis(rows, top, 1).astype(np.float32)


@dataclass
class EntryTable:
    """Entries as arrays, computed once; windows are (start, end) slices of it."""

    n_labels: dict[str, int]
    texts: list[str]
    text_id: np.ndarray  # [N] int64, -1 without text
    types: np.ndarray  # [N] int64
    attrs: np.ndarray  # [N, N_ATTRS] float32
    ts: np.ndarray  # [N] float64, epoch ms
    label_ids: dict[str, np.ndarray]  # layer -> [N, k] int32
    label_weights: dict[str, np.ndarray]  # layer -> [N, k] float32 (0 in unused slots)
    inferred: np.ndarray  # [N, 3] float32

    @classmethod
    def build(cls, entries: Sequence[Entry], taxonomy: Taxonomy, infer: Optional[Infer] = None,
              chunk: int = 16384) -> "EntryTable":
        """`infer`'s rows should carry at most MAX_LABELS labels (model/categorizer.cached makes the
        categorizer's so); denser rows keep their MAX_LABELS largest entries."""
        n_labels = {layer: len(taxonomy.labels[layer]) for layer in LAYERS}
        texts: dict[str, int] = {}
        text_id = np.array([texts.setdefault(e.text, len(texts)) if e.text else -1 for e in entries], dtype=np.int64)
        label_ids = {layer: [] for layer in LAYERS}
        label_weights = {layer: [] for layer in LAYERS}
        inferred = []
        for start in range(0, len(entries), chunk):  # dense rows only a chunk at a time
            rows, guessed = distributions(entries[start:start + chunk], taxonomy, infer)
            for layer in LAYERS:
                ids, weights = _sparse(rows[layer], min(MAX_LABELS, n_labels[layer]))
                label_ids[layer].append(ids)
                label_weights[layer].append(weights)
            inferred.append(np.stack([guessed[layer] for layer in LAYERS], 1).astype(np.float32))

        def joined(parts, shape, dtype):
            return np.concatenate(parts) if parts else np.zeros(shape, dtype=dtype)

        return cls(
            n_labels, list(texts), text_id,
            np.array([EVENT_TYPE_IDS.get(e.type, 0) for e in entries], dtype=np.int64),
            np.array([_attrs(e) for e in entries], dtype=np.float32).reshape(len(entries), N_ATTRS),
            np.array([e.ts for e in entries], dtype=np.float64),
            {layer: joined(label_ids[layer], (0, min(MAX_LABELS, n_labels[layer])), np.int32) for layer in LAYERS},
            {layer: joined(label_weights[layer], (0, min(MAX_LABELS, n_labels[layer])), np.float32)
             for layer in LAYERS},
            joined(inferred, (0, len(LAYERS)), np.float32),
        )

    def batch(self, spans: Sequence[tuple[int, int]], horizons: Horizons, max_events: int) -> Batch:
        """The windows table[start:end], each cut to its newest `max_events` entries."""
        spans = [(max(start, end - max_events), end) for start, end in spans]
        b = len(spans)
        t = max(1, max((end - start for start, end in spans), default=1))
        rows = np.concatenate([np.arange(start, end) for start, end in spans]) if b else np.zeros(0, dtype=np.int64)
        lengths = np.array([end - start for start, end in spans], dtype=np.int64)
        bi = np.repeat(np.arange(b), lengths)
        tj = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        mask = np.zeros((b, t), dtype=bool)
        mask[bi, tj] = True

        ids = self.text_id[rows]
        has_text = ids >= 0
        text_ids, first, inverse = np.unique(ids[has_text], return_index=True, return_inverse=True)
        order = np.argsort(first)  # the batch's texts in order of first appearance
        rank = np.empty(len(order), dtype=np.int64)
        rank[order] = np.arange(len(order))
        text_ids = text_ids[order]
        text_idx = np.full((b, t), -1, dtype=np.int64)
        text_idx[bi[has_text], tj[has_text]] = rank[inverse]
        types = np.zeros((b, t), dtype=np.int64)
        types[bi, tj] = self.types[rows]
        attrs = np.zeros((b, t, N_ATTRS), dtype=np.float32)
        attrs[bi, tj] = self.attrs[rows]
        inferred = np.zeros((b, t, len(LAYERS)), dtype=np.float32)
        inferred[bi, tj] = self.inferred[rows]

        times = np.zeros((b, t, N_TIMES), dtype=np.float32)
        weights = np.zeros((b, len(LAYERS), t), dtype=np.float32)  # past horizons, per window
        for i, (start, end) in enumerate(spans):
            if end == start:
                continue
            ts = self.ts[start:end]
            times[i, :end - start, 0] = np.log1p(np.diff(ts, prepend=ts[0]) / 3_600_000)
            times[i, :end - start, 1] = np.log1p((ts[-1] - ts) / 86_400_000)
            w = layer_weights(ts, horizons)
            for h, layer in enumerate(LAYERS):
                weights[i, h, :end - start] = w[layer]

        cats, past = {}, {}
        for layer in LAYERS:
            dense = np.zeros((b, t, self.n_labels[layer]), dtype=np.float32)
            k = self.label_ids[layer].shape[1]
            np.add.at(dense, (np.repeat(bi, k), np.repeat(tj, k), self.label_ids[layer][rows].ravel()),
                      self.label_weights[layer][rows].ravel())
            cats[layer] = dense
            past[layer] = np.einsum("bht,btc->bhc", weights, dense)
        return Batch([self.texts[i] for i in text_ids], text_ids, text_idx, types, attrs, times, cats, inferred,
                     mask, past)


def featurize(windows: Sequence[Sequence[Entry]], taxonomy: Taxonomy, horizons: Horizons, max_events: int,
              infer: Optional[Infer] = None) -> Batch:
    """A batch of windows as the model reads them (each cut to its newest `max_events` entries)."""
    cut = [list(w)[-max_events:] for w in windows]
    ends = np.cumsum([len(w) for w in cut])
    table = EntryTable.build([e for w in cut for e in w], taxonomy, infer)
    return table.batch([(int(end - len(w)), int(end)) for w, end in zip(cut, ends)], horizons, max_events)


def future_targets(future: Sequence[Entry], cut_ts: float, taxonomy: Taxonomy, horizons: Horizons) -> dict[str, np.ndarray]:
    """Each layer's weighted category counts in its horizon *after* the moment of prediction.

    surface: the events up to the next gap of `session_gap_ms` (the rest of this session, or
    the next one); middle: the events within `middle_ms`; deep: all later events, decayed.
    """
    weights = horizon_weights(np.array([e.ts for e in future], dtype=float), cut_ts, horizons, forward=True)
    rows = distributions(future, taxonomy)[0]  # targets: the labels events name, never inferred ones
    return {layer: soft_counts(rows[layer], weights[layer]) for layer in LAYERS}
