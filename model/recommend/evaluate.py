"""Next-item evaluation as the field does it (RecBole's leave-one-out, full ranking).

Per user with at least three item events: the last one (by time) is the test item, the one before
it the validation item, the rest history. Every contender ranks the whole catalogue, the user's
consumed items excluded; ties are broken by catalogue order (as a stable sort would). HR@10,
NDCG@10 and MRR per user; paired bootstrap intervals of model - other over users.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from model.training.evaluate import paired_bootstrap

K = 10
METRICS = ("hr@10", "ndcg@10", "mrr")


@dataclass
class Split:
    """Per evaluated user: catalogue rows of their item events, and the two held-out positions."""

    users: list[str]
    sequences: list[np.ndarray]  # every item event's row, in time order

    def history(self, stage: str) -> list[np.ndarray]:
        """The rows before the validation item ("validation") or before the test item ("test")."""
        cut = 2 if stage == "validation" else 1
        return [s[:-cut] for s in self.sequences]

    def targets(self, stage: str) -> np.ndarray:
        return np.array([s[-2] if stage == "validation" else s[-1] for s in self.sequences], dtype=np.int64)


def leave_one_out(sequences: dict[str, np.ndarray]) -> Split:
    users = sorted(u for u, s in sequences.items() if len(s) >= 3)
    return Split(users, [sequences[u] for u in users])


def target_ranks(scores: np.ndarray, targets: np.ndarray, consumed: Sequence[np.ndarray]) -> np.ndarray:
    """0-based rank of each user's target among the items they have not consumed; a target they
    already consumed cannot be recommended and ranks last."""
    n = scores.shape[1]
    ranks = np.empty(len(targets), dtype=np.int64)
    for u, (t, seen) in enumerate(zip(targets, consumed)):
        if np.isin(t, seen):
            ranks[u] = n
            continue
        s = scores[u]
        ahead = (s > s[t]) | ((s == s[t]) & (np.arange(n) < t))
        ahead[seen] = False
        ranks[u] = int(ahead.sum())
    return ranks


def list_ranks(lists: Sequence[np.ndarray], targets: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Ranks for served lists: the target's place in the list, else `fallback` (the score rank)
    pushed past the list."""
    out = fallback.copy()
    for u, (items, t) in enumerate(zip(lists, targets)):
        hit = np.nonzero(items == t)[0]
        out[u] = hit[0] if len(hit) else max(fallback[u], len(items))
    return out


def per_user(ranks: np.ndarray) -> dict[str, np.ndarray]:
    hit = ranks < K
    return {"hr@10": hit.astype(float),
            "ndcg@10": np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0),
            "mrr": 1.0 / (ranks + 1.0)}


def compare(ranks: dict[str, np.ndarray], seed: int = 0, resamples: int = 1000, slices: dict[str, np.ndarray] = None
            ) -> dict:
    """{"contenders": {name: {metric: mean, "n"}}, "ci95": {other: {metric: [lo, hi]}}} for model -
    other; plus the same per named slice (a boolean mask over users)."""
    def block(mask: np.ndarray) -> dict:
        users = np.arange(mask.sum())
        rows = {who: per_user(r[mask]) for who, r in ranks.items()}
        out = {"contenders": {who: {**{m: float(v[m].mean()) if mask.any() else None for m in METRICS},
                                    "n": int(mask.sum())} for who, v in rows.items()}}
        if "model" in rows and mask.sum() > 1:
            out["ci95"] = {who: {m: paired_bootstrap(rows["model"][m], rows[who][m], users, resamples, seed)
                                 for m in METRICS} for who in rows if who != "model"}
        return out

    everyone = np.ones(len(next(iter(ranks.values()))), dtype=bool)
    result = block(everyone)
    result["slices"] = {name: block(mask) for name, mask in (slices or {}).items()}
    return result


def format_table(result: dict, title: str = "") -> str:
    lines = [title] if title else []

    def table(block: dict, name: str) -> None:
        n = next(iter(block["contenders"].values()))["n"]
        lines.append(f"{name} ({n} users)")
        lines.append(f"  {'':22}" + "".join(f"{m:>10}" for m in METRICS))
        for who, row in block["contenders"].items():
            lines.append(f"  {who:22}" + "".join(f"{row[m]:10.4f}" if row[m] is not None else f"{'n/a':>10}"
                                               for m in METRICS))
        for other, ci in block.get("ci95", {}).items():
            lines.append(f"  {'model - ' + other:22}" + "  ".join(f"{m} [{lo:+.4f}, {hi:+.4f}]"
                                                                 for m, (lo, hi) in ci.items()))

    table(result, "recommendation, all evaluated users")
    for name, block in result.get("slices", {}).items():
        table(block, name)
    return "\n".join(lines)
