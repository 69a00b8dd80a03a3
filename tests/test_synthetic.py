from collections import Counter

from model.datasets.synthetic import generate
from model.taxonomy import Taxonomy


def test_generation_is_deterministic_and_realistic():
    a = generate(1000, 50, seed=5, end_ms=1_790_000_000_000)
    b = generate(1000, 50, seed=5, end_ms=1_790_000_000_000)
    assert a == b
    items, events = a
    assert len(events) == 1000 and len({e["user_id"] for e in events}) == 50
    assert len({e["event_id"] for e in events}) == 1000
    assert [e["ts"] for e in events] == sorted(e["ts"] for e in events)
    types = Counter(e["type"] for e in events)
    assert types["browse"] > types["purchase"] > 0 and types["review"] > 0
    assert any("text" not in e for e in events)  # some carry only item_id
    tax = Taxonomy.load()
    assert all(i["categories"] == tax.path(i["categories"][-1]) for i in items)


def test_users_have_a_core_and_sessions_that_drift():
    _, events = generate(3000, 30, seed=2)
    deep_share = []
    for user in {e["user_id"] for e in events}:
        cats = [e["categories"] for e in events if e["user_id"] == user and "categories" in e]
        deep = Counter(c[0] for c in cats)
        surface = Counter(c[2] for c in cats)
        deep_share.append(deep.most_common(1)[0][1] / len(cats))
        assert len(surface) >= 2  # interests move between sessions
    assert sum(deep_share) / len(deep_share) > 0.5  # but a long-term core holds
