"""Tiny real trainings (seconds): loss goes down, checkpoints round-trip, runs repeat, bad ones are refused."""
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import generated_histories

from model.checkpoint import load_checkpoint
from model.encoders import HFEncoder
from model.latest import CheckpointError, latest_version
from model.learned import LearnedModel
from model.taxonomy import LAYERS, Taxonomy
from model.training.trainer import TrainConfig, evaluate_checkpoint, train

pytestmark = pytest.mark.timeout(300)
TINY = dict(d_model=16, text_dim=16, heads=2, cuts_per_user=4, max_events=32, batch_size=32, epochs=3,
            lm_epochs=2, patience=5, rec_epochs=2, rec_max_len=16, progress=False)


@pytest.fixture(scope="module")
def histories():
    return generated_histories(3000, 120, seed=4)


@pytest.fixture(scope="module")
def trained(histories, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt")
    path, metrics = train(histories, Taxonomy.load(), out, TrainConfig(encoder="cnn-lstm", **TINY))
    return out, path, metrics


def test_training_lowers_the_loss_and_reports_every_layer(trained):
    _, path, metrics = trained
    losses = [h["train_loss"] for h in metrics["history"]]
    assert losses[-1] < losses[0]
    assert min(h["val_loss"] for h in metrics["history"]) <= metrics["initial_validation_loss"]
    for layer in LAYERS:
        for who in ("model", "baseline"):
            row = metrics["layers"][layer][who]
            assert set(row) >= {"accuracy", "recall@3", "macro_f1", "ndcg@3", "cross_entropy"}
            assert 0 <= row["ndcg@3"] <= 1 and row["cross_entropy"] > 0
    assert json.loads((path / "metrics.json").read_text())["layers"] == metrics["layers"]


def test_checkpoint_layout_and_round_trip(trained, histories):
    root, path, metrics = trained
    assert latest_version(root) == path.name
    for name in ("model.safetensors", "config.json", "taxonomy.json", "vocab.json", "metrics.json",
                 "recommender.safetensors", "recommender.json"):
        assert (path / name).exists(), name
    # Re-scoring the loaded checkpoint on the same test users reproduces the trainer's figures.
    again = evaluate_checkpoint(path, histories)
    for layer in LAYERS:
        for m in ("accuracy", "ndcg@3", "cross_entropy"):
            assert again["layers"][layer]["model"][m] == pytest.approx(metrics["layers"][layer]["model"][m], abs=1e-4)
    for who, row in metrics["recommendation"]["contenders"].items():
        for m in ("hr@10", "ndcg@10", "mrr"):
            assert again["recommendation"]["contenders"][who][m] == pytest.approx(row[m], abs=1e-6), (who, m)
    model = LearnedModel(path, device=torch.device("cpu"))
    windows = [h[-10:] for h in list(histories.values())[:5]]
    dists = model.predict(windows)
    for d in dists:
        for layer in LAYERS:
            assert d[layer].shape == (len(model.taxonomy.labels[layer]),) and abs(d[layer].sum() - 1) < 1e-6
    hits = []
    model.on_encode = lambda h, m: hits.append((h, m))
    model.predict(windows)
    assert hits[-1][1] == 0 and hits[-1][0] > 0  # every text came from the cache the second time


def test_training_scores_the_recommender_like_the_field(trained):
    _, _, metrics = trained
    rec = metrics["recommendation"]
    assert set(rec["contenders"]) == {"model", "model_uncapped", "sequential", "mostpop", "itemknn"}
    assert rec["users"] > 0 and rec["items"] > rec["items_in_training"] * 0.5
    for who, row in rec["contenders"].items():
        assert 0 <= row["ndcg@10"] <= row["hr@10"] <= 1 and 0 < row["mrr"] <= 1 and row["n"] == rec["users"]
    assert set(rec["ci95"]) == set(rec["contenders"]) - {"model"}
    assert set(rec["slices"]) == {"new_items", "users_with_at_most_5_events", "only_last_2_events"}
    assert rec["slices"]["only_last_2_events"]["contenders"]["model"]["n"] == rec["users"]
    assert len(rec["history"]) == 2


def test_the_learned_recommender_ranks_a_new_item_by_its_text(trained, histories):
    from model.recommend.catalogue import CatalogueItem

    _, path, _ = trained
    model = LearnedModel(path, device=torch.device("cpu"))
    rec = model.recommender
    user = max(histories, key=lambda u: len(histories[u]))
    window = histories[user][-20:]
    known = sorted({(e.item, e.text, tuple(e.cats or ())) for h in histories.values() for e in h if e.item})
    items = [CatalogueItem(*k) for k in known]
    # A copy of the user's favourite kind of item, under an id nobody has seen, without categories.
    favourite = max({e.cats[-1] for e in window if e.cats}, key=[e.cats[-1] for e in window if e.cats].count)
    text = next(e.text for e in window if e.cats and e.cats[-1] == favourite and e.text)
    rec.set_catalogue(items + [CatalogueItem("brand-new", text, ())])
    assert not rec.has_id[rec.catalogue.index["brand-new"]] and rec.has_id.sum() > 0
    [recs] = rec.recommend([window], model.predict([window]), k=10)
    assert {r["item_id"] for r in recs}.isdisjoint(e.item for e in window)
    scores = rec.scores([rec.catalogue.rows_of(e.item for e in window)], model.predict([window]), np.array([False]))[0][0]
    new = scores[rec.catalogue.index["brand-new"]]
    assert np.isfinite(new) and (scores < new).mean() > 0.5  # above the typical item


def test_same_seed_same_model(histories, tmp_path):
    cfg = TrainConfig(encoder="cnn-lstm", **{**TINY, "epochs": 1})
    a, ma = train(histories, Taxonomy.load(), tmp_path / "a", cfg)
    b, mb = train(histories, Taxonomy.load(), tmp_path / "b", cfg)
    assert (a / "model.safetensors").read_bytes() == (b / "model.safetensors").read_bytes()
    assert ma["layers"] == mb["layers"]


def test_a_spent_time_budget_starts_no_epoch_and_still_writes_a_checkpoint(histories, tmp_path):
    cfg = TrainConfig(encoder="cnn-lstm", **{**TINY, "max_minutes": 1e-9})
    path, metrics = train(histories, Taxonomy.load(), tmp_path, cfg)
    assert metrics["history"] == [] and latest_version(tmp_path) == path.name
    assert LearnedModel(path, device=torch.device("cpu")).predict([histories[sorted(histories)[0]][-8:]])


def test_scratch_encoder_pretrains_as_a_language_model(histories, tmp_path):
    path, metrics = train(histories, Taxonomy.load(), tmp_path, TrainConfig(encoder="scratch", **{**TINY, "epochs": 1}))
    lm = metrics["lm_losses"]
    assert len(lm) == 2 and lm[1] < lm[0]
    assert json.loads((path / "config.json").read_text())["encoder"]["kind"] == "scratch"
    assert LearnedModel(path).predict([list(histories.values())[0]])


def test_broken_or_incompatible_checkpoints_are_refused(trained, tmp_path):
    _, path, _ = trained
    bad = tmp_path / "corrupt"
    shutil.copytree(path, bad)
    (bad / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)
    other = tmp_path / "other-taxonomy"
    shutil.copytree(path, other)
    tax = Taxonomy.load()
    del tax.tree["家居"]
    Taxonomy(tax.name, tax.tree).save(other / "taxonomy.json")
    with pytest.raises(CheckpointError, match="labels"):
        load_checkpoint(other)
    missing = tmp_path / "missing"
    shutil.copytree(path, missing)
    (missing / "vocab.json").unlink()
    with pytest.raises(CheckpointError, match="vocab.json"):
        load_checkpoint(missing)


def test_pretrained_hf_encoder_loads_offline():
    enc = HFEncoder("minilm")
    ids, mask = enc.tokenize(["The Matrix", "Toy Story", "The Matrix Reloaded"])
    v = enc(ids, mask).numpy()
    assert v.shape == (3, 384)
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(v[0], v[2]) > cos(v[0], v[1])
