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

# PII (e-mail addresses, PRC ID-card numbers, phone numbers) is replaced before anything is
# stored. Every pattern is linear-time: a match may start only where a lookbehind says a run
# (of local-part chars, of digits) begins, so a long run is scanned from one start, not from
# each of its characters; a digit pattern may start at each digit group, but a try reads < 80 chars.
# No possessive quantifiers or atomic groups: they need Python 3.11, and we support 3.10.
PLACEHOLDERS = ("<EMAIL>", "<ID>", "<PHONE>")
_EMAIL, _ID, _PHONE = PLACEHOLDERS

# E-mail. "@" or the bracketed obfuscations "(at)"/"[at]" and "(dot)"/"[dot]"; the bare words
# "at"/"dot" are not taken ("meet at home dot ...": too many false positives in prose).
# The domain has a dot, is `localhost`, or is an address literal `[127.0.0.1]`. Labels are
# ASCII first, so "li@example.com请联系" stops at ".com"; otherwise any script (例子.中国).
_AT = r"(?:@|\s?[\[(](?i:at)[\])]\s?)"
_DOT = r"(?:\.|\s?[\[(](?i:dot)[\])]\s?)"
_A, _U = r"[A-Za-z0-9_-]+", r"[\w-]+"
_DOMAIN = (rf"(?:{_A}(?:{_DOT}{_A})+|{_U}(?:{_DOT}{_U})+|(?i:localhost)(?![\w-])"
           r"|\[(?i:ipv6:)?[0-9A-Fa-f:.]+\])")

# Digits may be split by up to 3 separators (space, dot, dashes, zero-width characters):
# "138 1234 5678", "110101 19900307 1234". `~` in a template stands for them. A match starts
# and ends at a digit-group edge, and must fit the structure (mobile 1[3-9] + 9 digits; ID
# region + date + sequence), so prices, years and 13-digit ISBNs stay.
_SEP = r"[ \t.\-\u00a0\u2010-\u2015\u2212\u3000\u200b-\u200d\u2060\ufeff]{0,3}"
_DATE = r"(?:0~[1-9]|1~[0-2])~(?:0~[1-9]|[12]~\d|3~[01])"  # MMDD
_REGION = r"[1-8]" + r"~\d" * 5
_ID18 = rf"{_REGION}~(?:1~[89]|2~0)~\d~\d~{_DATE}~\d~\d~\d~[\dXx]"
_ID15 = rf"{_REGION}~\d~\d~{_DATE}~\d~\d~\d"
_MOBILE = r"(?:(?:\(\+?86\)|\+86|0086|86)~)?1~[3-9]" + r"~\d" * 9
_INTL = r"(?:\(\+\d{1,3}\)|\+\d{1,3})(?:~\d){6,12}"  # +CC and 7-15 digits in all


def _digits(template: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\d)" + template.replace("~", _SEP) + r"(?!\d)")


# Order matters: e-mail first ("13812345678@163.com" is one address), ID cards before phones.
# The ASCII local part must not swallow the Chinese before it ("邮箱li@x.com"); a non-ASCII
# one takes its whole run (we cannot tell "我是张三" from a name). Each pattern runs only if its
# hint (a fast scan) finds something, so text without PII costs two scans, not five passes.
_AT_HINT, _DIGIT_HINT = re.compile(r"@|[\[(](?i:at)[\])]"), re.compile(r"\d")
_PII = [
    (_AT_HINT, re.compile(rf"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+{_AT}{_DOMAIN}"), _EMAIL),
    (_AT_HINT, re.compile(rf"(?<![\w.%+-])[\w.%+-]+{_AT}{_DOMAIN}"), _EMAIL),
    (_DIGIT_HINT, _digits(f"(?:{_ID18}|{_ID15})"), _ID),
    (_DIGIT_HINT, _digits(_INTL), _PHONE),  # before mobiles: "+1 415 555 2671" is no mobile
    (_DIGIT_HINT, _digits(_MOBILE), _PHONE),
]
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[\w\u4e00-\u9fff]")
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))
# jieba would cut "<PHONE>" into "<", "PHONE", ">": segment() cuts placeholders out first, and
# neither it nor keywords() lets a placeholder or its name through (stored text is lower case,
# so the upper-case names never clash with a real token).
_PLACEHOLDER_RE = re.compile("(?i)" + "|".join(map(re.escape, PLACEHOLDERS)))
_PLACEHOLDER_TOKENS = frozenset(PLACEHOLDERS) | {p[1:-1] for p in PLACEHOLDERS}
# Longer than any PII item we replace: what the pre-scrub cut may split stays out of the result.
_MARGIN = 256


def normalise(text: str) -> str:
    """Full-width to half-width (NFKC), lower case, no zero-width characters, collapsed whitespace."""
    text = unicodedata.normalize("NFKC", text.translate(_ZERO_WIDTH)).lower()
    return _SPACES.sub(" ", text).strip()


def scrub(text: str) -> str:
    """Replace PII by PLACEHOLDERS. Linear time; any str, lone surrogates included."""
    for hint, pattern, token in _PII:
        if hint.search(text):
            text = pattern.sub(token, text)
    return text


def _cut(text: str, max_chars: int) -> str:
    """Cut to max_chars, dropping a placeholder the cut split ("<PHO" would segment to "PHO")."""
    text = text[:max(max_chars, 0)]
    i = text.rfind("<", max(0, len(text) - max(map(len, PLACEHOLDERS)) + 1))
    if i >= 0 and text[i:] not in PLACEHOLDERS and any(p.startswith(text[i:]) for p in PLACEHOLDERS):
        text = text[:i]
    return text


def clean(text: str, max_chars: int = 512) -> str:
    """What ingestion stores: normalised, scrubbed, cut to `max_chars` (never rejected).

    Cut before scrubbing, so a long text costs no more than a short one. An item the cut splits
    sits in the last _MARGIN chars of the scrubbed window; if placeholders shrank the window so
    far that those would land within max_chars, scrub a window twice as long.
    """
    # NFKC expands a character to at most 18: a generous prefix is all a cut text can come from.
    text = normalise(text[: 18 * (max_chars + 4 * _MARGIN)])
    window = max_chars + _MARGIN
    while True:
        out = scrub(text[:window])
        if len(text) <= window or len(out) >= max_chars + _MARGIN:
            return _cut(out, max_chars)
        window *= 2


def warm_up() -> None:
    """Load jieba's dictionary now (about a second) rather than inside the first batch."""
    jieba.initialize()


def load_user_dict(path: str) -> None:
    """The user dictionary hook: one `word [freq [tag]]` a line, jieba's format."""
    jieba.load_userdict(path)
    segment.cache_clear()


@lru_cache(maxsize=200_000)
def segment(text: str) -> tuple[str, ...]:
    """jieba tokens (precise mode) without whitespace, pure punctuation or PII placeholders.

    Cached: item titles repeat across events, and jieba costs ~150 us a text.
    """
    pieces = _PLACEHOLDER_RE.split(text) if "<" in text else (text,)
    return tuple(
        t for piece in pieces for t in jieba.lcut(piece)
        if t.strip() and _WORD.search(t) and t not in _PLACEHOLDER_TOKENS
    )


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    data = resources.files("model").joinpath("data/stopwords.txt").read_text(encoding="utf-8")
    return frozenset(w.strip() for w in data.splitlines() if w.strip() and not w.startswith("#"))


def keywords(token_lists: Iterable[Iterable[str]], k: int = 5, weights: Optional[Iterable[float]] = None) -> list[str]:
    """The k most frequent (weighted) tokens that say something: no stopwords, no 1-char tokens,
    no placeholders."""
    stop = stopwords()
    counts: Counter[str] = Counter()
    weights = list(weights) if weights is not None else None
    for i, tokens in enumerate(token_lists):
        w = weights[i] if weights is not None else 1.0
        if w <= 0:
            continue
        for t in tokens:
            if (len(t) > 1 and t not in stop and not t.isdigit() and t not in _PLACEHOLDER_TOKENS
                    and "<" not in t and ">" not in t):
                counts[t] += w
    return [t for t, _ in counts.most_common(k)]
