"""Events for training: read, validated like the worker does, turned into per-user histories of
window entries; and the two input ablations, categories hidden and text blanked."""
from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

from model.entry import complete, make_entry
from state.event import Item, Rejected, parse_event
from state.items import ItemIndex
from state.window import Entry

Histories = dict[str, list[Entry]]


def read_jsonl(path: Path) -> Iterator[str]:
    """The file's lines, read lazily: a million events need not sit in memory twice."""
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            yield line.rstrip("\n")


def load_items(lines: Iterable[str]) -> ItemIndex:
    index = ItemIndex()
    for line in lines:
        if line.strip():
            index.put(Item.model_validate_json(line))
    return index


def load_histories(lines: Iterable[str], items: Optional[ItemIndex] = None, max_text_chars: int = 512,
                   max_users: Optional[int] = None, progress: Optional[Callable[[int], None]] = None,
                   every: int = 100_000) -> tuple[Histories, int]:
    """Valid events by user, as window entries sorted by time; and how many lines were invalid.
    `max_users`: keep that many users, chosen by a hash of their id (the same ones every run).
    `progress`: called with the number of lines read, every `every` lines."""
    items = items or ItemIndex()
    users: Histories = {}
    seen: set[str] = set()
    invalid = 0
    for n, line in enumerate(lines, 1):
        if progress is not None and n % every == 0:
            progress(n)
        if not line.strip():
            continue
        try:
            event = parse_event(line.encode("utf-8"), max_future_s=float("inf"))
        except Rejected:
            invalid += 1
            continue
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        users.setdefault(event.user_id, []).append(complete(make_entry(event, max_text_chars), items, max_text_chars))
    for entries in users.values():
        entries.sort(key=lambda e: e.ts)
    if max_users is not None and len(users) > max_users:
        keep = sorted(users, key=lambda u: hashlib.blake2b(u.encode(), digest_size=8).digest())[:max_users]
        users = {u: users[u] for u in sorted(keep)}
    return users, invalid


def _picked(event_id: str, fraction: float, seed: int) -> bool:
    """A stable coin per (event, seed): the same events lose their categories in every run."""
    h = hashlib.blake2b(f"{seed}:{event_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2 ** 64 < fraction


def hide_categories(histories: Histories, fraction: float, seed: int) -> Histories:
    """Copies in which `fraction` of the events (chosen per seed) carry no categories."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"--hide-categories must be within [0, 1], got {fraction}")
    if fraction == 0.0:
        return histories
    return {u: [replace(e, cats=None) if e.cats and _picked(e.id, fraction, seed) else e for e in entries]
            for u, entries in histories.items()}


def blank_text(histories: Histories) -> Histories:
    """Copies with every event's text removed: the ablation that shows what text adds."""
    return {u: [replace(e, text="", tokens=[]) for e in entries] for u, entries in histories.items()}
