"""Profiling one batch of users: windows, their last versions and the catalogue in; the profile and
recommendation documents out, encoded. Pure (no Kafka); the worker runs it on its model thread, so
the event loop only reads tables and sends bytes."""
from __future__ import annotations

from dataclasses import dataclass

from model.documents import encode, profile_document, recommendations_document
from model.entry import complete
from model.profile import ProfileModel
from model.recommend.catalogue import CatalogueItem
from model.text import clean
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
    # list(): one atomic copy, as the event loop may add items while the model thread reads
    model.recommender.sync(lambda: [CatalogueItem(i.item_id, clean(i.title, max_text_chars), tuple(i.categories))
                                    for i in list(items.items.values())], items.version)
    recs = model.recommender.recommend([w.entries for w in windows], dists, n_recommendations)
    out = []
    for window, last, d, user_recs in zip(windows, last_versions, dists, recs):
        version = last + 1
        profile = profile_document(window.user_id, version, model.version, window, d, model.inferred_share(window.entries),
                                   model.explain(window.entries, top_k), model.taxonomy, now_ms, top_k)
        out.append(Profiled(window.user_id, version, encode(profile),
                            encode(recommendations_document(window.user_id, version, model.version, user_recs))))
    return out
