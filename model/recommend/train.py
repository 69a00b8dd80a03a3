"""Training and scoring the recommender inside `strata train`.

Leave-one-out by time (model/recommend/evaluate.py): the next-item model learns from every user's
items before their validation item, stops early on validation NDCG@10, and the ranking weights
(layers, popularity) and ItemKNN's neighbourhood size are chosen on validation items too. Test
items are touched once, for the figures. The layered profiles the ranking reads come from the
profile model, which (in trainer.py) never sees a user's last two item events either.
"""
from __future__ import annotations

import logging
import math
import random
import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

from model.categories import Infer
from model.recommend.baselines import ItemKNN, popularity
from model.recommend.catalogue import Catalogue, CatalogueItem
from model.recommend.evaluate import Split, compare, leave_one_out, list_ranks, per_user, target_ranks
from model.recommend.ranking import COLD_USER_EVENTS, INTEREST_ONLY, RankWeights, combine, exclude, lifts, ranked
from model.recommend.recommender import Recommender, RecommenderState
from model.recommend.sequential import SequentialConfig, SequentialModel
from model.taxonomy import LAYERS, Taxonomy
from state.window import Entry

log = logging.getLogger(__name__)

Profiles = Callable[[Sequence[Sequence[Entry]]], list[dict[str, np.ndarray]]]
LAYER_GRID = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
POPULARITY_GRID = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0)
# The next-item weight stays 1 for users with a history (the scale is relative); for cold users
# it is fitted too, against the layers and popularity.
GRIDS = {**{layer: LAYER_GRID for layer in LAYERS}, "popularity": POPULARITY_GRID}
COLD_GRIDS = {"sequential": (0.0, 0.25, 0.5, 1.0), **GRIDS}
LIST_LENGTH = 10  # what the figures score (HR@10, NDCG@10)
PER_CATEGORY_GRID = (3, 4, 5, 7, LIST_LENGTH - 1)
KNN_GRID = (10, 50, 100, 200)
# Above this many items a training step scores a sample of the catalogue, not all of it.
FULL_SOFTMAX_ITEMS = 8192
SAMPLED_NEGATIVES = 2048
COLD_USER_SLICE = 5  # the cold-start slice: users with at most this many events before the test item
# Users scored at once in fitting and evaluation: [users, items] arrays other than one stage's
# next-item scores exist for this many users at a time, never for all (a million events: 6,000
# users x 4,050 items is 97 MB per float32 array). A multiple of SequentialModel.scores' chunk,
# so that scoring a part batches users as scoring them all does.
SCORING_CHUNK = 512


@dataclass
class RecommendConfig:
    max_len: int = 50
    d_model: int = 64
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2
    batch_size: int = 128
    lr: float = 1e-3
    epochs: int = 40
    patience: int = 5


def held_out(histories: dict[str, list[Entry]]) -> dict[str, list[Entry]]:
    """Each history up to (not including) its validation item event, for users that have one:
    what every model may learn from."""
    out = {}
    for user, entries in histories.items():
        positions = [i for i, e in enumerate(entries) if e.item]
        out[user] = entries[:positions[-2]] if len(positions) >= 3 else entries
    return out


def catalogue_items(histories: dict[str, list[Entry]]) -> list[CatalogueItem]:
    """The items events name, with the text and categories of their first event (completed from the
    catalogue file where there was one), in order of first appearance."""
    items: dict[str, CatalogueItem] = {}
    for user in sorted(histories):
        for e in histories[user]:
            if e.item and e.item not in items:
                items[e.item] = CatalogueItem(e.item, e.text, tuple(e.cats or ()))
    return list(items.values())


def _chunks(sequences: Sequence[np.ndarray], max_len: int) -> list[np.ndarray]:
    """Training pieces of at most max_len + 1 rows, cut back from each sequence's end."""
    out = []
    for s in sequences:
        for end in range(len(s), 1, -max_len):
            out.append(s[max(0, end - max_len - 1):end])
    return out


def _chunked(n: int, part: Callable[[slice], dict]) -> dict:
    """`part(rows)` (a dict of per-user arrays) for SCORING_CHUNK of n users at a time, joined: only
    per-user results outlive a part. (Called once for no users, so that the keys still come back.)"""
    parts = [part(slice(start, start + SCORING_CHUNK)) for start in range(0, max(n, 1), SCORING_CHUNK)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def _target_ranks(scores: Callable[[slice], np.ndarray], targets: np.ndarray, consumed: Sequence[np.ndarray]
                  ) -> np.ndarray:
    """target_ranks of every user, `scores(rows)` ([rows, items]) made for a part of them at a time."""
    def part(rows: slice) -> dict[str, np.ndarray]:
        return {"rank": target_ranks(scores(rows), targets[rows], consumed[rows])}

    return _chunked(len(targets), part)["rank"]


def _ndcg(scores: Callable[[Sequence[np.ndarray]], np.ndarray], histories: list[np.ndarray], targets: np.ndarray
          ) -> float:
    """Mean NDCG@10 of a contender that scores histories (the next-item model, ItemKNN)."""
    return float(per_user(_target_ranks(lambda rows: scores(histories[rows]), targets, histories))["ndcg@10"].mean())


def _next_item_loss(model: SequentialModel, vectors: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                    generator: torch.Generator) -> torch.Tensor:
    """Softmax cross-entropy of each position's next item over the whole catalogue; over a catalogue
    larger than FULL_SOFTMAX_ITEMS, over the batch's targets and SAMPLED_NEGATIVES items drawn
    uniformly, each logit corrected by its log chance of being drawn (sampled softmax)."""
    hidden = model.hidden(vectors, inputs)
    n = len(vectors)
    if n <= FULL_SOFTMAX_ITEMS:
        logits = hidden @ vectors.T
    else:
        known = targets >= 0
        real = targets[known]
        drawn = torch.randint(n, (SAMPLED_NEGATIVES,), generator=generator, device=targets.device)
        candidates, inverse = torch.unique(torch.cat([real, drawn]), return_inverse=True)
        targets = targets.clone()
        targets[known] = inverse[:len(real)]
        is_target = torch.zeros(len(candidates), dtype=torch.bool, device=targets.device)
        is_target[inverse[:len(real)]] = True
        correction = torch.where(is_target, 0.0, math.log(n / SAMPLED_NEGATIVES))
        logits = hidden @ vectors[candidates].T + correction
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)


def fit_sequential(rec: Recommender, train_seqs: Sequence[np.ndarray], split: Split, cfg: RecommendConfig,
                   seed: int, deadline: Optional[float], progress: bool) -> list[dict]:
    """Next-item training (every position of every chunk predicts the next item); the best epoch by
    validation NDCG@10 is kept."""
    model = rec.model
    device = next(model.parameters()).device
    features = rec.features().to(device)
    chunks = _chunks(train_seqs, cfg.max_len)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = random.Random(seed)
    generator = torch.Generator(device=device).manual_seed(seed)
    history, best, best_state, bad, last_s = [], -1.0, None, 0, 0.0
    val_hist, val_targets = split.history("validation"), split.targets("validation")
    for epoch in range(cfg.epochs):
        if deadline is not None and time.monotonic() + last_s > deadline:
            log.info("recommender: stopping before epoch %d, the --max-minutes budget", epoch + 1)
            break
        started = time.monotonic()
        model.train()
        rng.shuffle(chunks)
        total = 0.0
        for i in tqdm(range(0, len(chunks), cfg.batch_size), desc=f"next-item epoch {epoch + 1}", disable=not progress):
            part = chunks[i:i + cfg.batch_size]
            seqs = torch.full((len(part), max(len(c) for c in part)), -1, dtype=torch.long)
            for j, c in enumerate(part):
                seqs[j, :len(c)] = torch.as_tensor(c)
            seqs = seqs.to(device)
            loss = _next_item_loss(model, model.item_vectors(features), seqs[:, :-1], seqs[:, 1:], generator)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        rec.vectors = model.catalogue_vectors(features)
        ndcg = _ndcg(rec.sequential_scores, val_hist, val_targets)
        last_s = time.monotonic() - started
        history.append({"epoch": epoch + 1, "loss": total / max(1, -(-len(chunks) // cfg.batch_size)),
                        "validation_ndcg@10": ndcg})
        log.info("next-item epoch %d: loss %.4f, validation NDCG@10 %.4f", epoch + 1, history[-1]["loss"], ndcg)
        if ndcg > best + 1e-5:
            best, bad = ndcg, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    rec.vectors = model.catalogue_vectors(features)
    return history


def fit_weights(per_user_ndcg: Callable[[RankWeights], np.ndarray], starts: Sequence[RankWeights],
                grids: dict[str, Sequence[float]]) -> tuple[RankWeights, float]:
    """Weights by validation NDCG@10: coordinate ascent (two passes) from the best of `starts` on
    half the validation users, then whichever of the result and the starts does best on the other
    half (with a thousand users, a grid search alone picks noise). Returns the weights and their
    NDCG@10 over all validation users."""
    cache: dict[RankWeights, np.ndarray] = {}

    def rows(w: RankWeights) -> np.ndarray:
        if w not in cache:
            cache[w] = per_user_ndcg(w)
        return cache[w]

    fit = np.arange(len(rows(starts[0]))) % 2 == 0
    best, weights = max(((rows(w)[fit].mean(), w) for w in starts), key=lambda t: t[0])
    for _ in range(2):
        for name, grid in grids.items():
            for value in grid:
                trial = RankWeights(**{**weights.to_dict(), name: value})
                s = rows(trial)[fit].mean()
                if s > best + 1e-6:
                    best, weights = s, trial
    chosen = max([weights, *starts], key=lambda w: rows(w)[~fit].mean())
    return chosen, float(rows(chosen).mean())


@dataclass
class Protocol:
    """Leave-one-out over a catalogue: each user's item rows, where their item events lie in their
    history, the split, and every user's rows before the validation and before the test item."""

    positions: dict[str, list[int]]
    split: Split
    before: dict[str, list[np.ndarray]]

    @classmethod
    def of(cls, inputs: dict[str, list[Entry]], cat: Catalogue) -> "Protocol":
        positions = {u: [i for i, e in enumerate(h) if e.item in cat.index] for u, h in inputs.items()}
        sequences = {u: cat.rows_of(inputs[u][i].item for i in pos) for u, pos in positions.items()}
        split = leave_one_out(sequences)
        evaluated = set(split.users)
        before = {stage: [s[:-cut] if u in evaluated else s for u, s in sequences.items()]
                  for stage, cut in (("validation", 2), ("test", 1))}
        return cls(positions, split, before)

    def windows(self, inputs: dict[str, list[Entry]], stage: str) -> list[list[Entry]]:
        """Each evaluated user's events before the stage's item: what their profile is made of."""
        back = 2 if stage == "validation" else 1
        return [inputs[u][:self.positions[u][-back]] for u in self.split.users]


@dataclass
class Stage:
    """A stage's users as the ranking reads them: histories, targets, next-item scores (one [users,
    items] array, kept: every weight trial reads them, and each recomputation costs a pass of the
    model), the layers' lift per label ([users, labels]: gathered per item only for the users
    being scored) and which users are ranked with the cold weights (None: nobody)."""

    hist: list[np.ndarray]
    targets: np.ndarray
    seq: Optional[np.ndarray]
    lift: dict[str, np.ndarray]
    cold: Optional[np.ndarray] = None

    def scores(self, rec: Recommender, weights: RankWeights, rows: slice) -> np.ndarray:
        """[rows, N] float32: the combined scores of some of the users."""
        return combine(weights, None if self.seq is None else self.seq[rows],
                       {layer: v[rows] for layer, v in self.lift.items()}, rec.catalogue, rec.log_popularity,
                       None if self.cold is None else self.cold[rows], rec.state.cold_weights)


def _stage(rec: Recommender, protocol: Protocol, windows: list[list[Entry]], profiles: Profiles, stage: str) -> Stage:
    """The validation or test stage; `windows`: each user's events before the stage's item."""
    hist = protocol.split.history(stage)
    return Stage(hist, protocol.split.targets(stage), rec.sequential_scores(hist), lifts(profiles(windows), rec.prior),
                 np.array([len(w) <= COLD_USER_EVENTS for w in windows]))


def _as_cold(rec: Recommender, windows: list[list[Entry]], targets: np.ndarray, profiles: Profiles) -> Stage:
    """The same targets as if each user had only their last COLD_USER_EVENTS events: a new user."""
    short = [w[-COLD_USER_EVENTS:] for w in windows]
    hist = [rec.catalogue.rows_of(e.item for e in w if e.item) for w in short]
    return Stage(hist, targets, rec.sequential_scores(hist), lifts(profiles(short), rec.prior))


def _ndcg_per_user(rec: Recommender, stage: Stage, weights: RankWeights) -> np.ndarray:
    return per_user(_target_ranks(lambda rows: stage.scores(rec, weights, rows), stage.targets, stage.hist))["ndcg@10"]


def _model_ranks(rec: Recommender, scores: np.ndarray, targets: np.ndarray, consumed: Sequence[np.ndarray],
                 caps: Sequence[int]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """(each target's rank by `scores`, and in the list served with each category cap of `caps`);
    consumed items are excluded from `scores` in place."""
    cat = rec.catalogue
    by_score = target_ranks(scores, targets, consumed)
    exclude(scores, consumed)
    return by_score, {cap: list_ranks(ranked(scores, LIST_LENGTH, cat.label["surface"], cat.sure["surface"], cap),
                                      targets, by_score) for cap in caps}


def evaluate_recommender(rec: Recommender, inputs: dict[str, list[Entry]], profiles: Profiles, seed: int,
                         protocol: Optional[Protocol] = None) -> dict:
    """Test items, full ranking: the recommender as served (and uncapped), the next-item model alone,
    MostPop and ItemKNN (its k chosen on validation items); intervals of model - each; the slices of
    test items new since training and of users with few events."""
    cat = rec.catalogue
    protocol = protocol or Protocol.of(inputs, cat)
    split, before = protocol.split, protocol.before
    val_hist, val_targets = split.history("validation"), split.targets("validation")
    knn_val = {k: _ndcg(ItemKNN(before["validation"], len(cat), k).scores, val_hist, val_targets) for k in KNN_GRID}
    knn_k = max(KNN_GRID, key=lambda k: (knn_val[k], -k))

    windows, targets = protocol.windows(inputs, "test"), split.targets("test")
    knn = ItemKNN(before["test"], len(cat), knn_k)
    counts = popularity(before["test"], len(cat)).astype(np.float32)
    ranks = _contender_ranks(rec, _stage(rec, protocol, windows, profiles, "test"), rec.state.weights, counts, knn)
    slices = {"new_items": ~rec.has_id[targets],
              f"users_with_at_most_{COLD_USER_SLICE}_events": np.array([len(w) <= COLD_USER_SLICE for w in windows])}
    result = compare(ranks, seed=seed, slices=slices)
    result["slices"][f"only_last_{COLD_USER_EVENTS}_events"] = _as_cold_users(rec, windows, targets, profiles, seed,
                                                                               counts, knn)
    result.update(weights=rec.state.weights.to_dict(), cold_weights=rec.state.cold_weights.to_dict(), itemknn_k=knn_k,
                  itemknn_validation_ndcg10={str(k): v for k, v in knn_val.items()}, items=len(cat),
                  users=len(split.users), per_category=rec.state.per_category)
    return result


def _contender_ranks(rec: Recommender, stage: Stage, weights: RankWeights, counts: np.ndarray, knn: ItemKNN
                     ) -> dict[str, np.ndarray]:
    """Each contender's rank of each user's target: the recommender as served (`weights`, the
    category cap) and uncapped, the next-item model alone, MostPop (`counts`), ItemKNN; scored a
    part of the users at a time."""
    def part(rows: slice) -> dict[str, np.ndarray]:
        hist, targets = stage.hist[rows], stage.targets[rows]
        by_score, served = _model_ranks(rec, stage.scores(rec, weights, rows), targets, hist, [rec.state.per_category])
        ranks = {"model": served[rec.state.per_category], "model_uncapped": by_score}
        if stage.seq is not None:
            ranks["sequential"] = target_ranks(stage.seq[rows], targets, hist)
        ranks["mostpop"] = target_ranks(np.broadcast_to(counts, (len(hist), len(counts))), targets, hist)
        ranks["itemknn"] = target_ranks(knn.scores(hist), targets, hist)
        return ranks

    return _chunked(len(stage.targets), part)


def _as_cold_users(rec: Recommender, windows: list[list[Entry]], targets: np.ndarray, profiles: Profiles, seed: int,
                   counts: np.ndarray, knn: ItemKNN) -> dict:
    """The test items again, as if each user had only their last COLD_USER_EVENTS events: what a
    new user gets (the cold-start rule) against the other contenders on the same few events."""
    ranks = _contender_ranks(rec, _as_cold(rec, windows, targets, profiles), rec.state.cold_weights, counts, knn)
    del ranks["model_uncapped"]  # this slice reports the cold list as served against the others
    block = compare(ranks, seed=seed)
    block.pop("slices")
    return block


def _fit_cap(rec: Recommender, stage: Stage) -> tuple[int, float]:
    """The most items of one surface category a list may hold: the one whose served lists have the
    best validation NDCG@10 (the smaller on ties); every choice keeps a list at least two
    categories deep."""
    def part(rows: slice) -> dict[int, np.ndarray]:
        scores = stage.scores(rec, rec.state.weights, rows)
        return _model_ranks(rec, scores, stage.targets[rows], stage.hist[rows], PER_CATEGORY_GRID)[1]

    results = {cap: float(per_user(r)["ndcg@10"].mean()) for cap, r in _chunked(len(stage.targets), part).items()}
    cap = max(PER_CATEGORY_GRID, key=lambda c: (results[c], -c))
    return cap, results[cap]


def _fit_ranking(rec: Recommender, protocol: Protocol, inputs: dict[str, list[Entry]], profiles: Profiles
                 ) -> tuple[float, float]:
    """Sets the ranking weights and the category cap, then cold users' weights (on the validation
    items again, as if each user had only their last few events), by validation NDCG@10; returns
    both scores. Each stage lives only in its call: one [users, items] array at a time."""
    state = rec.state
    windows = protocol.windows(inputs, "validation")
    state.per_category, val_ndcg = _fit_weights_and_cap(rec, _stage(rec, protocol, windows, profiles, "validation"))
    cold = _as_cold(rec, windows, protocol.split.targets("validation"), profiles)
    state.cold_weights, cold_ndcg = fit_weights(lambda w: _ndcg_per_user(rec, cold, w),
                                                [INTEREST_ONLY, RankWeights(sequential=1.0), state.weights], COLD_GRIDS)
    return val_ndcg, cold_ndcg


def _fit_weights_and_cap(rec: Recommender, stage: Stage) -> tuple[int, float]:
    """Sets the ranking weights on `stage`; returns the category cap fitted with them, and its NDCG@10."""
    rec.state.weights, _ = fit_weights(lambda w: _ndcg_per_user(rec, stage, w), [RankWeights(sequential=1.0)], GRIDS)
    return _fit_cap(rec, stage)


def train_recommender(inputs: dict[str, list[Entry]], items: list[CatalogueItem], taxonomy: Taxonomy,
                      prior: dict[str, np.ndarray], infer: Infer, content: Callable[[list[str]], np.ndarray],
                      profiles: Profiles, content_dim: int, cfg: RecommendConfig, seed: int,
                      device: torch.device, deadline: Optional[float] = None, progress: bool = True,
                      ) -> tuple[Recommender, dict]:
    """(the recommender for the checkpoint, the "recommendation" block of metrics.json).
    `inputs`: every user's whole history as the models may see it; `profiles`: the trained profile
    model on windows."""
    say = log.info if progress else (lambda *a: None)
    started = time.monotonic()
    torch.manual_seed(seed)
    cat = Catalogue.build(items, taxonomy, infer)
    protocol = Protocol.of(inputs, cat)
    counts = popularity(protocol.before["validation"], len(cat))
    trained = np.nonzero(counts > 0)[0]
    say(f"recommender: {len(cat)} items ({len(trained)} in training), {len(protocol.split.users)} users evaluated")

    seq_config = SequentialConfig(n_ids=len(trained) + 1, n_surface=len(taxonomy.labels["surface"]),
                                  content_dim=content_dim, d_model=cfg.d_model, layers=cfg.layers, heads=cfg.heads,
                                  max_len=cfg.max_len, dropout=cfg.dropout)
    state = RecommenderState(RankWeights(), {k: list(map(float, v)) for k, v in prior.items()},
                             vocab=[cat.ids[i] for i in trained], counts=[float(counts[i]) for i in trained],
                             sequential=asdict(seq_config))
    rec = Recommender(taxonomy, state, SequentialModel(seq_config).to(device), infer, content)
    rec.use(cat)
    history = fit_sequential(rec, protocol.before["validation"], protocol.split, cfg, seed, deadline, progress)

    val_ndcg, cold_ndcg = _fit_ranking(rec, protocol, inputs, profiles)
    say(f"recommender: weights {state.weights.to_dict()} (validation NDCG@10 {val_ndcg:.4f}), for cold users "
        f"{state.cold_weights.to_dict()} ({cold_ndcg:.4f})")
    result = evaluate_recommender(rec, inputs, profiles, seed, protocol)
    result.update(validation_ndcg10=val_ndcg, cold_validation_ndcg10=cold_ndcg, history=history,
                  items_in_training=int(len(trained)), seconds=round(time.monotonic() - started, 1))
    return rec, result
