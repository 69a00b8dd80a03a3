"""A user's recent profile versions as the profile page shows them: per version its time and each
layer's top labels with their probabilities, plus the latest recommendation list.

Kept in any bytes -> bytes mapping (the worker gives it a RocksDB store in its data dir,
streams/trails.py), bounded per user: the last TRAIL_VERSIONS profiles. Recording stores the
published bytes as they are, so the profiler pays a few small writes and no parsing; the page,
which is rare, parses them. Layers are whatever the profile carries. No Kafka, no torch.
"""
from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import MutableMapping, Optional

TRAIL_VERSIONS = 20


@dataclass(frozen=True)
class TrailPoint:
    """One profile version: when it was made and each layer's top labels, most probable first."""

    version: int
    at: str  # the profile's updated_at
    top: dict[str, list[tuple[str, float]]]

    @classmethod
    def of(cls, profile: dict) -> "TrailPoint":
        """From a profile document (model/documents.py `Profile`)."""
        return cls(profile["version"], profile["updated_at"],
                   {layer: [(x["label"], x["p"]) for x in doc["top"]] for layer, doc in profile["layers"].items()})


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
    """Per user: a key per recorded version (the profile's JSON), the list of those versions, and
    the latest recommendations. Recording writes three records and deletes the version that fell
    out; it never reads or rewrites the other versions."""

    def __init__(self, store: MutableMapping[bytes, bytes], versions: int = TRAIL_VERSIONS):
        self.store = store
        self.versions = versions

    def record(self, user_id: str, version: int, profile: bytes, recommendations: bytes) -> None:
        """A profile just published (its JSON) and the recommendations published with it."""
        user = _user(user_id)
        versions = _unpack(self.store.get(_VERSIONS + user))
        versions.append(version)
        for gone in versions[:-self.versions]:
            del self.store[_profile(user, gone)]
        self.store[_profile(user, version)] = profile
        self.store[_VERSIONS + user] = _pack(versions[-self.versions:])
        self.store[_RECOMMENDATIONS + user] = recommendations

    def load(self, user_id: str) -> Trail:
        user = _user(user_id)
        recommendations = self.store.get(_RECOMMENDATIONS + user)
        return Trail([TrailPoint.of(json.loads(self.store[_profile(user, v)]))
                      for v in _unpack(self.store.get(_VERSIONS + user))],
                     json.loads(recommendations) if recommendations else None)


# Keys: a kind byte, then the user id length-prefixed (so no user's keys start another's), then
# for a profile its version, big-endian.
_PROFILE, _VERSIONS, _RECOMMENDATIONS = b"p", b"v", b"r"
_VERSION = struct.Struct(">Q")


def _user(user_id: str) -> bytes:
    raw = user_id.encode("utf-8", "surrogatepass")
    return struct.pack(">H", len(raw)) + raw


def _profile(user: bytes, version: int) -> bytes:
    return _PROFILE + user + _VERSION.pack(version)


def _pack(versions: list[int]) -> bytes:
    return b"".join(_VERSION.pack(v) for v in versions)


def _unpack(raw: Optional[bytes]) -> list[int]:
    return [v for (v,) in _VERSION.iter_unpack(raw)] if raw else []
