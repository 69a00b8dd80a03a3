"""Profiling one batch of users: windows, their last versions and the catalogue in; the profile and
recommendation documents out, encoded. Pure (no Kafka); the worker runs it on its model thread, so
the event loop only reads tables and sends bytes."""
from __future__ import annotations

from dataclasses import dataclass

from model.documents import encode, profile_document, recommendations_document
from model.entry import complete
from model.profile import ProfileModel
from model.recommend import recommend
from state.items import ItemIndex
from state.window import Window


@dataclass(frozen=True)
class Profiled:
    user_id: str
    version: int
    profile: bytes
    recommendations: bytes


def profile_batch(model: ProfileModel, windows: list[Window], last_versions: list[int], items: ItemIndex,
                  now_ms: int, max_text_chars: int = 512, top_k: int = 5, n_recommendations: int = 10
                  ) -> list[Profiled]:
    """One Profiled per window, with version one above `last_versions[i]` (0: none yet)."""
    for window in windows:  # items that reached the catalogue after their events
        window.entries = [complete(e, items, max_text_chars) for e in window.entries]
    dists = model.predict([w.entries for w in windows])
    out = []
    for window, last, d in zip(windows, last_versions, dists):
        version = last + 1
        profile = profile_document(window.user_id, version, model.version, window, d, model.inferred_share(window.entries),
                                   model.explain(window.entries, top_k), model.taxonomy, now_ms, top_k)
        recs = recommend(d, model.taxonomy, items, (e.item for e in window.entries), n_recommendations)
        out.append(Profiled(window.user_id, version, encode(profile),
                            encode(recommendations_document(window.user_id, version, model.version, recs))))
    return out
