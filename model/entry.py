"""Window entries: what one event becomes in a user's window, for the worker and the trainer alike."""
from __future__ import annotations

from model.text import clean, segment
from state.event import Event
from state.items import ItemIndex


def make_entry(event: Event, items: ItemIndex, max_text_chars: int) -> dict:
    """A window entry: scrubbed, bounded, segmented text; an item's text and categories fill gaps."""
    item = items.get(event.item_id) if event.item_id else None
    text = event.text or (item.title if item else "")
    text = clean(text, max_text_chars) if text else ""
    cats = event.categories or (item.categories if item and item.categories else None)
    return {
        "id": event.event_id,
        "ts": event.ts_ms,
        "type": event.type,
        "item": event.item_id,
        "text": text,
        "tokens": list(segment(text)) if text else [],
        "cats": cats,
        "attrs": event.attrs.model_dump(exclude_none=True),
    }


def resolve_entry(entry: dict, items: ItemIndex, max_text_chars: int) -> dict:
    """An entry whose item was unknown at ingest, completed from the catalogue if it is known now."""
    if entry["text"] and entry["cats"] or not entry["item"]:
        return entry
    item = items.get(entry["item"])
    if item is None:
        return entry
    resolved = dict(entry)
    if not entry["text"] and item.title:
        resolved["text"] = clean(item.title, max_text_chars)
        resolved["tokens"] = list(segment(resolved["text"]))
    if not entry["cats"] and item.categories:
        resolved["cats"] = item.categories
    return resolved
