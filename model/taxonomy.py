"""The three-level category taxonomy (deep -> middle -> surface), loaded from a data file.

File format (JSON): {"name", "levels": ["deep", "middle", "surface"],
"tree": {deep: {middle: {surface: [example words, ...]}}}}. Labels are unique per level.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Optional, Union

LAYERS = ("surface", "middle", "deep")
# The order of an event's (or item's) category path, and each layer's position in it.
PATH = ("deep", "middle", "surface")
PATH_INDEX = {level: i for i, level in enumerate(PATH)}

DEFAULT_TAXONOMY = "taxonomy.zh.json"


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
        for d, middles in self.tree.items():
            deep.append(d)
            for m, surfaces in middles.items():
                middle.append(m)
                self.parent[m] = d
                for s, words in surfaces.items():
                    surface.append(s)
                    self.parent[s] = m
                    self.words[s] = list(words)
        self.labels = {"deep": deep, "middle": middle, "surface": surface}
        for layer, labels in self.labels.items():
            if len(set(labels)) != len(labels):
                raise ValueError(f"taxonomy {self.name!r}: duplicate {layer} labels")
        self.index = {layer: {lab: i for i, lab in enumerate(labs)} for layer, labs in self.labels.items()}

    def path(self, surface: str) -> list[str]:
        """deep, middle, surface for a surface label."""
        middle = self.parent[surface]
        return [self.parent[middle], middle, surface]

    def label_ids(self, categories: Optional[list[str]]) -> Optional[dict[str, int]]:
        """Map an event's category path to label ids per layer; None when it is not in the taxonomy.

        A path shorter than three levels yields the layers it has.
        """
        if not categories:
            return None
        ids = {}
        for layer, pos in PATH_INDEX.items():
            if pos < len(categories) and categories[pos] in self.index[layer]:
                ids[layer] = self.index[layer][categories[pos]]
        return ids or None

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
        doc = json.loads(text)
        if doc.get("levels", list(PATH)) != list(PATH):
            raise ValueError("taxonomy levels must be deep, middle, surface")
        return cls(doc.get("name", "taxonomy"), doc["tree"])
