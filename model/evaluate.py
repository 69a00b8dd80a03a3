"""Quality per layer: top-1 accuracy, recall@3, macro-F1, NDCG@3, cross-entropy; and the tuned baseline.

Targets are distributions (a layer's category mix in its future horizon); rows whose horizon
holds no labelled event are left out for that layer.
"""
from __future__ import annotations

import numpy as np

from model.profile import smoothed
from model.taxonomy import LAYERS

METRICS = ("accuracy", "recall@3", "macro_f1", "ndcg@3", "cross_entropy")
ALPHAS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def layer_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """pred, target: [N, C]; target rows sum to 1."""
    n, c = pred.shape
    truth = target.argmax(1)
    top = np.argsort(-pred, axis=1)
    relevant = target > 0
    hits3 = np.take_along_axis(relevant, top[:, :3], 1).sum(1)
    gains = np.take_along_axis(target, top[:, :3], 1)
    discounts = 1.0 / np.log2(np.arange(2, 5))
    ideal = (-np.sort(-target, axis=1)[:, :3] * discounts).sum(1)
    f1s = []
    for k in range(c):
        tp = np.sum((top[:, 0] == k) & (truth == k))
        fp = np.sum((top[:, 0] == k) & (truth != k))
        fn = np.sum((top[:, 0] != k) & (truth == k))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {
        "accuracy": float(np.mean(top[:, 0] == truth)),
        "recall@3": float(np.mean(hits3 / relevant.sum(1))),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "ndcg@3": float(np.mean((gains * discounts).sum(1) / ideal)),
        "cross_entropy": float(np.mean(-(target * np.log(np.clip(pred, 1e-12, 1))).sum(1))),
        "n": int(n),
    }


def normalise(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows that have a target, those rows normalised)."""
    mass = targets.sum(1)
    keep = mass > 0
    return keep, targets[keep] / mass[keep, None]


def tune_alpha(past: np.ndarray, targets: np.ndarray, prior: np.ndarray) -> float:
    """The smoothing whose baseline has the lowest cross-entropy on these (validation) rows."""
    keep, t = normalise(targets)
    if not keep.any():
        return 1.0
    scores = {a: layer_metrics(smoothed(past[keep], prior, a), t)["cross_entropy"] for a in ALPHAS}
    return min(scores, key=scores.get)


def compare(model_probs: dict[str, np.ndarray], past: dict[str, np.ndarray], targets: dict[str, np.ndarray],
            prior: dict[str, np.ndarray], alpha: dict[str, float]) -> dict:
    """{"layers": {layer: {"model": {...}, "baseline": {...}}}} on the same rows."""
    out = {}
    for layer in LAYERS:
        keep, t = normalise(targets[layer])
        if not keep.any():
            empty = {**{m: None for m in METRICS}, "n": 0}
            out[layer] = {"model": empty, "baseline": empty}
            continue
        out[layer] = {
            "model": layer_metrics(model_probs[layer][keep], t),
            "baseline": layer_metrics(smoothed(past[layer][keep], prior[layer], alpha[layer]), t),
        }
    return {"layers": out}


def format_table(result: dict, title: str = "") -> str:
    lines = [title] if title else []
    lines.append(f"{'layer':8} {'':9} " + " ".join(f"{m:>13}" for m in METRICS))
    for layer in LAYERS:
        for who in ("model", "baseline"):
            row = result["layers"][layer][who]
            cells = (f"{row[m]:13.4f}" if row[m] is not None else f"{'n/a':>13}" for m in METRICS)
            lines.append(f"{layer if who == 'model' else '':8} {who:9} " + " ".join(cells))
    return "\n".join(lines)
