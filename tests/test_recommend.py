
from model.profile import BaselineModel
from model.recommend import recommend
from model.taxonomy import Taxonomy
from state.event import Item
from state.items import ItemIndex
from state.window import Entry


def test_recommendations_follow_the_layers_and_skip_seen_items():
    tax = Taxonomy.load()
    idx = ItemIndex()
    for i, surface in enumerate(["科幻小说", "科幻小说", "科幻小说", "茶饮", "咖啡"]):
        idx.put(Item(item_id=f"i{i}", title=surface, categories=tax.path(surface)))
    entries = [Entry(id=f"e{k}", ts=k, type="browse", item="i0", cats=tax.path("科幻小说")) for k in range(5)]
    [d] = BaselineModel(tax).predict([entries])
    recs = recommend(d, tax, idx, seen={"i0"}, k=3)
    assert [r["item_id"] for r in recs][:2] == ["i1", "i2"]
    assert recs[0]["layer"] == "surface" and "科幻小说" in recs[0]["reason"]
    assert all(r["item_id"] != "i0" for r in recs)
    assert recs == sorted(recs, key=lambda r: -r["score"])
    idx.remove("i1")
    assert "i1" not in {r["item_id"] for r in recommend(d, tax, idx, seen=set(), k=5)}
