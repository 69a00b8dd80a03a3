"""The profile model interface, the layer horizons, and the honest counting baseline.

A profile model maps user windows to three distributions (surface, middle, deep), each over its
taxonomy level. The worker only sees this interface; `baseline` and the learned model are
interchangeable by one setting.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from model.taxonomy import LAYERS, PATH_INDEX, Taxonomy
from model.text import keywords
from state.window import Entry


@dataclass(frozen=True)
class Horizons:
    """How far back (and, for training targets, forward) each layer looks, in event time."""

    session_gap_ms: int = 30 * 60 * 1000  # surface: the current session ends at a gap this long
    middle_ms: int = 14 * 24 * 3600 * 1000  # middle: days to weeks
    deep_half_life_ms: int = 30 * 24 * 3600 * 1000  # deep: whole history, decayed


def horizon_weights(ts: np.ndarray, anchor: float, horizons: Horizons, forward: bool = False) -> dict[str, np.ndarray]:
    """Per-entry weights of each layer's horizon, measured from `anchor` away into the past
    (`forward` False: the profile's inputs) or into the future (True: the training targets).

    `ts` is sorted ascending (epoch ms). Surface: the session nearest the anchor (entries up to
    the first gap of `session_gap_ms` between two entries); middle: the entries within
    `middle_ms` of the anchor; deep: every entry, halved every `deep_half_life_ms` away from it.
    """
    if len(ts) == 0:
        return {layer: np.zeros(0) for layer in LAYERS}
    away = ts if forward else ts[::-1]  # ordered from the anchor outwards
    distance = np.abs(away - anchor)
    breaks = np.nonzero(np.abs(np.diff(away)) > horizons.session_gap_ms)[0]
    surface = (np.arange(len(away)) <= (breaks[0] if len(breaks) else len(away))).astype(float)
    weights = {
        "surface": surface,
        "middle": (distance <= horizons.middle_ms).astype(float),
        "deep": np.power(0.5, distance / horizons.deep_half_life_ms),
    }
    return weights if forward else {layer: w[::-1] for layer, w in weights.items()}


def layer_weights(ts: np.ndarray, horizons: Horizons) -> dict[str, np.ndarray]:
    """The past horizons, measured back from the newest entry: what a profile summarises."""
    return horizon_weights(ts, ts[-1] if len(ts) else 0.0, horizons)


def smoothed(counts, prior, alpha):
    """The smoothed counting baseline, p = (counts + alpha * prior) / (sum(counts) + alpha), over the
    last axis. The one definition: numpy arrays (serving, evaluation) and torch tensors (the model) alike."""
    return (counts + alpha * prior) / (counts.sum(axis=-1, keepdims=True) + alpha)


def category_counts(entries: Sequence[Entry], weights: np.ndarray, taxonomy: Taxonomy, layer: str) -> np.ndarray:
    """Weighted label counts of one layer over the entries that carry categories."""
    counts = np.zeros(len(taxonomy.labels[layer]))
    pos, index = PATH_INDEX[layer], taxonomy.index[layer]
    for entry, w in zip(entries, weights):
        cats = entry.cats
        if w > 0 and cats and pos < len(cats) and cats[pos] in index:
            counts[index[cats[pos]]] += w
    return counts


class ProfileModel(ABC):
    """What the worker runs: windows in, one distribution per layer out."""

    version: str
    taxonomy: Taxonomy
    horizons: Horizons

    @abstractmethod
    def predict(self, windows: Sequence[Sequence[Entry]]) -> list[dict[str, np.ndarray]]:
        """For each window (entries sorted by ts), {layer: probabilities over its labels}."""

    def inferred_share(self, entries: Sequence[Entry]) -> dict[str, float]:
        """Per layer, the share of its evidence that rests on categories inferred from text.

        The counting baseline infers nothing: it counts the categories events carry."""
        return {layer: 0.0 for layer in LAYERS}

    def explain(self, entries: Sequence[Entry], k: int = 5) -> dict[str, list[str]]:
        """jieba keywords per layer, from the entries in that layer's horizon."""
        w = layer_weights(np.array([e.ts for e in entries], dtype=float), self.horizons)
        return {layer: keywords((e.tokens or [] for e in entries), k, w[layer]) for layer in LAYERS}


class BaselineModel(ProfileModel):
    """Each layer's category distribution counted over its past horizon, smoothed toward a prior.

    p = (counts + alpha * prior) / (sum(counts) + alpha). With no labelled events the profile is
    the prior itself. `prior` defaults to uniform; the trainer fits it and alpha on data.
    """

    def __init__(
        self,
        taxonomy: Taxonomy,
        horizons: Horizons = Horizons(),
        alpha: float | dict[str, float] = 1.0,
        prior: dict[str, np.ndarray] | None = None,
    ):
        self.taxonomy = taxonomy
        self.horizons = horizons
        self.alpha = alpha if isinstance(alpha, dict) else {layer: alpha for layer in LAYERS}
        self.prior = prior or {
            layer: np.full(len(labels), 1.0 / len(labels)) for layer, labels in taxonomy.labels.items()
        }
        self.version = f"baseline-{taxonomy.name}"

    def predict(self, windows: Sequence[Sequence[Entry]]) -> list[dict[str, np.ndarray]]:
        out = []
        for entries in windows:
            w = layer_weights(np.array([e.ts for e in entries], dtype=float), self.horizons)
            dists = {}
            for layer in LAYERS:
                counts = category_counts(entries, w[layer], self.taxonomy, layer)
                dists[layer] = smoothed(counts, self.prior[layer], self.alpha[layer])
            out.append(dists)
        return out

