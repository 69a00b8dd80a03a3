"""Window entries: what one event becomes in a user's window, for the worker and the trainer alike.

One builder: an entry is made from the event and completed from the item catalogue (an event with
only `item_id` takes its text and categories from the item). The profiler completes entries again
at inference time, for items that reached the catalogue after their events.
"""
from __future__ import annotations

from dataclasses import replace

from model.text import clean, scrub, segment
from state.event import Event
from state.items import ItemIndex
from state.window import Entry


def complete(entry: Entry, items: ItemIndex, max_text_chars: int) -> Entry:
    """The entry with its missing text and categories taken from its item, when the catalogue has it."""
    if entry.text and entry.cats or not entry.item:
        return entry
    item = items.get(entry.item)
    if item is None:
        return entry
    text = entry.text or clean(item.title, max_text_chars)
    return replace(entry, text=text, tokens=entry.tokens if entry.text else list(segment(text)),
                   cats=entry.cats or item.categories or None)


def make_entry(event: Event, items: ItemIndex, max_text_chars: int) -> Entry:
    """A window entry: scrubbed, bounded, segmented text; the item's text and categories fill gaps."""
    text = clean(event.text, max_text_chars) if event.text else ""
    entry = Entry(id=event.event_id, ts=event.ts_ms, type=event.type, item=event.item_id, text=text,
                  tokens=list(segment(text)) if text else [],
                  cats=[scrub(c) for c in event.categories] if event.categories else None,
                  attrs=event.attrs.model_dump(exclude_none=True))
    return complete(entry, items, max_text_chars)
