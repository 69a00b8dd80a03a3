"""The three-level category taxonomy (deep -> middle -> surface), loaded from a data file.

File format (JSON): {"name", "levels": ["deep", "middle", "surface"],
"tree": {deep: {middle: {surface: [example words, ...]}}}}. Labels are unique per level.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Union

LAYERS = ("surface", "middle", "deep")
# The order of an event's (or item's) category path, and each layer's position in it.
PATH = ("deep", "middle", "surface")
PATH_INDEX = {level: i for i, level in enumerate(PATH)}

DEFAULT_TAXONOMY = "taxonomy.zh.json"


class TaxonomyError(ValueError):
    """A taxonomy file that is not a three-level tree of unique labels."""


@dataclass
class Taxonomy:
    name: str
    tree: dict
    labels: dict[str, list[str]] = field(init=False)
    index: dict[str, dict[str, int]] = field(init=False)
    parent: dict[str, str] = field(init=False)
    words: dict[str, list[str]] = field(init=False)

    def __post_init__(self) -> None:
        deep, middle, surface = [], [], []
        self.parent, self.words = {}, {}
        if not isinstance(self.tree, dict) or not self.tree:
            raise TaxonomyError("`tree` must map deep labels to their middle labels")
        for d, middles in self.tree.items():
            deep.append(d)
            if not isinstance(middles, dict) or not middles:
                raise TaxonomyError(f"deep label {d!r} has no middle labels (every branch needs three levels)")
            for m, surfaces in middles.items():
                middle.append(m)
                self.parent[m] = d
                if not isinstance(surfaces, dict) or not surfaces:
                    raise TaxonomyError(f"middle label {m!r} has no surface labels (every branch needs three levels)")
                for s, words in surfaces.items():
                    if not isinstance(words, list):
                        raise TaxonomyError(f"surface label {s!r} must map to a list of example words")
                    surface.append(s)
                    self.parent[s] = m
                    self.words[s] = list(words)
        self.labels = {"deep": deep, "middle": middle, "surface": surface}
        for layer, labels in self.labels.items():
            dupes = sorted({x for x in labels if labels.count(x) > 1})
            if dupes:
                raise TaxonomyError(f"duplicate {layer} label(s) {dupes[:3]}: labels must be unique per level")
        self.index = {layer: {lab: i for i, lab in enumerate(labs)} for layer, labs in self.labels.items()}

    def path(self, surface: str) -> list[str]:
        """deep, middle, surface for a surface label."""
        middle = self.parent[surface]
        return [self.parent[middle], middle, surface]

    def to_dict(self) -> dict:
        return {"name": self.name, "levels": list(PATH), "tree": self.tree}

    def save(self, path: Union[str, Path]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Union[str, Path, None] = None) -> "Taxonomy":
        """From a file; None means the shipped Chinese taxonomy."""
        if path is None:
            text = resources.files("model").joinpath("data", DEFAULT_TAXONOMY).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TaxonomyError(f"not JSON: {exc}") from None
        if not isinstance(doc, dict) or "tree" not in doc:
            raise TaxonomyError('expected {"name", "levels": ["deep", "middle", "surface"], "tree": {...}}')
        if doc.get("levels", list(PATH)) != list(PATH):
            raise TaxonomyError("taxonomy levels must be deep, middle, surface")
        return cls(doc.get("name", "taxonomy"), doc["tree"])
