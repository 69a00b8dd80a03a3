"""The recommender: ranking rules, cold start, and the evaluation protocol on hand-checked fixtures."""
import math

import numpy as np
import pytest
from conftest import generated_histories

from model.categorizer import cached, train_categorizer
from model.profile import BaselineModel
from model.recommend.baselines import ItemKNN, popularity
from model.recommend.catalogue import CatalogueItem
from model.recommend.evaluate import compare, leave_one_out, list_ranks, per_user, target_ranks
from model.recommend.ranking import combine, ranked
from model.recommend.recommender import Recommender
from model.taxonomy import LAYERS, Taxonomy
from state.window import Entry

TAX = Taxonomy.load()


def _entries(surface: str, n: int, item: str = "i0", start: int = 0) -> list[Entry]:
    return [Entry(id=f"e{start + k}", ts=start + k, type="browse", item=item, text=surface, cats=TAX.path(surface))
            for k in range(n)]


def _catalogue(*surfaces: str) -> list[CatalogueItem]:
    return [CatalogueItem(f"i{i}", s, tuple(TAX.path(s))) for i, s in enumerate(surfaces)]


def test_the_list_follows_the_layers_names_them_and_skips_consumed_items():
    model = BaselineModel(TAX)
    rec = model.recommender
    rec.set_catalogue(_catalogue("科幻小说", "科幻小说", "科幻小说", "茶饮", "咖啡"))
    window = _entries("科幻小说", 5)  # all of it item i0
    [recs] = rec.recommend([window], model.predict([window]), k=3)
    ids = [r["item_id"] for r in recs]
    assert "i0" not in ids
    assert ids[:2] == ["i1", "i2"]
    assert recs[0]["source"] == "interest"
    assert recs[0]["reason"] in {f"{when}: {label}" for when, label in
                                 zip(("long-term", "these weeks", "lately"), TAX.path("科幻小说"))}
    assert [r["score"] for r in recs] == sorted((r["score"] for r in recs), reverse=True)


def test_a_list_is_never_one_category_deep():
    scores = np.array([[9, 8, 7, 6, 5, 4, 3, 2, 1, 0.5]], dtype=np.float32)
    labels = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2])
    [picked] = ranked(scores, k=5, labels=labels, sure=np.ones(10, np.float32), per_category=2)
    assert list(picked) == [0, 1, 5, 6, 7]
    # Too few categories: the list is filled with the best of the rest rather than left short.
    [picked] = ranked(scores[:, :5], k=5, labels=labels[:5], sure=np.ones(5, np.float32), per_category=2)
    assert sorted(picked) == [0, 1, 2, 3, 4]


def test_an_uncategorised_new_item_reaches_a_user_whose_interests_match_its_text():
    histories = generated_histories(3000, 120, seed=4)
    labelled = [e for h in histories.values() for e in h]
    infer = cached(train_categorizer(labelled, TAX, seed=0).predict)
    by_surface = {}
    for e in labelled:
        if e.cats and e.text:
            by_surface.setdefault(e.cats[-1], e.text)
    surfaces = sorted(by_surface)[:12]
    liked = surfaces[0]
    model = BaselineModel(TAX, infer=infer)
    # The catalogue: one categorised item per surface label, and a brand-new one with text only.
    items = [CatalogueItem(f"i{i}", by_surface[s], tuple(TAX.path(s))) for i, s in enumerate(surfaces[1:])]
    items.append(CatalogueItem("new", by_surface[liked], ()))
    model.recommender.set_catalogue(items)
    window = _entries(liked, 6, item="elsewhere")
    [recs] = model.recommender.recommend([window], model.predict([window]), k=3)
    assert recs[0]["item_id"] == "new", recs


def test_a_new_user_gets_a_list_within_the_interests_shown_then_the_popular_rest():
    from model.recommend.recommender import Recommender, RecommenderState
    from model.recommend.ranking import INTEREST_ONLY, RankWeights

    prior = {layer: np.full(len(TAX.labels[layer]), 1 / len(TAX.labels[layer])) for layer in LAYERS}
    # Training counts: the 智能手机 item is the most popular, the 科幻小说 one the least.
    state = RecommenderState(RankWeights(), {k: list(v) for k, v in prior.items()}, cold_weights=INTEREST_ONLY,
                             vocab=["i0", "i1", "i2", "i3"], counts=[1.0, 5.0, 50.0, 20.0])
    rec = Recommender(TAX, state)
    rec.set_catalogue(_catalogue("科幻小说", "茶饮", "智能手机", "茶饮"))
    window = _entries("茶饮", 1, item=None)  # one event, no item: a new user
    [recs] = rec.recommend([window], BaselineModel(TAX).predict([window]), k=4)
    assert [r["item_id"] for r in recs][:2] == ["i3", "i1"]  # their interest first, the popular one of it first
    assert recs[0]["reason"] in {f"{when}: {label}" for when, label in
                                 zip(("long-term", "these weeks", "lately"), TAX.path("茶饮"))} | {"popular in 茶饮"}
    assert recs[2]["item_id"] == "i2" and recs[2]["reason"] == "popular"  # then global popularity


def test_evaluation_reproduces_hand_computed_figures():
    n = 12
    scores = np.tile(np.arange(n, 0, -1, dtype=np.float32), (3, 1))  # item 0 best, item 11 worst
    scores[1] = 0.0  # all tied: catalogue order decides
    targets = np.array([2, 4, 11])
    consumed = [np.array([0]), np.array([], dtype=np.int64), np.array([3])]
    ranks = target_ranks(scores, targets, consumed)
    # user 0: only item 1 is ahead (item 0 consumed); user 1: items 0-3 ahead by order;
    # user 2: items 0-10 but 3, i.e. 10 ahead: just outside the top 10.
    assert list(ranks) == [1, 4, 10]
    m = per_user(ranks)
    assert list(m["hr@10"]) == [1, 1, 0]
    assert m["ndcg@10"] == pytest.approx([1 / math.log2(3), 1 / math.log2(6), 0.0])
    assert m["mrr"] == pytest.approx([1 / 2, 1 / 5, 1 / 11])
    # A target consumed before can never be recommended: it ranks last.
    assert target_ranks(scores[:1], np.array([0]), [np.array([0])])[0] == n
    result = compare({"model": ranks, "other": np.array([0, 0, 0])}, resamples=200)
    assert result["contenders"]["model"]["hr@10"] == pytest.approx(2 / 3)
    assert result["contenders"]["other"]["ndcg@10"] == pytest.approx(1.0)
    lo, hi = result["ci95"]["other"]["ndcg@10"]
    assert lo <= hi < 0
    # A served list ranks by its own order; a target off the list falls behind it.
    assert list(list_ranks([np.array([5, 2]), np.array([7, 8])], np.array([2, 4]), np.array([0, 1]))) == [1, 2]


def test_leave_one_out_holds_out_the_last_two_items_by_time():
    split = leave_one_out({"a": np.array([3, 1, 4, 1, 5]), "b": np.array([9, 2]), "c": np.array([2, 6, 5])})
    assert split.users == ["a", "c"]  # b has too few items to hold two out
    assert [list(h) for h in split.history("validation")] == [[3, 1, 4], [2]]
    assert list(split.targets("validation")) == [1, 6]
    assert [list(h) for h in split.history("test")] == [[3, 1, 4, 1], [2, 6]]
    assert list(split.targets("test")) == [5, 5]


@pytest.mark.parametrize("item_block", [1, 512])  # the co-occurrence an item at a time, or whole
def test_mostpop_and_itemknn_are_exact(item_block, monkeypatch):
    from model.recommend import baselines

    monkeypatch.setattr(baselines, "ITEM_BLOCK", item_block)
    sequences = [np.array([0, 1]), np.array([1, 2]), np.array([0, 1, 2, 2])]
    assert list(popularity(sequences, 4)) == [2, 3, 3, 0]
    # Consumed-or-not: item 0 by users {0, 2}, item 1 by {0, 1, 2}, item 2 by {1, 2}.
    c01, c02, c12 = 2 / math.sqrt(2 * 3), 1 / math.sqrt(2 * 2), 2 / math.sqrt(3 * 2)
    full = ItemKNN(sequences, 4, k=None)
    assert full.scores([np.array([0, 2])])[0] == pytest.approx([c02, c01 + c12, c02, 0.0], abs=1e-6)
    # k=1: each item keeps its single most similar neighbour (ties: the lower id).
    top1 = ItemKNN(sequences, 4, k=1)
    assert top1.scores([np.array([1])])[0] == pytest.approx([c01, 0.0, 0.0, 0.0], abs=1e-6)
    assert top1.scores([np.array([2])])[0] == pytest.approx([0.0, c12, 0.0, 0.0], abs=1e-6)


def test_the_catalogue_is_rebuilt_when_it_changes_but_not_more_often_than_the_refresh():
    from model.recommend.recommender import CATALOGUE_REFRESH_S

    rec = BaselineModel(TAX).recommender
    built = []

    def items(*surfaces):
        return lambda: built.append(surfaces) or _catalogue(*surfaces)

    rec.sync(items("茶饮"), version=1, now=100.0)
    rec.sync(items("茶饮", "咖啡"), version=2, now=100.0 + CATALOGUE_REFRESH_S / 2)  # too soon: kept
    assert rec.catalogue.ids == ["i0"]
    rec.sync(items("茶饮", "咖啡"), version=2, now=100.0 + CATALOGUE_REFRESH_S)
    rec.sync(items("茶饮", "咖啡"), version=2, now=200.0)  # unchanged: not rebuilt
    assert rec.catalogue.ids == ["i0", "i1"] and len(built) == 2


def test_sampled_softmax_trains_on_a_large_catalogue():
    import torch

    from model.recommend import train as rec_train
    from model.recommend.sequential import ItemFeatures, SequentialConfig, SequentialModel

    n = rec_train.FULL_SOFTMAX_ITEMS + 100
    model = SequentialModel(SequentialConfig(n_ids=n + 1, n_surface=4, content_dim=8, d_model=16, max_len=8,
                                             dropout=0.0, id_dropout=0.0))
    rng = np.random.default_rng(0)
    features = ItemFeatures.of(np.arange(1, n + 1), rng.integers(0, 4, n), np.ones(n), rng.normal(size=(n, 8)))
    # Everyone walks the same short loop of items: the next item is always predictable.
    seqs = torch.tensor([[5, 8200, 42, 5, 8200, 42, 5, 8200]] * 8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        loss = rec_train._next_item_loss(model, model.item_vectors(features), seqs[:, :-1], seqs[:, 1:], generator)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] / 2
    scores = model.scores(model.catalogue_vectors(features), [np.array([5, 8200])])
    assert scores[0].argmax() == 42  # ranked over the whole catalogue, not the sample


def test_weights_that_only_help_the_fitting_half_are_not_kept():
    from model.recommend.ranking import RankWeights
    from model.recommend.train import fit_weights

    fit_half = np.arange(100) % 2 == 0

    def per_user(w: RankWeights) -> np.ndarray:
        # The surface weight helps the users it is fitted on and hurts the others as much; the deep
        # weight helps everyone a little.
        return 0.5 + np.where(fit_half, 0.1, -0.1) * w.surface + 0.01 * w.deep

    weights, ndcg = fit_weights(per_user, [RankWeights(sequential=1.0)], {"surface": (0.0, 1.0), "deep": (0.0, 1.0)})
    assert weights == RankWeights(sequential=1.0)  # the ascent took surface 1; the other half refused it
    weights, _ = fit_weights(per_user, [RankWeights(sequential=1.0)], {"deep": (0.0, 1.0)})
    assert weights == RankWeights(sequential=1.0, deep=1.0) and ndcg == pytest.approx(0.5)


def test_scoring_users_in_parts_ranks_as_scoring_them_all(monkeypatch):
    from model.recommend import train as rec_train
    from model.recommend.ranking import RankWeights, lifts
    from model.recommend.recommender import RecommenderState

    rng = np.random.default_rng(0)
    surfaces = ["科幻小说", "茶饮", "咖啡", "智能手机"]
    items = _catalogue(*(surfaces[i % 4] for i in range(12)))
    prior = {layer: np.full(len(TAX.labels[layer]), 1 / len(TAX.labels[layer])) for layer in LAYERS}
    state = RecommenderState(RankWeights(), {k: list(v) for k, v in prior.items()}, vocab=[it.item_id for it in items],
                             counts=list(rng.integers(1, 20, 12).astype(float)), per_category=2)
    rec = Recommender(TAX, state)
    rec.set_catalogue(items)
    users = 7
    hist = [rng.choice(12, size=rng.integers(0, 4), replace=False) for _ in range(users)]
    dists = [{layer: rng.dirichlet(np.ones(len(TAX.labels[layer]))) for layer in LAYERS} for _ in range(users)]
    stage = rec_train.Stage(hist, rng.integers(0, 12, users), rng.normal(size=(users, 12)).astype(np.float32),
                            lifts(dists, rec.prior), np.arange(users) % 3 == 0)
    weights = RankWeights(sequential=1.0, surface=0.5, deep=2.0, popularity=0.25)
    knn = ItemKNN(hist, 12, k=3)
    counts = popularity(hist, 12).astype(np.float32)

    def run(chunk: int):
        monkeypatch.setattr(rec_train, "SCORING_CHUNK", chunk)
        return (rec_train._contender_ranks(rec, stage, weights, counts, knn), rec_train._fit_cap(rec, stage),
                rec_train._ndcg_per_user(rec, stage, weights))

    (whole, cap, ndcg), (parts, cap_parts, ndcg_parts) = run(users), run(3)  # 3 + 3 + 1 users
    assert whole.keys() == parts.keys() and all(np.array_equal(whole[k], parts[k]) for k in whole)
    assert cap == cap_parts and np.array_equal(ndcg, ndcg_parts)
    # The uncapped model's ranks are those of the combined scores of all users at once.
    scores = combine(weights, stage.seq, stage.lift, rec.catalogue, rec.log_popularity, stage.cold, state.cold_weights)
    assert np.array_equal(whole["model_uncapped"], target_ranks(scores, stage.targets, hist))
