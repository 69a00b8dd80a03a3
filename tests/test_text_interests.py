"""Interests from text: the per-event categorizer, soft counts, the hidden-categories protocol, intervals."""
import json
import random
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import generated_histories

from model.categories import distributions
from model.categorizer import cached, train_categorizer
from model.datasets.synthetic import generate
from model.features import EntryTable, featurize
from model.profile import BaselineModel, Horizons
from model.taxonomy import LAYERS, Taxonomy
from model.training.data import hide_categories, load_histories
from model.training.evaluate import paired_bootstrap, tune_baseline
from model.training.trainer import TrainConfig, prepare
from ops.cli import cli

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def data():
    histories = generated_histories(4000, 160, seed=7)
    users = sorted(histories)
    train = [e for u in users[:120] for e in histories[u]]
    held_out = [e for u in users[120:] for e in histories[u] if e.cats and e.tokens]
    return histories, train, held_out


@pytest.fixture(scope="module")
def categorizer(data):
    return train_categorizer(data[1], Taxonomy.load(), seed=0)


def test_the_categorizer_classifies_held_out_texts_far_above_chance(data, categorizer):
    tax = Taxonomy.load()
    held_out = data[2]
    probs = categorizer.predict(held_out)
    for layer, pos in (("surface", 2), ("middle", 1), ("deep", 0)):
        truth = np.array([tax.index[layer][e.cats[pos]] for e in held_out])
        accuracy = float(np.mean(probs[layer].argmax(1) == truth))
        chance = max(np.bincount(truth).max() / len(truth), 1 / len(tax.labels[layer]))
        assert accuracy > chance + 0.3, (layer, accuracy, chance)


def test_a_user_with_text_only_gets_the_interests_their_hidden_categories_name(data, categorizer):
    tax = Taxonomy.load()
    # A reader of one surface category whose events carry no categories at all: only what they read.
    from collections import Counter

    surface, _ = Counter(e.cats[2] for e in data[2]).most_common(1)[0]
    read = [e for e in data[2] if e.cats[2] == surface][:6]
    window = sorted((replace(e, cats=None) for e in read), key=lambda e: e.ts)
    blind = BaselineModel(tax).predict([window])[0]
    [reads] = BaselineModel(tax, infer=cached(categorizer.predict)).predict([window])
    for layer in LAYERS:
        assert np.allclose(blind[layer], 1 / len(tax.labels[layer]))  # no categories: the prior
        assert not np.allclose(reads[layer], blind[layer])
    deep, middle, _ = tax.path(surface)
    assert tax.labels["surface"][reads["surface"].argmax()] == surface
    assert tax.labels["middle"][reads["middle"].argmax()] == middle
    assert tax.labels["deep"][reads["deep"].argmax()] == deep
    share = BaselineModel(tax, infer=cached(categorizer.predict)).inferred_share(window)
    assert share == {layer: 1.0 for layer in LAYERS}


def test_a_partial_path_confines_what_is_inferred_below_it(data, categorizer):
    tax = Taxonomy.load()
    e = data[2][0]
    partial = replace(e, cats=e.cats[:2])  # deep and middle named, surface not
    rows, inferred = distributions([partial], tax, cached(categorizer.predict))
    assert not inferred["middle"][0] and inferred["surface"][0]
    children = {s for s in tax.labels["surface"] if tax.parent[s] == e.cats[1]}
    on = {tax.labels["surface"][j] for j in np.nonzero(rows["surface"][0] > 0)[0]}
    assert on <= children and abs(rows["surface"][0].sum() - 1) < 1e-9


def test_a_lower_level_names_its_ancestors(data, categorizer):
    tax = Taxonomy.load()
    e = data[2][0]
    wrong_top = replace(e, cats=["没有这个类", e.cats[1]])  # middle named, deep unknown to the taxonomy
    rows, inferred = distributions([wrong_top], tax, cached(categorizer.predict))
    assert tax.labels["deep"][rows["deep"][0].argmax()] == e.cats[0] and rows["deep"][0].sum() == 1
    assert not inferred["deep"][0] and inferred["surface"][0]


def test_hiding_every_category_removes_them_from_every_input(data, categorizer):
    histories = data[0]
    cfg = TrainConfig(hide_categories=1.0, cuts_per_user=4, max_events=32, progress=False)
    train, val, test, labelled, entries = prepare(histories, Taxonomy.load(), Horizons(), cfg)
    windows = [s.window for s in train + val + test]
    assert all(e.cats is None for w in windows for e in w)
    assert any(e.cats for e in labelled)  # the training users' labels still teach the categorizer
    assert all(any(t.sum() > 0 for t in s.targets.values()) for s in test)  # targets keep theirs
    # The features the trainer reads: spans of one table of every input entry.
    spans = [s.span for s in (train + val + test)[:64]]
    blind = EntryTable.build(entries, Taxonomy.load()).batch(spans, Horizons(), 32)
    assert all(blind.cats[layer].sum() == 0 and blind.past[layer].sum() == 0 for layer in LAYERS)
    reading = EntryTable.build(entries, Taxonomy.load(), cached(categorizer.predict)).batch(spans, Horizons(), 32)
    assert np.all(reading.inferred[reading.mask] == 1)
    assert all(reading.past[layer].sum() > 0 for layer in LAYERS)
    half = hide_categories(histories, 0.5, seed=3)
    hidden = sum(1 for u in histories for a, b in zip(histories[u], half[u]) if a.cats and not b.cats)
    total = sum(1 for u in histories for e in histories[u] if e.cats)
    assert 0.45 < hidden / total < 0.55 and hide_categories(histories, 0.5, seed=3) == half


def test_the_trainer_reads_the_features_the_worker_computes(data, categorizer):
    # The trainer slices one table of all entries; the worker featurizes each batch of windows.
    cfg = TrainConfig(hide_categories=0.5, cuts_per_user=4, max_events=24, progress=False)
    prepared = prepare(data[0], Taxonomy.load(), Horizons(), cfg)
    samples = prepared.train[:48] + prepared.test[:16]
    infer = cached(categorizer.predict)
    sliced = EntryTable.build(prepared.entries, Taxonomy.load(), infer).batch([s.span for s in samples],
                                                                           Horizons(), 16)
    direct = featurize([s.window for s in samples], Taxonomy.load(), Horizons(), 16, infer)
    assert sliced.texts == direct.texts and sliced.mask.sum() == direct.mask.sum() > 0
    for name in ("text_idx", "types", "attrs", "times", "inferred", "mask"):
        assert np.array_equal(getattr(sliced, name), getattr(direct, name)), name
    for layer in LAYERS:
        assert np.allclose(sliced.cats[layer], direct.cats[layer])
        assert np.allclose(sliced.past[layer], direct.past[layer], atol=1e-5)
    assert 0 < sliced.inferred.mean() < 1


def test_bootstrap_intervals_cover_a_known_difference():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(300), 4)
    a = rng.normal(0.6, 0.1, len(users))
    b = a - 0.05 + rng.normal(0, 0.02, len(users))  # a is better by 0.05
    lo, hi = paired_bootstrap(a, b, users, n=1000, seed=1)
    assert lo < 0.05 < hi and lo > 0
    lo, hi = paired_bootstrap(a, a + rng.normal(0, 0.02, len(users)), users, n=1000, seed=1)
    assert lo < 0 < hi  # no difference: the interval straddles 0


def test_the_tuned_baseline_finds_the_horizon_that_forecasts():
    rng = np.random.default_rng(1)
    n, c = 400, 6
    past = rng.poisson(1.0, (n, 3, c)).astype(float)
    targets = past[:, 2] + 0.01  # the future looks like the deep horizon, not the own one
    params = tune_baseline(past, targets, np.full(c, 1 / c))
    assert params.mix[2] >= 0.75


def test_bad_training_inputs_are_one_clear_line_and_write_nothing(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"not": "an event"}\n' * 3)
    out = tmp_path / "ckpt"
    runner = CliRunner()
    result = runner.invoke(cli, ["train", "--data", str(events), "--out", str(out), "--hide-categories", "1.5"])
    assert result.exit_code == 2 and "--hide-categories" in result.output
    short = tmp_path / "short.json"
    short.write_text(json.dumps({"name": "t", "tree": {"A": {"B": {}}}}))
    result = runner.invoke(cli, ["train", "--data", str(events), "--taxonomy", str(short), "--out", str(out)])
    assert result.exit_code == 1 and "no surface labels" in result.output
    dupes = tmp_path / "dupes.json"
    dupes.write_text(json.dumps({"name": "t", "tree": {"A": {"B": {"x": []}}, "C": {"B": {"y": []}}}}))
    result = runner.invoke(cli, ["train", "--data", str(events), "--taxonomy", str(dupes), "--out", str(out)])
    assert result.exit_code == 1 and "duplicate middle" in result.output
    result = runner.invoke(cli, ["train", "--data", str(events), "--out", str(out)])
    assert result.exit_code == 1 and "3 invalid lines skipped" in result.output and "too little data" in result.output
    assert not out.exists() or not any(out.iterdir())


def test_random_is_not_used_for_the_split_across_modules():
    # prepare() draws the split and the cuts from one seeded generator: same seed, same samples.
    items, events = generate(1500, 60, seed=2, end_ms=1_790_000_000_000)
    h, _ = load_histories([json.dumps(e, ensure_ascii=False) for e in events])
    cfg = TrainConfig(cuts_per_user=4, progress=False)
    a = prepare(h, Taxonomy.load(), Horizons(), cfg)
    random.seed(99)
    b = prepare(h, Taxonomy.load(), Horizons(), cfg)
    assert [s.user for s in a[2]] == [s.user for s in b[2]] and len(a[0]) == len(b[0])
