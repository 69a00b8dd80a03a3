"""Text preprocessing shared by ingestion and the models: normalise, scrub PII, bound, segment.

Imports no torch: the ingest path uses it on every event.
"""
from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from importlib import resources
from typing import Iterable, Optional

import jieba

jieba.setLogLevel(logging.WARNING)

# Phone numbers (mainland mobile, and +country forms), e-mail addresses and PRC ID-card
# numbers are removed before anything is stored. Order matters: ID cards before phones.
_PII = [
    (re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "<ID>"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "<EMAIL>"),
    (re.compile(r"(?<!\d)(?:\+?86[- ]?)?1[3-9]\d[- ]?\d{4}[- ]?\d{4}(?!\d)"), "<PHONE>"),
    (re.compile(r"(?<![\w])\+\d{1,3}[- ]?\d{2,4}[- ]?\d{3,4}[- ]?\d{3,4}(?!\d)"), "<PHONE>"),
]
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[\w\u4e00-\u9fff]")


def normalise(text: str) -> str:
    """Full-width to half-width (NFKC), lower case, collapsed whitespace."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def scrub(text: str) -> str:
    for pattern, token in _PII:
        text = pattern.sub(token, text)
    return text


def clean(text: str, max_chars: int = 512) -> str:
    """What ingestion stores: normalised, scrubbed, cut to `max_chars` (never rejected)."""
    return scrub(normalise(text))[:max_chars]


def warm_up() -> None:
    """Load jieba's dictionary now (about a second) rather than inside the first batch."""
    jieba.initialize()


def load_user_dict(path: str) -> None:
    """The user dictionary hook: one `word [freq [tag]]` a line, jieba's format."""
    jieba.load_userdict(path)
    segment.cache_clear()


@lru_cache(maxsize=200_000)
def segment(text: str) -> tuple[str, ...]:
    """jieba tokens (precise mode) without whitespace or pure punctuation.

    Cached: item titles repeat across events, and jieba costs ~150 us a text.
    """
    return tuple(t for t in jieba.lcut(text) if t.strip() and _WORD.search(t))


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    data = resources.files("model").joinpath("data/stopwords.txt").read_text(encoding="utf-8")
    return frozenset(w.strip() for w in data.splitlines() if w.strip() and not w.startswith("#"))


def keywords(token_lists: Iterable[Iterable[str]], k: int = 5, weights: Optional[Iterable[float]] = None) -> list[str]:
    """The k most frequent (weighted) tokens that say something: no stopwords, no 1-char tokens."""
    stop = stopwords()
    counts: Counter[str] = Counter()
    weights = list(weights) if weights is not None else None
    for i, tokens in enumerate(token_lists):
        w = weights[i] if weights is not None else 1.0
        if w <= 0:
            continue
        for t in tokens:
            if len(t) > 1 and t not in stop and not t.isdigit() and not t.startswith("<"):
                counts[t] += w
    return [t for t, _ in counts.most_common(k)]
