"""Window entries: what one event becomes in a user's window, for the worker and the trainer alike.

`make_entry` is what the ingest path stores: the event's own fields, scrubbed and bounded.
`complete` is what a model reads: the entry with its item's text and categories where the event
had none (items may reach the catalogue after their events, so the profiler completes entries at
inference time, not at ingest) and its text's jieba tokens (cached by text in model/text.py).
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from model.text import clean, scrub, segment
from state.event import Event
from state.items import ItemIndex
from state.window import Entry


# Short texts (titles, searches) and category labels repeat across events, and an item's title
# across every profile of the users who browsed it: cleaned once. Only short ones, so that a
# producer of long unique texts cannot make the cache large.
CACHED_TEXT_CHARS = 256
_clean_short = lru_cache(maxsize=16_384)(clean)
_scrub_label = lru_cache(maxsize=4_096)(scrub)


def _cleaned(text: str, max_text_chars: int) -> str:
    return (_clean_short if len(text) <= CACHED_TEXT_CHARS else clean)(text, max_text_chars)


def complete(entry: Entry, items: ItemIndex, max_text_chars: int) -> Entry:
    """The entry with its missing text and categories taken from its item, when the catalogue has
    it, and the tokens of its text."""
    changes: dict = {}
    if entry.item and not (entry.text and entry.cats):
        item = items.get(entry.item)
        if item is not None:
            if not entry.text:
                changes["text"] = _cleaned(item.title, max_text_chars)
            if not entry.cats and item.categories:
                changes["cats"] = list(item.categories)
    text = changes.get("text", entry.text)
    if text and not entry.tokens:
        changes["tokens"] = list(segment(text))
    return replace(entry, **changes) if changes else entry


def make_entry(event: Event, max_text_chars: int) -> Entry:
    """A window entry: the event's scrubbed, bounded text, its categories and attributes."""
    return Entry(id=event.event_id, ts=event.ts_ms, type=event.type, item=event.item_id,
                 text=_cleaned(event.text, max_text_chars) if event.text else "",
                 cats=[_scrub_label(c) for c in event.categories] if event.categories else None,
                 attrs=event.attrs.model_dump(exclude_none=True))
