"""The simple recommenders the model must beat, over catalogue rows.

MostPop: training counts. ItemKNN: item-item cosine over which users consumed them (binary),
each item keeping its `k` most similar neighbours; a user's score for an item is the sum of its
similarity to the items in their history.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import sparse


def popularity(sequences: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """[N] how often each catalogue row occurs in the training sequences."""
    rows = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if sequences else np.zeros(0, np.int64)
    return np.bincount(rows, minlength=n_items).astype(np.float64)


class ItemKNN:
    def __init__(self, sequences: Sequence[np.ndarray], n_items: int, k: Optional[int] = 100):
        users = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
        rows = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if sequences else np.zeros(0, np.int64)
        x = sparse.csr_matrix((np.ones(len(rows)), (users, rows)), shape=(len(sequences), n_items))
        x.data[:] = 1.0  # consumed or not (repeats summed by the constructor)
        norms = np.sqrt(np.asarray(x.sum(0)).ravel())
        inv = sparse.diags(np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0))
        sim = (inv @ (x.T @ x) @ inv).tocsr()
        sim.setdiag(0.0)
        sim.eliminate_zeros()
        self.similarity = _keep_top(sim, k) if k is not None else sim

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[B, N]: per user, the summed similarity of each item to the user's history items."""
        n = self.similarity.shape[0]
        users = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        rows = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if histories else np.zeros(0, np.int64)
        h = sparse.csr_matrix((np.ones(len(rows)), (users, rows)), shape=(len(histories), n))
        h.data[:] = 1.0
        return np.asarray((h @ self.similarity).todense(), dtype=np.float32)


def _keep_top(sim: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Each row (a history item) keeps its k largest similarities (ties: lower column first)."""
    indptr, indices, data = [0], [], []
    for r in range(sim.shape[0]):
        start, end = sim.indptr[r], sim.indptr[r + 1]
        cols, vals = sim.indices[start:end], sim.data[start:end]
        if len(vals) > k:
            order = np.lexsort((cols, -vals))[:k]
            cols, vals = cols[order], vals[order]
        indices.append(cols)
        data.append(vals)
        indptr.append(indptr[-1] + len(cols))
    return sparse.csr_matrix((np.concatenate(data) if data else [], np.concatenate(indices) if indices else [],
                              indptr), shape=sim.shape)
