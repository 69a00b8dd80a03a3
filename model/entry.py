"""Window entries: what one event becomes in a user's window, for the worker and the trainer alike.

`make_entry` is what the ingest path stores: the event's own fields, scrubbed and bounded.
`complete` is what a model reads: the entry with its item's text and categories where the event
had none (items may reach the catalogue after their events, so the profiler completes entries at
inference time, not at ingest) and its text's jieba tokens (cached by text in model/text.py).
"""
from __future__ import annotations

from dataclasses import replace

from model.text import clean, scrub, segment
from state.event import Event
from state.items import ItemIndex
from state.window import Entry


def complete(entry: Entry, items: ItemIndex, max_text_chars: int) -> Entry:
    """The entry with its missing text and categories taken from its item, when the catalogue has
    it, and the tokens of its text."""
    changes: dict = {}
    if entry.item and not (entry.text and entry.cats):
        item = items.get(entry.item)
        if item is not None:
            if not entry.text:
                changes["text"] = clean(item.title, max_text_chars)
            if not entry.cats and item.categories:
                changes["cats"] = list(item.categories)
    text = changes.get("text", entry.text)
    if text and not entry.tokens:
        changes["tokens"] = list(segment(text))
    return replace(entry, **changes) if changes else entry


def make_entry(event: Event, max_text_chars: int) -> Entry:
    """A window entry: the event's scrubbed, bounded text, its categories and attributes."""
    return Entry(id=event.event_id, ts=event.ts_ms, type=event.type, item=event.item_id,
                 text=clean(event.text, max_text_chars) if event.text else "",
                 cats=[scrub(c) for c in event.categories] if event.categories else None,
                 attrs=event.attrs.model_dump(exclude_none=True))
