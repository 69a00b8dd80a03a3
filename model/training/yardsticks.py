"""The two yardsticks every model is scored against, tuned on validation users:

- baseline: each layer's categories counted over the past horizons (soft counts where categories
  were inferred), smoothed toward the training prior, with a tuned mix of horizons, smoothing and
  temperature per layer — what the model's own base starts from;
- text_baseline: the same counting over a linear text classifier's per-event predictions
  (model/training/text_baseline.py), which stand in for every event's categories.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np

from model.categories import Infer
from model.profile import BaselineParams, Horizons, count_window
from model.taxonomy import LAYERS, Taxonomy
from model.training.evaluate import normalise, tune_baseline
from model.training.samples import Sample, stack_targets
from model.training.text_baseline import TextBaseline
from state.window import Entry


def past_matrix(windows: Sequence[Sequence[Entry]], taxonomy: Taxonomy, horizons: Horizons,
                infer: Optional[Infer]) -> dict[str, np.ndarray]:
    """Per layer [N, 3 horizons, C]: each window's (soft) past counts."""
    pasts = [count_window(w, taxonomy, horizons, infer).past for w in windows]
    return {layer: np.stack([p[layer] for p in pasts]) for layer in LAYERS}


def without_categories(window: Sequence[Entry]) -> list[Entry]:
    return [replace(e, cats=None) for e in window]


def training_prior(samples: list[Sample]) -> dict[str, np.ndarray]:
    """Each layer's label distribution over the training targets (lightly smoothed)."""
    targets = stack_targets(samples)
    out = {}
    for layer in LAYERS:
        keep, t = normalise(targets[layer])
        total = t.sum(0) if keep.any() else np.zeros(targets[layer].shape[1])
        out[layer] = (total + 1e-3) / (total.sum() + 1e-3 * len(total))
    return out


@dataclass
class Yardsticks:
    taxonomy: Taxonomy
    horizons: Horizons
    prior: dict[str, np.ndarray]
    infer: Optional[Infer]
    baseline: dict[str, BaselineParams]
    text: TextBaseline
    text_params: dict[str, BaselineParams]

    @classmethod
    def fit(cls, labelled: Sequence[Entry], train: list[Sample], val: list[Sample], taxonomy: Taxonomy,
            horizons: Horizons, infer: Optional[Infer], seed: int) -> "Yardsticks":
        """`labelled`: the training users' entries with the categories they carry (the text
        classifier learns from them); `val`: the samples the parameters are tuned on."""
        prior = training_prior(train)
        targets = stack_targets(val)
        past = past_matrix([s.window for s in val], taxonomy, horizons, infer)
        baseline = {layer: tune_baseline(past[layer], targets[layer], prior[layer]) for layer in LAYERS}
        text = TextBaseline(taxonomy, seed=seed).fit(labelled)
        text_past = past_matrix([without_categories(s.window) for s in val], taxonomy, horizons, text.predict)
        text_params = {layer: tune_baseline(text_past[layer], targets[layer], prior[layer]) for layer in LAYERS}
        return cls(taxonomy, horizons, prior, infer, baseline, text, text_params)

    def probs(self, samples: list[Sample]) -> dict[str, dict[str, np.ndarray]]:
        """{"baseline": {layer: [N, C]}, "text_baseline": {...}} on these samples."""
        past = past_matrix([s.window for s in samples], self.taxonomy, self.horizons, self.infer)
        text_past = past_matrix([without_categories(s.window) for s in samples], self.taxonomy, self.horizons,
                                self.text.predict)
        return {
            "baseline": {layer: self.baseline[layer].probs(past[layer], self.prior[layer]) for layer in LAYERS},
            "text_baseline": {layer: self.text_params[layer].probs(text_past[layer], self.prior[layer])
                              for layer in LAYERS},
        }
