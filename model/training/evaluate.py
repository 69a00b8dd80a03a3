"""Quality per layer on held-out users, the tuned yardsticks, and paired bootstrap intervals.

Targets are distributions (a layer's category mix in its future horizon); rows whose horizon
holds no labelled event are left out for that layer. Every contender is scored on the same rows;
differences are averaged per test user first, and users are resampled (paired bootstrap), so a
user with many cuts does not count as many independent observations.
"""
from __future__ import annotations

import itertools
from typing import Optional

import numpy as np

from model.profile import BaselineParams
from model.taxonomy import LAYERS

METRICS = ("accuracy", "recall@3", "macro_f1", "ndcg@3", "cross_entropy")
CI_METRICS = ("ndcg@3", "cross_entropy")
ALPHAS = (0.1, 0.3, 1.0, 3.0, 10.0)
TEMPERATURES = (0.5, 0.75, 1.0, 1.5, 2.0)
MIX_STEP = 0.125
DISCOUNTS = 1.0 / np.log2(np.arange(2, 5))


def row_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """Per row: NDCG@3 and cross-entropy of pred [N, C] against target distributions [N, C]."""
    top = np.argsort(-pred, axis=1)[:, :3]
    gains = np.take_along_axis(target, top, 1)
    ideal = (-np.sort(-target, axis=1)[:, :3] * DISCOUNTS).sum(1)
    return {"ndcg@3": (gains * DISCOUNTS).sum(1) / ideal,
            "cross_entropy": -(target * np.log(np.clip(pred, 1e-12, 1))).sum(1)}


def layer_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """pred, target: [N, C]; target rows sum to 1."""
    n, c = pred.shape
    truth = target.argmax(1)
    top = np.argsort(-pred, axis=1)
    relevant = target > 0
    hits3 = np.take_along_axis(relevant, top[:, :3], 1).sum(1)
    f1s = []
    for k in range(c):
        tp = np.sum((top[:, 0] == k) & (truth == k))
        fp = np.sum((top[:, 0] == k) & (truth != k))
        fn = np.sum((top[:, 0] != k) & (truth == k))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    rows = row_metrics(pred, target)
    return {
        "accuracy": float(np.mean(top[:, 0] == truth)),
        "recall@3": float(np.mean(hits3 / relevant.sum(1))),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "ndcg@3": float(rows["ndcg@3"].mean()),
        "cross_entropy": float(rows["cross_entropy"].mean()),
        "n": int(n),
    }


def normalise(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows that have a target, those rows normalised)."""
    mass = targets.sum(1)
    keep = mass > 0
    return keep, targets[keep] / mass[keep, None]


def _mixes(step: float = MIX_STEP) -> list[tuple[float, float, float]]:
    n = round(1 / step)
    return [(a * step, b * step, (n - a - b) * step) for a, b in itertools.product(range(n + 1), repeat=2) if a + b <= n]


def tune_baseline(past: np.ndarray, targets: np.ndarray, prior: np.ndarray) -> BaselineParams:
    """The mix of horizons, smoothing and temperature with the lowest cross-entropy on these
    (validation) rows: past [N, 3, C], targets [N, C]. The strongest simple counting baseline."""
    keep, t = normalise(targets)
    if not keep.any():
        return BaselineParams((1 / 3, 1 / 3, 1 / 3))
    best, best_ce = None, np.inf
    mixes = np.array(_mixes())  # [M, 3]
    chunk = max(1, int(2e7 // max(1, past[keep].shape[0] * past.shape[-1])))  # bounded memory for big taxonomies
    for alpha in ALPHAS:
        dists = (past[keep] + alpha * prior) / (past[keep].sum(-1, keepdims=True) + alpha)  # [N, 3, C]
        for start in range(0, len(mixes), chunk):
            some = mixes[start:start + chunk]
            log_mixed = np.log(np.clip(np.einsum("mh,nhc->mnc", some, dists), 1e-12, None))
            for temperature in TEMPERATURES:
                z = log_mixed / temperature
                top = z.max(-1, keepdims=True)
                log_p = z - top - np.log(np.exp(z - top).sum(-1, keepdims=True))
                ce = -(t[None] * log_p).sum(-1).mean(-1)  # [M]
                m = int(ce.argmin())
                if ce[m] < best_ce:
                    best_ce, best = ce[m], BaselineParams(tuple(float(x) for x in some[m]), alpha, temperature)
    return best


def paired_bootstrap(a: np.ndarray, b: np.ndarray, users: np.ndarray, n: int = 1000, seed: int = 0
                     ) -> list[float]:
    """95% interval of mean(a - b), averaged per user first, over `n` resamples of users."""
    diff = a - b
    order, inverse = np.unique(users, return_inverse=True)
    per_user = np.bincount(inverse, weights=diff) / np.bincount(inverse)
    rng = np.random.default_rng(seed)
    means = per_user[rng.integers(0, len(order), size=(n, len(order)))].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def compare(probs: dict[str, dict[str, np.ndarray]], targets: dict[str, np.ndarray], users: np.ndarray,
            seed: int = 0, resamples: int = 1000) -> dict:
    """probs: contender ("model", "baseline", "text_baseline", ...) -> layer -> [N, C], on the same
    rows. {"layers": {layer: {contender: metrics, "ci95": {other: {metric: [lo, hi]}}}}}: the
    intervals are of model - other (for cross-entropy, below 0 is a win for the model)."""
    out = {}
    for layer in LAYERS:
        keep, t = normalise(targets[layer])
        if not keep.any():
            out[layer] = {who: {**{m: None for m in METRICS}, "n": 0} for who in probs}
            continue
        out[layer] = {who: layer_metrics(p[layer][keep], t) for who, p in probs.items()}
        rows = {who: row_metrics(p[layer][keep], t) for who, p in probs.items()}
        if "model" in rows:
            out[layer]["ci95"] = {
                who: {m: paired_bootstrap(rows["model"][m], rows[who][m], users[keep], resamples, seed)
                      for m in CI_METRICS}
                for who in rows if who != "model"}
    return {"layers": out}


def wins(result: dict, other: str = "baseline") -> dict[str, dict[str, Optional[str]]]:
    """Per layer and metric: 'win', 'loss' or 'tie' of the model against `other`, by its interval."""
    out = {}
    for layer, row in result["layers"].items():
        ci = row.get("ci95", {}).get(other)
        if ci is None:
            continue
        out[layer] = {}
        for m, (lo, hi) in ci.items():
            better = (lo > 0, hi < 0) if m == "ndcg@3" else (hi < 0, lo > 0)
            out[layer][m] = "win" if better[0] else "loss" if better[1] else "tie"
    return out


def format_table(result: dict, title: str = "") -> str:
    lines = [title] if title else []
    contenders = [w for w in ("model", "baseline", "text_baseline") if any(w in r for r in result["layers"].values())]
    lines.append(f"{'layer':8} {'':14} " + " ".join(f"{m:>13}" for m in METRICS))
    for layer in LAYERS:
        row = result["layers"][layer]
        for i, who in enumerate(contenders):
            cells = (f"{row[who][m]:13.4f}" if row[who][m] is not None else f"{'n/a':>13}" for m in METRICS)
            lines.append(f"{layer if i == 0 else '':8} {who:14} " + " ".join(cells))
        for other, ci in row.get("ci95", {}).items():
            text = "  ".join(f"{m} [{lo:+.4f}, {hi:+.4f}]" for m, (lo, hi) in ci.items())
            lines.append(f"{'':8} {'model - ' + other:14} 95% CI: {text}")
    return "\n".join(lines)
