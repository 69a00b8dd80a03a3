import numpy as np

from model.profile import BaselineModel, Horizons, layer_weights
from model.taxonomy import Taxonomy
from state.window import Entry

MIN = 60_000
DAY = 86400_000


def e(i, ts, path, tokens=()):
    return Entry(id=f"e{i}", ts=ts, type="browse", tokens=list(tokens), cats=path)


def test_layer_horizons_surface_is_the_last_session_middle_two_weeks():
    ts = np.array([0, 20 * DAY, 29 * DAY, 30 * DAY, 30 * DAY + 5 * MIN], dtype=float)
    w = layer_weights(ts, Horizons())
    assert list(w["surface"]) == [0, 0, 0, 1, 1]
    assert list(w["middle"]) == [0, 1, 1, 1, 1]
    assert w["deep"][0] < w["deep"][2] < w["deep"][4] == 1.0


def test_baseline_layers_differ_by_horizon_and_are_distributions():
    tax = Taxonomy.load()
    books = tax.path("科幻小说")
    phones = tax.path("智能手机")
    entries = [e(i, i * DAY, books, ["三体"]) for i in range(10)]
    entries += [e(20 + i, 40 * DAY + i * MIN, phones, ["华为"]) for i in range(3)]
    model = BaselineModel(tax)
    [d] = model.predict([entries])
    for layer in ("surface", "middle", "deep"):
        assert abs(d[layer].sum() - 1) < 1e-9 and (d[layer] > 0).all()
    s, m, dp = (tax.labels[k] for k in ("surface", "middle", "deep"))
    assert s[d["surface"].argmax()] == "智能手机"  # the current session
    assert dp[d["deep"].argmax()] == "数码" or d["deep"][dp.index("文娱")] > 0.2  # history still counts
    assert d["deep"][dp.index("文娱")] > d["surface"][s.index("科幻小说")]
    kw = model.explain(entries)
    assert kw["surface"] == ["华为"] and "三体" in kw["deep"]


def test_empty_or_unlabelled_window_gives_the_prior():
    tax = Taxonomy.load()
    [d] = BaselineModel(tax).predict([[e(1, 0, None)]])
    assert np.allclose(d["middle"], 1 / len(tax.labels["middle"]))

