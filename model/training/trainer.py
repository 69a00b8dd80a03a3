"""The offline trainer: events -> forecast samples -> categorizer -> (LM pre-training) -> layered
model -> scored against the yardsticks on held-out users -> checkpoint.

Each user's history is cut at several moments (model/training/samples.py). Users are split into
train / validation / test, so test users are never seen in training. The per-event categorizer
learns from the training users' labelled events; the yardsticks are tuned on validation users;
everything is scored on the test users, with paired bootstrap intervals.
"""
from __future__ import annotations

import ctypes
import gc
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import torch
from tqdm import tqdm

from model.categories import known_labels
from model.categorizer import cached, train_categorizer
from model.checkpoint import save_checkpoint
from model.encoders import PAD, ScratchGPT2Encoder, TextEncoder, build_encoder
from model.features import EntryTable, featurize
from model.profile import Horizons
from model.recommend.evaluate import format_table as format_recommendation
from model.recommend.train import (RecommendConfig, catalogue_items, evaluate_recommender, held_out,
                                   train_recommender)
from model.taxonomy import LAYERS, Taxonomy
from model.training.data import Histories, blank_text, hide_categories
from model.training.evaluate import compare, format_table, normalise, row_metrics
from model.training.samples import Sample, make_samples, split_users, stack_targets, user_batches
from model.training.yardsticks import Yardsticks
from model.user_model import LayeredInterestModel, ModelConfig, batch_tensors
from state.window import Entry

log = logging.getLogger(__name__)


PROFILE_BUDGET_SHARE = 0.65  # of --max-minutes: when the profile model's last epoch must end
RECOMMENDER_BUDGET_END = 0.9  # and the next-item model's (evaluation and the checkpoint follow)


@dataclass
class TrainConfig:
    encoder: str = "cnn-lstm"
    seed: int = 0
    max_events: int = 64
    cuts_per_user: int = 16
    min_history: int = 3
    d_model: int = 64
    layers: int = 1
    heads: int = 4
    text_dim: int = 64  # for scratch and cnn-lstm; hf encoders bring their own
    batch_size: int = 64
    lr: float = 3e-4
    epochs: int = 20
    patience: int = 3
    lm_epochs: int = 3
    hide_categories: float = 0.0  # fraction of input events whose categories are hidden (per seed)
    max_minutes: Optional[float] = None  # no epoch starts that would end past this, from training's start
    rec_epochs: int = 40  # the next-item model's, at most (early stopping on validation NDCG@10)
    rec_max_len: int = 50  # the items it reads back from each position
    progress: bool = True


def soft_cross_entropy(log_probs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    loss = 0.0
    for layer in LAYERS:
        t = targets[layer]
        mass = t.sum(-1, keepdim=True)
        keep = mass.squeeze(-1) > 0
        if keep.any():
            loss = loss + (-(t[keep] / mass[keep]) * log_probs[layer][keep]).sum(-1).mean()
    return loss


class Trainer:
    def __init__(self, taxonomy: Taxonomy, horizons: Horizons, cfg: TrainConfig, device: torch.device):
        self.taxonomy, self.horizons, self.cfg, self.device = taxonomy, horizons, cfg, device
        self.encoder: Optional[TextEncoder] = None
        self.model: Optional[LayeredInterestModel] = None
        self.table: Optional[EntryTable] = None  # every input entry as arrays; samples' spans index it
        # Per text of the table: token ids for a trainable encoder, or the vector of a frozen one.
        self.text_inputs: Optional[torch.Tensor] = None
        self.deadline: Optional[float] = None  # time.monotonic() past which no epoch may end

    def set_entries(self, table: EntryTable) -> None:
        """Tokenize (or, for a frozen encoder, encode) each distinct text once, for every epoch."""
        self.table = table
        texts = table.texts
        if self.encoder.trainable:
            ids, _ = self.encoder.tokenize(texts or [""])
            self.text_inputs = ids.to(torch.int32)
            return
        self.encoder.to(self.device).eval()
        parts = []
        with torch.no_grad():
            for i in tqdm(range(0, len(texts), 256), desc="encoding texts", disable=not self.cfg.progress):
                ids, mask = self.encoder.tokenize(texts[i:i + 256])
                parts.append(self.encoder(ids.to(self.device), mask.to(self.device)).cpu())
        self.text_inputs = torch.cat(parts) if parts else torch.zeros((0, self.encoder.dim))

    def _vectors(self, text_ids: np.ndarray) -> torch.Tensor:
        if len(text_ids) == 0:
            return torch.zeros((1, self.encoder.dim), device=self.device)
        rows = self.text_inputs[torch.from_numpy(text_ids)]
        if not self.encoder.trainable:
            return rows.to(self.device)
        mask = rows != PAD
        width = int(mask.sum(1).max())
        return self.encoder(rows[:, :width].long().to(self.device), mask[:, :width].to(self.device))

    @torch.no_grad()
    def encode_texts(self, texts: list[str], chunk: int = 256) -> torch.Tensor:
        """[len(texts), dim] vectors from the (trained) text encoder."""
        self.encoder.eval()
        parts = [torch.zeros((0, self.encoder.dim), device=self.device)]
        for i in range(0, len(texts), chunk):
            ids, mask = self.encoder.tokenize(texts[i:i + chunk])
            parts.append(self.encoder(ids.to(self.device), mask.to(self.device)).float())
        return torch.cat(parts)

    @torch.no_grad()
    def predict_windows(self, windows: list[list[Entry]], infer, chunk: int = 256) -> list[dict[str, np.ndarray]]:
        """The trained model's profile of each window, as the worker computes it."""
        self.model.eval()
        out = []
        for i in range(0, len(windows), chunk):
            batch = featurize(windows[i:i + chunk], self.taxonomy, self.horizons, self.cfg.max_events, infer)
            vecs = self.encode_texts(batch.texts) if batch.texts else torch.zeros((1, self.encoder.dim), device=self.device)
            log_probs = self.model(vecs, batch_tensors(batch, self.device))
            probs = {layer: log_probs[layer].exp().cpu().numpy().astype(np.float64) for layer in LAYERS}
            out += [{layer: probs[layer][j] / probs[layer][j].sum() for layer in LAYERS} for j in range(len(batch.mask))]
        return out

    def pretrain_lm(self, texts: list[str]) -> list[float]:
        """Causal LM on the event text: the scratch encoder learns the language before the heads."""
        enc: ScratchGPT2Encoder = self.encoder
        enc.to(self.device).train()
        opt = torch.optim.AdamW(enc.parameters(), lr=3e-3)
        rng = random.Random(self.cfg.seed)
        losses = []
        for epoch in range(self.cfg.lm_epochs):
            order = sorted(set(texts))
            rng.shuffle(order)
            total, n = 0.0, 0
            for i in tqdm(range(0, len(order), 128), desc=f"LM epoch {epoch + 1}", disable=not self.cfg.progress):
                ids, mask = enc.tokenize(order[i:i + 128])
                loss = enc.lm_loss(ids.to(self.device), mask.to(self.device))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, n = total + loss.item(), n + 1
            losses.append(total / max(n, 1))
            log.info("LM epoch %d: loss %.3f", epoch + 1, losses[-1])
        return losses

    def _forward(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        batch = self.table.batch([s.span for s in samples], self.horizons, self.cfg.max_events)
        return self.model(self._vectors(batch.text_ids), batch_tensors(batch, self.device))

    def _targets(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v).float().to(self.device) for k, v in stack_targets(samples).items()}

    @torch.no_grad()
    def predict(self, samples: list[Sample]) -> dict[str, np.ndarray]:
        self.model.eval()
        parts = {layer: [] for layer in LAYERS}
        for i in range(0, len(samples), 256):
            out = self._forward(samples[i:i + 256])
            for layer in LAYERS:
                parts[layer].append(out[layer].exp().cpu().numpy())
        return {layer: np.concatenate(parts[layer]) for layer in LAYERS}

    @torch.no_grad()
    def loss(self, samples: list[Sample]) -> float:
        self.model.eval()
        total = 0.0
        for i in range(0, len(samples), 256):
            chunk = samples[i:i + 256]
            total += soft_cross_entropy(self._forward(chunk), self._targets(chunk)).item() * len(chunk)
        return total / len(samples)

    @torch.no_grad()
    def fit_blend(self, val: list[Sample], baseline: dict[str, np.ndarray],
                  grid=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)) -> dict[str, float]:
        """Per layer, the log-linear blend of model and tuned baseline (`baseline`: its validation
        probabilities) with the lowest validation cross-entropy among those whose validation
        NDCG@3 is no lower than the baseline's: where the model has learned nothing for a layer,
        or trades ranking for calibration, it falls back toward the baseline."""
        for layer in LAYERS:
            getattr(self.model, f"blend_{layer}").fill_(1.0)
        model_lp = {k: np.log(np.clip(v, 1e-12, 1)) for k, v in self.predict(val).items()}
        targets = stack_targets(val)
        chosen = {}
        for layer in LAYERS:
            keep, t = normalise(targets[layer])
            if not keep.any():
                continue  # nothing to fit on: the model alone
            base_lp = np.log(np.clip(baseline[layer][keep], 1e-12, 1))
            scores = {}
            for beta in grid:
                z = beta * model_lp[layer][keep] + (1 - beta) * base_lp
                z = z - z.max(1, keepdims=True)
                rows = row_metrics(np.exp(z) / np.exp(z).sum(1, keepdims=True), t)
                scores[beta] = (float(rows["cross_entropy"].mean()), float(rows["ndcg@3"].mean()))
            ranks_no_worse = [b for b in grid if scores[b][1] >= scores[0.0][1] - 1e-9]
            chosen[layer] = min(ranks_no_worse, key=lambda b: scores[b][0])
            getattr(self.model, f"blend_{layer}").fill_(chosen[layer])
        return chosen

    def fit(self, train: list[Sample], val: list[Sample]) -> list[dict]:
        cfg = self.cfg
        rng = random.Random(cfg.seed)
        params = list(self.model.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
        best, best_state, bad, history = float("inf"), None, 0, []
        last_epoch_s = 0.0
        for epoch in range(cfg.epochs):
            if self.deadline is not None and time.monotonic() + last_epoch_s > self.deadline:
                log.info("stopping before epoch %d: it would end past the --max-minutes budget", epoch + 1)
                break
            epoch_started = time.monotonic()
            self.model.train()
            total = 0.0
            batches = user_batches(train, cfg.batch_size, rng)
            for batch in tqdm(batches, desc=f"epoch {epoch + 1}", disable=not cfg.progress):
                chunk = [train[j] for j in batch]
                loss = soft_cross_entropy(self._forward(chunk), self._targets(chunk))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                total += loss.item() * len(chunk)
            val_loss = self.loss(val)
            last_epoch_s = time.monotonic() - epoch_started
            history.append({"epoch": epoch + 1, "train_loss": total / len(train), "val_loss": val_loss})
            log.info("epoch %d: train %.4f  validation %.4f", epoch + 1, total / len(train), val_loss)
            if val_loss < best - 1e-4:
                best, bad = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                bad += 1
                if bad >= cfg.patience:
                    break
        if best_state is not None:
            self.model.load_state_dict(best_state)
        return history


class Prepared(NamedTuple):
    train: list[Sample]
    validation: list[Sample]
    test: list[Sample]
    labelled: list[Entry]  # the training users' entries with the categories they carry
    entries: list[Entry]  # every input entry; the samples' spans index it


def prepare(histories: Histories, taxonomy: Taxonomy, horizons: Horizons, cfg: TrainConfig,
            blank: bool = False) -> Prepared:
    """The split, the samples and the inputs as the protocol says (categories hidden in `cfg.hide_categories` of the events, text
    blanked with `blank`); targets always come from the labels events really carry."""
    rng = random.Random(cfg.seed)
    train_users, val_users, test_users = split_users(list(histories), rng)
    inputs = hide_categories(histories, cfg.hide_categories, cfg.seed)
    if blank:
        inputs = blank_text(inputs)
    samples, entries = make_samples(histories, inputs, taxonomy, horizons, cfg.cuts_per_user, cfg.min_history,
                           cfg.max_events, rng)
    parts = [[s for s in samples if s.user in users] for users in (train_users, val_users, test_users)]
    if not all(parts):
        raise ValueError(f"too little data: {', '.join(str(len(p)) for p in parts)} train/validation/test samples "
                         f"from {len(histories)} users; need users with more than {cfg.min_history} events")
    labelled = [e for u in sorted(train_users) for e in histories[u]]
    return Prepared(*parts, labelled, entries)


def release_memory() -> None:
    """Collect what is unreachable and hand the freed heap back to the system: glibc's malloc keeps
    it otherwise, and the RSS of a run counts it as if still in use."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: its allocator returns memory its own way
        pass


def categorizer_accuracy(categorizer, entries: list, taxonomy: Taxonomy) -> dict[str, float]:
    """Top-1 accuracy per layer of the categorizer on labelled events of held-out users."""
    labelled = [e for e in entries if e.cats and e.tokens]
    if not labelled:
        return {}
    probs = categorizer.predict(labelled)
    rows, known = known_labels(labelled, taxonomy)
    return {layer: round(float(np.mean(probs[layer].argmax(1)[known[layer]] == rows[layer].argmax(1)[known[layer]])), 4)
            for layer in LAYERS if known[layer].any()}


def train(histories: Histories, taxonomy: Taxonomy, out: Path, cfg: TrainConfig,
          horizons: Horizons = Horizons(), device: Optional[torch.device] = None) -> tuple[Path, dict]:
    """Train, evaluate on held-out users against the yardsticks, write a checkpoint."""
    started = time.monotonic()
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = device or torch.device("cpu")
    say = (lambda m: log.info(m)) if cfg.progress else (lambda m: None)
    # Nothing learns from a user's last two item events: they are the recommender's validation
    # and test items (model/recommend/evaluate.py).
    train_s, val_s, test_s, labelled, entries = prepare(held_out(histories), taxonomy, horizons, cfg)
    say(f"samples: {len(train_s)} train, {len(val_s)} validation, {len(test_s)} test")

    say(f"categorizer: learning from the {len(labelled)} entries of training users")
    categorizer = train_categorizer(labelled, taxonomy, seed=cfg.seed,
                                    progress=lambda e, n: say(f"categorizer epoch {e}/{n}"))
    infer = cached(categorizer.predict)
    say("tuning the yardsticks on validation users")
    yardsticks = Yardsticks.fit(labelled, train_s, val_s, taxonomy, horizons, infer, cfg.seed)
    say("yardsticks tuned on validation users (the counting baseline and the text classifier)")

    trainer = Trainer(taxonomy, horizons, cfg, device)
    rec_deadline = None
    if cfg.max_minutes is not None:  # the profile model's epochs get most of it, the next-item model the rest
        trainer.deadline = started + cfg.max_minutes * 60 * PROFILE_BUDGET_SHARE
        rec_deadline = started + cfg.max_minutes * 60 * RECOMMENDER_BUDGET_END
    texts = sorted({e.text for s in train_s for e in s.window if e.text})
    arch = {} if cfg.encoder.startswith("hf:") else {"dim": cfg.text_dim}
    trainer.encoder = build_encoder(cfg.encoder, texts, **arch)
    lm_losses = trainer.pretrain_lm(texts) if isinstance(trainer.encoder, ScratchGPT2Encoder) else []
    say(f"features of {len(entries)} entries")
    trainer.set_entries(EntryTable.build(entries, taxonomy, infer))
    say(f"features ready: {len(trainer.table.texts)} distinct texts")
    model_config = ModelConfig(
        n_labels={layer: len(taxonomy.labels[layer]) for layer in LAYERS}, text_dim=trainer.encoder.dim,
        prior={layer: yardsticks.prior[layer].tolist() for layer in LAYERS},
        baseline={layer: asdict(yardsticks.baseline[layer]) for layer in LAYERS}, d_model=cfg.d_model,
        layers=cfg.layers, heads=cfg.heads, max_events=cfg.max_events)
    trainer.model = LayeredInterestModel(model_config, encoder=trainer.encoder).to(device)
    initial_val = trainer.loss(val_s)
    history = trainer.fit(train_s, val_s)
    blend = trainer.fit_blend(val_s, yardsticks.probs(val_s)["baseline"])

    probs = {"model": trainer.predict(test_s), **yardsticks.probs(test_s)}
    test_users = {s.user for s in test_s}
    result = compare(probs, stack_targets(test_s), np.array([s.user for s in test_s]), seed=cfg.seed)

    metrics = {
        **result,
        "encoder": cfg.encoder,
        "hidden_categories": cfg.hide_categories,
        "users": {"train": len({s.user for s in train_s}), "validation": len({s.user for s in val_s}),
                  "test": len({s.user for s in test_s})},
        "samples": {"train": len(train_s), "validation": len(val_s), "test": len(test_s)},
        "categorizer_accuracy": categorizer_accuracy(categorizer, [e for u in sorted(test_users)
                                                                   for e in histories[u]], taxonomy),
        "baseline_params": {layer: asdict(p) for layer, p in yardsticks.baseline.items()},
        "text_baseline_params": {layer: asdict(p) for layer, p in yardsticks.text_params.items()},
        "blend": blend,
        "initial_validation_loss": initial_val,
        "history": history,
        "lm_losses": lm_losses,
    }
    # The profile phase's samples and features are done with: free them before the recommender's
    # [users, items] arrays arrive (a million events' worth is gigabytes).
    del train_s, val_s, test_s, entries, probs, texts
    trainer.table = trainer.text_inputs = None
    release_memory()

    say("recommender: the next-item model, ranking weights and baselines")
    inputs = hide_categories(histories, cfg.hide_categories, cfg.seed)
    recommender, metrics["recommendation"] = train_recommender(
        inputs, catalogue_items(histories), taxonomy, yardsticks.prior, infer,
        lambda texts: trainer.encode_texts(texts).cpu().numpy(), lambda windows: trainer.predict_windows(windows, infer),
        trainer.encoder.dim, RecommendConfig(epochs=cfg.rec_epochs, max_len=cfg.rec_max_len), cfg.seed, device,
        rec_deadline, cfg.progress)
    metrics.update(train_seconds=round(time.monotonic() - started, 1), config=asdict(cfg))
    path = save_checkpoint(out, trainer.model, trainer.encoder, categorizer, recommender, taxonomy, horizons, metrics)
    return path, metrics


def summary(metrics: dict) -> str:
    title = (f"test users: {metrics['users']['test']}, samples: {metrics['samples']['test']}, "
             f"categories hidden in {metrics.get('hidden_categories', 0):.0%} of input events")
    text = format_table(metrics, title)
    if "recommendation" in metrics:
        text += "\n\n" + format_recommendation(metrics["recommendation"])
    return text


def evaluate_checkpoint(directory: Path, histories: Histories, hide: float = 0.0, blank: bool = False) -> dict:
    """Score a checkpoint on the test users of `histories` (the split its seed makes), against
    yardsticks tuned on that data's validation users; `hide` and `blank` as in training."""
    from model.learned import LearnedModel

    learned = LearnedModel(directory, device=torch.device("cpu"))
    metrics = json.loads((Path(directory) / "metrics.json").read_text())
    cfg = TrainConfig(**{**metrics["config"], "progress": False, "hide_categories": hide})
    train_s, val_s, test_s, labelled, _ = prepare(held_out(histories), learned.taxonomy, learned.horizons, cfg, blank)
    yardsticks = Yardsticks.fit(labelled, train_s, val_s, learned.taxonomy, learned.horizons, learned.infer,
                                cfg.seed)
    model = {layer: [] for layer in LAYERS}
    for i in range(0, len(test_s), 256):
        for dists in learned.predict([s.window for s in test_s[i:i + 256]]):
            for layer in LAYERS:
                model[layer].append(dists[layer])
    probs = {"model": {k: np.stack(v) for k, v in model.items()}, **yardsticks.probs(test_s)}
    result = compare(probs, stack_targets(test_s), np.array([s.user for s in test_s]), seed=cfg.seed)
    result.update(users={"test": len({s.user for s in test_s})}, samples={"test": len(test_s)},
                  hidden_categories=hide, blank_text=blank)
    inputs = hide_categories(histories, hide, cfg.seed)
    learned.recommender.set_catalogue(catalogue_items(histories))
    result["recommendation"] = evaluate_recommender(learned.recommender, blank_text(inputs) if blank else inputs,
                                                    learned.predict, cfg.seed)
    return result
