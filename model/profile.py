"""The profile model interface, the layer horizons, and the honest counting baseline.

A profile model maps user windows to three distributions (surface, middle, deep), each over its
taxonomy level. The worker only sees this interface; `baseline` and the learned model are
interchangeable by one setting.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from model.categories import Infer, distributions, soft_counts
from model.recommend.recommender import Recommender
from model.taxonomy import LAYERS, Taxonomy
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


@dataclass(frozen=True)
class BaselineParams:
    """One layer's counting baseline: a mix of the three past horizons' smoothed distributions,
    sharpened or flattened by a temperature. Tuned on validation users by the trainer."""

    mix: tuple[float, float, float]  # weights of the surface, middle and deep horizons (LAYERS order)
    alpha: float = 1.0
    temperature: float = 1.0

    @classmethod
    def own_horizon(cls, layer: str, alpha: float = 1.0) -> "BaselineParams":
        return cls(tuple(1.0 if h == layer else 0.0 for h in LAYERS), alpha)

    def probs(self, past: np.ndarray, prior: np.ndarray) -> np.ndarray:
        return baseline_probs(past, prior, np.asarray(self.mix), self.alpha, self.temperature)


def baseline_probs(past, prior, mix, alpha, temperature):
    """p over a layer's labels from its past counts [..., 3 horizons, C]: the horizons' smoothed
    distributions mixed by `mix` [3], then tempered. numpy arrays and torch tensors alike."""
    mixed = (mix[:, None] * smoothed(past, prior, alpha)).sum(axis=-2)
    sharp = mixed.clip(1e-12) ** (1.0 / temperature)
    return sharp / sharp.sum(axis=-1, keepdims=True)


@dataclass
class Counted:
    """A window's categories, counted: per layer the entries' label rows [N, C] (soft where
    inferred), which rows were inferred [N], the past horizons' weights [N], and the labels counted
    over each of the three past horizons [3, C] — what the baseline and the model's features read."""

    rows: dict[str, np.ndarray]
    inferred: dict[str, np.ndarray]
    weights: dict[str, np.ndarray]
    past: dict[str, np.ndarray]

    def inferred_share(self) -> dict[str, float]:
        """Per layer, the share of its own horizon's evidence that was inferred."""
        share = {}
        for layer in LAYERS:
            evidence = self.weights[layer] * self.rows[layer].sum(1)
            total = evidence.sum()
            share[layer] = float((evidence * self.inferred[layer]).sum() / total) if total > 0 else 0.0
        return share


def count_window(entries: Sequence[Entry], taxonomy: Taxonomy, horizons: Horizons,
                 infer: Optional[Infer] = None) -> Counted:
    rows, inferred = distributions(entries, taxonomy, infer)
    w = layer_weights(np.array([e.ts for e in entries], dtype=float), horizons)
    past = {layer: np.stack([soft_counts(rows[layer], w[h]) for h in LAYERS]) for layer in LAYERS}
    return Counted(rows, inferred, w, past)


class ProfileModel(ABC):
    """What the worker runs: windows in, one distribution per layer out."""

    version: str
    taxonomy: Taxonomy
    horizons: Horizons
    infer: Optional[Infer] = None  # categories from text for entries that name none (or part)
    recommender: Recommender  # ranks the catalogue for the profiled users

    @abstractmethod
    def predict(self, windows: Sequence[Sequence[Entry]]) -> list[dict[str, np.ndarray]]:
        """For each window (entries sorted by ts), {layer: probabilities over its labels}."""

    def inferred_share(self, entries: Sequence[Entry]) -> dict[str, float]:
        """Per layer, the share of its evidence that rests on categories inferred from text
        (0 everywhere for a model without a categorizer: it counts the categories events carry)."""
        if self.infer is None:
            return {layer: 0.0 for layer in LAYERS}
        return count_window(entries, self.taxonomy, self.horizons, self.infer).inferred_share()

    def explain(self, entries: Sequence[Entry], k: int = 5) -> dict[str, list[str]]:
        """jieba keywords per layer, from the entries in that layer's horizon."""
        w = layer_weights(np.array([e.ts for e in entries], dtype=float), self.horizons)
        return {layer: keywords((e.tokens or [] for e in entries), k, w[layer]) for layer in LAYERS}


class BaselineModel(ProfileModel):
    """Each layer's category distribution counted over the past horizons, smoothed toward a prior.

    p = (counts + alpha * prior) / (sum(counts) + alpha) per horizon, mixed and tempered as
    BaselineParams says (by default: the layer's own horizon alone). With no labelled events the
    profile is the prior itself. The trainer fits the prior and tunes the parameters on data.
    """

    def __init__(
        self,
        taxonomy: Taxonomy,
        horizons: Horizons = Horizons(),
        params: dict[str, BaselineParams] | None = None,
        prior: dict[str, np.ndarray] | None = None,
        infer: Optional[Infer] = None,
    ):
        self.taxonomy = taxonomy
        self.horizons = horizons
        self.params = params or {layer: BaselineParams.own_horizon(layer) for layer in LAYERS}
        self.prior = prior or {
            layer: np.full(len(labels), 1.0 / len(labels)) for layer, labels in taxonomy.labels.items()
        }
        self.infer = infer
        self.version = f"baseline-{taxonomy.name}"
        self.recommender = Recommender.interest_only(taxonomy, self.prior, infer)

    def predict(self, windows: Sequence[Sequence[Entry]]) -> list[dict[str, np.ndarray]]:
        out = []
        for entries in windows:
            past = count_window(entries, self.taxonomy, self.horizons, self.infer).past
            out.append({layer: self.params[layer].probs(past[layer], self.prior[layer]) for layer in LAYERS})
        return out
