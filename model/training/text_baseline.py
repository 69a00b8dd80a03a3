"""The text yardstick: a linear text classifier per layer (TF-IDF over jieba unigrams and bigrams,
multinomial logistic regression), trained on the labelled events of training users. Its per-event
predictions stand in for every event's categories (given or not) and are counted over the
horizons exactly like the counting baseline's, with their own tuned mix, smoothing and temperature.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from model.categories import known_labels
from model.taxonomy import LAYERS, Taxonomy
from state.window import Entry


def _grams(tokens: Sequence[str]) -> list[str]:
    return list(tokens) + [f"{a} {b}" for a, b in zip(tokens, tokens[1:])]


class TextBaseline:
    def __init__(self, taxonomy: Taxonomy, max_texts: int = 100_000, max_features: int = 20_000, seed: int = 0):
        self.taxonomy = taxonomy
        self.max_texts = max_texts
        self.seed = seed
        # The most frequent n-grams only: the weights are features x labels, and a taxonomy of a
        # thousand surface labels over an unbounded vocabulary would not fit in memory.
        self.vectorizer = TfidfVectorizer(analyzer=_grams, sublinear_tf=True, max_features=max_features)
        self.classifiers: dict[str, LogisticRegression] = {}
        self.cache: dict[str, dict[str, np.ndarray]] = {}

    def fit(self, entries: Sequence[Entry]) -> "TextBaseline":
        """One row per distinct (text, label) of the labelled entries; at most `max_texts` texts."""
        labelled = {}
        for e in entries:
            if e.tokens and e.cats:
                labelled.setdefault(e.text, e)
        texts = sorted(labelled)
        if len(texts) > self.max_texts:
            keep = np.random.default_rng(self.seed).choice(len(texts), self.max_texts, replace=False)
            texts = [texts[i] for i in sorted(keep)]
        reps = [labelled[t] for t in texts]
        x = self.vectorizer.fit_transform([e.tokens for e in reps]) if reps else None
        rows, known = known_labels(reps, self.taxonomy)
        for layer in LAYERS:
            y = rows[layer].argmax(1)[known[layer]]
            if len(set(y)) >= 2:
                clf = LogisticRegression(max_iter=100, C=4.0)
                self.classifiers[layer] = clf.fit(x[known[layer]], y)
        return self

    def predict(self, entries: Sequence[Entry]) -> dict[str, np.ndarray]:
        """Rows of P(label) per layer for each entry, from its text alone (the prior of the
        training labels where the entry has no text)."""
        todo = sorted({e.text for e in entries if e.text not in self.cache})
        if todo:
            by_text = {e.text: e for e in entries}
            x = self.vectorizer.transform([by_text[t].tokens for t in todo])
            for layer in LAYERS:
                n = len(self.taxonomy.labels[layer])
                probs = np.full((len(todo), n), 1.0 / n)
                clf = self.classifiers.get(layer)
                if clf is not None:
                    probs = np.zeros((len(todo), n))
                    probs[:, clf.classes_] = clf.predict_proba(x)
                for t, row in zip(todo, probs):
                    self.cache.setdefault(t, {})[layer] = row
        return {layer: np.stack([self.cache[e.text][layer] for e in entries]) if entries
                else np.zeros((0, len(self.taxonomy.labels[layer]))) for layer in LAYERS}
