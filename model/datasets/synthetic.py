"""Generated Chinese e-commerce / news / music events over the taxonomy, for demos, tests and training.

Each user has a long-term core (a few deep categories), mid-term habits inside them and a
session focus that is drawn anew for every session: mostly from the habits, sometimes an
exploration elsewhere, and the habits drift toward what the user explores. So the three
layers really do differ: the session focus is the surface, habits the middle, core the deep.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Iterator, Optional

from model.taxonomy import Taxonomy
from state.event import Item, iso_ms

_BROWSE = ["", "看看", "搜索", "新款", "热卖", "同款", "对比"]
_REVIEW_GOOD = ["质量很好", "物流很快", "性价比高", "非常满意", "会回购", "包装精美"]
_REVIEW_BAD = ["一般般", "有点失望", "和描述不符", "做工粗糙"]
_MODIFIERS = ["2026新款", "官方", "正品", "限量", "经典", "升级版", "旗舰店", "入门"]


@dataclass
class _User:
    user_id: str
    habits: dict[str, float]  # surface label -> weight (the mid-term interests)
    core: list[str]  # deep labels


def make_catalog(taxonomy: Taxonomy, rng: random.Random, per_category: int = 12) -> list[dict]:
    items = []
    for s_idx, surface in enumerate(taxonomy.labels["surface"]):
        words = taxonomy.words[surface]
        for j in range(per_category):
            title = " ".join([rng.choice(_MODIFIERS)] + rng.sample(words, k=min(3, len(words))))
            items.append(Item(item_id=f"sku-{s_idx:02d}{j:04d}", title=title, categories=taxonomy.path(surface),
                              attrs={"price": round(rng.uniform(5, 3000), 2)}).model_dump())
    return items


def _make_user(i: int, taxonomy: Taxonomy, catalogued: list[str], rng: random.Random) -> _User:
    deep = sorted({taxonomy.path(s)[0] for s in catalogued})
    core = rng.sample(deep, k=min(len(deep), rng.choice([1, 1, 2])))
    surfaces = [s for s in catalogued if taxonomy.path(s)[0] in core]
    picked = rng.sample(surfaces, k=min(len(surfaces), rng.randint(2, 4)))
    habits = {s: rng.uniform(0.5, 2.0) for s in picked}
    return _User(f"u{i:05d}", habits, core)


def _weighted(rng: random.Random, weights: dict[str, float]) -> str:
    labels = list(weights)
    return rng.choices(labels, weights=[weights[k] for k in labels])[0]


def generate(
    n_events: int,
    n_users: int,
    seed: int = 0,
    taxonomy: Optional[Taxonomy] = None,
    end_ms: Optional[int] = None,
    days: float = 60.0,
    item_only_share: float = 0.2,
    unlabelled_share: float = 0.1,
    items: Optional[list[dict]] = None,
    n_items: Optional[int] = None,
) -> tuple[list[dict], list[dict]]:
    """(catalogue items, events sorted by time). Deterministic for a seed and `end_ms`.
    `items`: a real catalogue (item_id, title, categories, attrs.price) to read instead of made-up titles;
    else `n_items` made-up ones (default 12 per surface category)."""
    taxonomy = taxonomy or Taxonomy.load()
    rng = random.Random(seed)
    end_ms = end_ms if end_ms is not None else int(time.time() * 1000)
    start_ms = end_ms - int(days * 86400_000)
    if items is None:
        per_category = -(-n_items // len(taxonomy.labels["surface"])) if n_items else 12
        items = make_catalog(taxonomy, rng, per_category)
    by_surface: dict[str, list[dict]] = {}
    for item in items:
        by_surface.setdefault(item["categories"][2], []).append(item)
    all_surfaces = [s for s in taxonomy.labels["surface"] if s in by_surface]
    users = [_make_user(i, taxonomy, all_surfaces, rng) for i in range(n_users)]

    # Spread the events over users unevenly (a few heavy users, many light ones).
    weights = [rng.paretovariate(1.5) for _ in users]
    counts = [max(3, int(n_events * w / sum(weights))) for w in weights]
    while sum(counts) > n_events and max(counts) > 3:
        counts[counts.index(max(counts))] -= 1
    for i in range(n_events - sum(counts)):
        counts[i % len(counts)] += 1
    events: list[dict] = []
    for user, count in zip(users, counts):
        events.extend(_user_events(user, count, rng, taxonomy, by_surface, all_surfaces, start_ms, end_ms,
                                   item_only_share, unlabelled_share))
    events.sort(key=lambda e: e["ts"])
    for e in events:
        e["ts"] = iso_ms(e["ts"])
    return items, events


def _user_events(user, count, rng, taxonomy, by_surface, all_surfaces, start_ms, end_ms,
                 item_only_share, unlabelled_share) -> Iterator[dict]:
    n_sessions = max(1, count // rng.randint(4, 10))
    session_starts = sorted(rng.uniform(start_ms, end_ms - 3600_000) for _ in range(n_sessions))
    per_session = [count // n_sessions + (1 if k < count % n_sessions else 0) for k in range(n_sessions)]
    seq = 0
    for t0, n in zip(session_starts, per_session):
        if rng.random() < 0.2:  # exploration: something new, which may become a habit
            focus = rng.choice(all_surfaces)
            user.habits[focus] = user.habits.get(focus, 0.0) + 0.6
        else:
            focus = _weighted(rng, user.habits)
        t = t0
        for _ in range(n):
            t += rng.uniform(10_000, 180_000)
            surface = focus if rng.random() < 0.8 else _weighted(rng, user.habits)
            item = rng.choice(by_surface[surface])
            kind = rng.choices(["browse", "purchase", "review"], weights=[70, 15, 15])[0]
            seq += 1
            yield _event(user.user_id, seq, kind, int(min(t, end_ms)), item, rng, item_only_share,
                         unlabelled_share)


def _event(user_id, seq, kind, ts, item, rng, item_only_share, unlabelled_share) -> dict:
    event = {"event_id": f"e-{user_id}-{seq:05d}", "user_id": user_id, "type": kind, "ts": ts,
             "item_id": item["item_id"]}
    if kind == "browse":
        event["attrs"] = {"dwell_ms": int(rng.expovariate(1 / 20_000))}
        text = f"{rng.choice(_BROWSE)} {item['title']}".strip()
    elif kind == "purchase":
        event["attrs"] = {"price": item["attrs"]["price"], "quantity": rng.randint(1, 3)}
        text = item["title"]
    else:
        rating = rng.choices([1, 2, 3, 4, 5], weights=[1, 1, 2, 4, 6])[0]
        event["attrs"] = {"rating": rating}
        text = f"{item['title']} {rng.choice(_REVIEW_GOOD if rating >= 4 else _REVIEW_BAD)}"
    if rng.random() >= item_only_share:
        event["text"] = text
        if rng.random() >= unlabelled_share:
            event["categories"] = list(item["categories"])
    return event

