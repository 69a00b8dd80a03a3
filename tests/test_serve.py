"""Profiling one batch: the documents the worker publishes, built without Kafka."""
import json

from model.profile import BaselineModel
from model.serve import profile_batch
from model.taxonomy import Taxonomy
from state.event import Item
from state.items import ItemIndex
from state.window import Entry, Window


def test_profile_batch_builds_the_contract_documents():
    tax = Taxonomy.load()
    items = ItemIndex()
    items.put(Item(item_id="tea-1", title="西湖龙井 明前 绿茶", categories=tax.path("茶饮")))
    items.put(Item(item_id="tea-2", title="安吉白茶", categories=tax.path("茶饮")))
    # One entry carries its categories; one has only its item and is completed from the catalogue.
    entries = [Entry(id="e1", ts=1_700_000_000_000, type="browse", text="龙井", tokens=["龙井"], cats=tax.path("茶饮")),
               Entry(id="e2", ts=1_700_000_060_000, type="purchase", item="tea-1")]
    [done] = profile_batch(BaselineModel(tax), [Window("u1", 0, entries, events_seen=7)], [2], items,
                           1_700_000_100_000, top_k=3, n_recommendations=5)
    profile, recs = json.loads(done.profile), json.loads(done.recommendations)
    assert done.version == 3 and profile["version"] == 3 and profile["schema_version"] == 2
    assert profile["events_seen"] == 7 and profile["window"]["events"] == 2
    assert profile["updated_at"].endswith("Z")
    for layer in ("surface", "middle", "deep"):
        doc = profile["layers"][layer]
        assert len(doc["top"]) == 3 and doc["top"] == sorted(doc["top"], key=lambda x: -x["p"])
        assert abs(sum(x["p"] for x in doc["top"]) + doc["rest"] - 1.0) < 1e-4
        assert doc["inferred"] == 0.0
    assert profile["layers"]["surface"]["top"][0]["label"] == "茶饮"
    assert "龙井" in profile["keywords"]["surface"]
    assert recs["schema_version"] == 2 and recs["profile_version"] == 3
    assert [r["item_id"] for r in recs["items"]] == ["tea-2"]  # tea-1 is already in the window
    assert recs["items"][0]["source"] == "interest" and recs["items"][0]["reason"] == "lately: 茶饮"
