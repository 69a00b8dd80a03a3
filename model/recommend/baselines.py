"""The simple recommenders the model must beat, over catalogue rows.

MostPop: training counts. ItemKNN: item-item cosine over which users consumed them (binary),
each item keeping its `k` most similar neighbours; a user's score for an item is the sum of its
similarity to the items in their history. Only the kept neighbours (items x k) are held; scores
are dense, so callers score a bounded number of users at a time.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
from scipy import sparse

ITEM_BLOCK = 512  # item rows of the co-occurrence built at once


def popularity(sequences: Sequence[np.ndarray], n_items: int) -> np.ndarray:
    """[N] how often each catalogue row occurs in the training sequences."""
    rows = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if sequences else np.zeros(0, np.int64)
    return np.bincount(rows, minlength=n_items).astype(np.float64)


class ItemKNN:
    def __init__(self, sequences: Sequence[np.ndarray], n_items: int, k: Optional[int] = 100):
        x = _consumed(sequences, n_items)
        norms = np.sqrt(np.asarray(x.sum(0)).ravel())
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        by_item = x.T.tocsr()
        # The co-occurrence of every item pair is about as large as a dense [N, N] float64 array:
        # built, scaled and cut to k a block of items at a time, never whole (one empty block for
        # no items).
        self.similarity = sparse.vstack([_neighbours(by_item[start:start + ITEM_BLOCK] @ x, start, inv, k)
                                         for start in range(0, max(n_items, 1), ITEM_BLOCK)], format="csr")

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[B, N]: per user, the summed similarity of each item to the user's history items (score
        a bounded number of users at a time: this is dense)."""
        h = _consumed(histories, self.similarity.shape[0])
        return np.asarray((h @ self.similarity).todense(), dtype=np.float32)


def _consumed(sequences: Sequence[np.ndarray], n_items: int) -> sparse.csr_matrix:
    """[users, N] 1 where the user consumed the item (repeats count once)."""
    users = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    rows = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]) if sequences else np.zeros(0, np.int64)
    x = sparse.csr_matrix((np.ones(len(rows)), (users, rows)), shape=(len(sequences), n_items))
    x.data[:] = 1.0  # the constructor summed repeats
    return x


def _neighbours(co: sparse.csr_matrix, start: int, inv: np.ndarray, k: Optional[int]) -> sparse.csr_matrix:
    """Rows `start`... of the item-item cosine from their co-occurrence counts `co` (scaled in
    place; the diagonal dropped), each keeping its k largest (all with k None)."""
    co = co.tocsr()
    rows = start + np.repeat(np.arange(co.shape[0]), np.diff(co.indptr))
    co.data *= inv[rows]
    co.data *= inv[co.indices]
    co.data[rows == co.indices] = 0.0
    co.eliminate_zeros()
    return _keep_top(co, k) if k is not None else co


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
