"""A user's recent profile versions as the profile page shows them: per version its time and each
layer's top labels with their probabilities, plus the latest recommendation list.

Bounded per user (the last TRAIL_VERSIONS versions, TRAIL_LABELS labels a layer) and kept in any
bytes -> bytes mapping; the worker gives it a RocksDB store in its data dir (streams/trails.py).
Writing one version is one read and two writes of a few KiB, no model and no broker. Layers are
whatever the profile carries, so no taxonomy is needed here. No Kafka, no torch.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import MutableMapping, Optional

TRAIL_VERSIONS = 20
TRAIL_LABELS = 5  # the page charts labels that were in a layer's top 3; two more keep their lines going

_VERSIONS = b"v"  # key prefixes: b"v" + user_id -> the versions, b"r" + user_id -> the recommendations
_RECOMMENDATIONS = b"r"


@dataclass(frozen=True)
class TrailPoint:
    """One profile version: when it was made and each layer's top labels, most probable first."""

    version: int
    at: str  # the profile's updated_at
    top: dict[str, list[tuple[str, float]]]

    @classmethod
    def of(cls, profile: dict, labels: int = TRAIL_LABELS) -> "TrailPoint":
        """From a profile document (model/documents.py `Profile`)."""
        return cls(profile["version"], profile["updated_at"],
                   {layer: [(x["label"], x["p"]) for x in doc["top"][:labels]]
                    for layer, doc in profile["layers"].items()})

    def encode(self) -> list:
        return [self.version, self.at, {layer: [list(x) for x in top] for layer, top in self.top.items()}]

    @classmethod
    def decode(cls, raw: list) -> "TrailPoint":
        version, at, top = raw
        return cls(version, at, {layer: [(label, p) for label, p in labels] for layer, labels in top.items()})


@dataclass(frozen=True)
class Trail:
    points: list[TrailPoint]  # oldest first, as recorded on this worker
    recommendations: Optional[dict]  # the latest recommendations document recorded, if any

    def through(self, profile: dict) -> list[TrailPoint]:
        """The recorded versions and, when it was not recorded here (published by the user's
        previous owner, restored from the topic), the current profile as the newest point."""
        if self.points and self.points[-1].version >= profile["version"]:
            return self.points
        return [*self.points, TrailPoint.of(profile)]


class TrailStore:
    def __init__(self, store: MutableMapping[bytes, bytes], versions: int = TRAIL_VERSIONS):
        self.store = store
        self.versions = versions

    def record(self, profile: bytes, recommendations: bytes) -> None:
        """A profile just published (its JSON) and the recommendations published with it."""
        doc = json.loads(profile)
        key = doc["user_id"].encode()
        raw = self.store.get(_VERSIONS + key)
        points = json.loads(raw) if raw else []
        points = [*points, TrailPoint.of(doc).encode()][-self.versions:]
        self.store[_VERSIONS + key] = json.dumps(points, ensure_ascii=False, separators=(",", ":")).encode()
        self.store[_RECOMMENDATIONS + key] = recommendations

    def load(self, user_id: str) -> Trail:
        key = user_id.encode()
        raw, recommendations = self.store.get(_VERSIONS + key), self.store.get(_RECOMMENDATIONS + key)
        return Trail([TrailPoint.decode(p) for p in json.loads(raw)] if raw else [],
                     json.loads(recommendations) if recommendations else None)
