"""The offline trainer: events -> forecast samples -> (LM pre-training) -> layered model -> checkpoint.

Each user's history is cut at several moments: the input is the window before the cut, the
target each layer's category distribution in its horizon after it. Users are split into
train / validation / test, so test users are never seen in training. The counting baseline's
prior and smoothing are fitted on the same train / validation users, and both are scored on
the test users.
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import torch
from tqdm import tqdm

from model.checkpoint import save_checkpoint
from model.encoders import ScratchGPT2Encoder, TextEncoder, build_encoder
from model.entry import make_entry
from model.evaluate import compare, format_table, normalise, tune_alpha
from model.features import featurize, future_targets, own_horizon
from model.profile import Horizons, smoothed
from model.taxonomy import LAYERS, Taxonomy
from model.user_model import LayeredInterestModel, ModelConfig, batch_tensors
from state.event import Item, Rejected, parse_event
from state.items import ItemIndex
from state.window import Entry

log = logging.getLogger(__name__)


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
    progress: bool = True


@dataclass
class Sample:
    user: str
    window: list[Entry]
    targets: dict[str, np.ndarray]


def load_histories(lines: Iterable[str], items: Optional[ItemIndex] = None, max_text_chars: int = 512
                   ) -> tuple[dict[str, list[Entry]], int]:
    """Valid events by user, as window entries sorted by time; and how many lines were invalid."""
    items = items or ItemIndex()
    users: dict[str, list[Entry]] = {}
    seen: set[str] = set()
    invalid = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            event = parse_event(line.encode("utf-8"), max_future_s=float("inf"))
        except Rejected:
            invalid += 1
            continue
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        users.setdefault(event.user_id, []).append(make_entry(event, items, max_text_chars))
    for entries in users.values():
        entries.sort(key=lambda e: e.ts)
    return users, invalid


def load_items(lines: Iterable[str]) -> ItemIndex:
    index = ItemIndex()
    for line in lines:
        if line.strip():
            index.put(Item.model_validate_json(line))
    return index


def make_samples(histories: dict[str, list[Entry]], taxonomy: Taxonomy, horizons: Horizons,
                 cfg: TrainConfig, rng: random.Random) -> list[Sample]:
    samples = []
    for user in sorted(histories):
        entries = histories[user]
        if len(entries) <= cfg.min_history:
            continue
        positions = list(range(cfg.min_history, len(entries)))
        if len(positions) > cfg.cuts_per_user:
            positions = sorted(rng.sample(positions, cfg.cuts_per_user))
        for i in positions:
            targets = future_targets(entries[i:], entries[i - 1].ts, taxonomy, horizons)
            if any(t.sum() > 0 for t in targets.values()):
                samples.append(Sample(user, entries[max(0, i - cfg.max_events):i], targets))
    return samples


def split_users(users: list[str], rng: random.Random, val: float = 0.15, test: float = 0.15):
    users = sorted(users)
    rng.shuffle(users)
    n_test, n_val = int(len(users) * test), int(len(users) * val)
    return set(users[n_test + n_val:]), set(users[n_test:n_test + n_val]), set(users[:n_test])


def _stack(samples: list[Sample]) -> dict[str, np.ndarray]:
    return {layer: np.stack([s.targets[layer] for s in samples]) for layer in LAYERS}


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
        self.frozen_vectors: dict[str, np.ndarray] = {}

    def _vectors(self, texts: list[str]) -> torch.Tensor:
        if not texts:
            return torch.zeros((1, self.encoder.dim), device=self.device)
        if self.encoder.trainable:
            return self.model.encode_texts(self.encoder, texts, self.device)
        return torch.from_numpy(np.stack([self.frozen_vectors[t] for t in texts])).to(self.device)

    @torch.no_grad()
    def _freeze_vectors(self, texts: list[str]) -> None:
        self.encoder.to(self.device).eval()
        todo = sorted(set(texts) - set(self.frozen_vectors))
        for i in tqdm(range(0, len(todo), 256), desc="encoding texts", disable=not self.cfg.progress):
            chunk = todo[i:i + 256]
            ids, mask = self.encoder.tokenize(chunk)
            for t, v in zip(chunk, self.encoder(ids.to(self.device), mask.to(self.device)).cpu().numpy()):
                self.frozen_vectors[t] = v

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
        batch = featurize([s.window for s in samples], self.taxonomy, self.horizons, self.cfg.max_events)
        return self.model(self._vectors(batch.texts), batch_tensors(batch, self.device))

    def _targets(self, samples: list[Sample]) -> dict[str, torch.Tensor]:
        return {k: torch.from_numpy(v).float().to(self.device) for k, v in _stack(samples).items()}

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
    def fit_blend(self, val: list[Sample], grid=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)) -> dict[str, float]:
        """Per layer, the log-linear blend of model and tuned baseline with the lowest validation
        cross-entropy: where the model has learned nothing for a layer, it falls back to the baseline."""
        for layer in LAYERS:
            getattr(self.model, f"blend_{layer}").fill_(1.0)
        model_lp = {k: np.log(np.clip(v, 1e-12, 1)) for k, v in self.predict(val).items()}
        past = own_horizon(featurize([s.window for s in val], self.taxonomy, self.horizons, self.cfg.max_events).past)
        targets = _stack(val)
        chosen = {}
        for layer in LAYERS:
            keep, t = normalise(targets[layer])
            if not keep.any():
                continue  # nothing to fit on: the model alone
            prior = getattr(self.model, f"prior_{layer}").cpu().numpy()
            alpha = float(getattr(self.model, f"alpha_{layer}"))
            base_lp = np.log(smoothed(past[layer][keep], prior, alpha))

            def cross_entropy(beta: float) -> float:
                z = beta * model_lp[layer][keep] + (1 - beta) * base_lp
                z = z - z.max(1, keepdims=True)
                return float(np.mean(-(t * (z - np.log(np.exp(z).sum(1, keepdims=True)))).sum(1)))

            chosen[layer] = min(grid, key=cross_entropy)
            getattr(self.model, f"blend_{layer}").fill_(chosen[layer])
        return chosen

    def fit(self, train: list[Sample], val: list[Sample]) -> list[dict]:
        cfg = self.cfg
        rng = random.Random(cfg.seed)
        params = list(self.model.parameters())
        opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=1e-2)
        best, best_state, bad, history = float("inf"), None, 0, []
        for epoch in range(cfg.epochs):
            self.model.train()
            order = list(range(len(train)))
            rng.shuffle(order)
            total = 0.0
            bar = tqdm(range(0, len(order), cfg.batch_size), desc=f"epoch {epoch + 1}", disable=not cfg.progress)
            for i in bar:
                chunk = [train[j] for j in order[i:i + cfg.batch_size]]
                loss = soft_cross_entropy(self._forward(chunk), self._targets(chunk))
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                total += loss.item() * len(chunk)
            val_loss = self.loss(val)
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


def train(histories: dict[str, list[Entry]], taxonomy: Taxonomy, out: Path, cfg: TrainConfig,
          horizons: Horizons = Horizons(), device: Optional[torch.device] = None) -> tuple[Path, dict]:
    """Train, evaluate on held-out users against the tuned baseline, write a checkpoint."""
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    device = device or torch.device("cpu")
    rng = random.Random(cfg.seed)
    train_users, val_users, test_users = split_users(list(histories), rng)
    samples = make_samples(histories, taxonomy, horizons, cfg, rng)
    train_s = [s for s in samples if s.user in train_users]
    val_s = [s for s in samples if s.user in val_users]
    test_s = [s for s in samples if s.user in test_users]
    if not (train_s and val_s and test_s):
        raise ValueError(f"too little data: {len(train_s)} train, {len(val_s)} validation, {len(test_s)} test "
                         f"samples from {len(histories)} users; need users with > {cfg.min_history} events")

    # The baseline: global prior from training targets, smoothing tuned on validation users.
    train_targets = _stack(train_s)
    prior = {layer: (train_targets[layer].sum(0) + 1e-3) / (train_targets[layer].sum() + 1e-3 * train_targets[layer].shape[1])
             for layer in LAYERS}
    past = {name: own_horizon(featurize([s.window for s in part], taxonomy, horizons, cfg.max_events).past)
            for name, part in (("val", val_s), ("test", test_s))}
    val_targets = _stack(val_s)
    alpha = {layer: tune_alpha(past["val"][layer], val_targets[layer], prior[layer]) for layer in LAYERS}

    trainer = Trainer(taxonomy, horizons, cfg, device)
    texts = sorted({e.text for s in train_s for e in s.window if e.text})
    arch = {} if cfg.encoder.startswith("hf:") else {"dim": cfg.text_dim}
    trainer.encoder = build_encoder(cfg.encoder, texts, **arch)
    lm_losses = trainer.pretrain_lm(texts) if isinstance(trainer.encoder, ScratchGPT2Encoder) else []
    if not trainer.encoder.trainable:
        trainer._freeze_vectors(sorted({e.text for s in samples for e in s.window if e.text}))
    model_config = ModelConfig(
        n_labels={layer: len(taxonomy.labels[layer]) for layer in LAYERS}, text_dim=trainer.encoder.dim,
        prior={layer: prior[layer].tolist() for layer in LAYERS}, alpha=alpha, d_model=cfg.d_model,
        layers=cfg.layers, heads=cfg.heads, max_events=cfg.max_events)
    trainer.model = LayeredInterestModel(model_config, encoder=trainer.encoder).to(device)
    initial_val = trainer.loss(val_s)
    history = trainer.fit(train_s, val_s)
    blend = trainer.fit_blend(val_s)

    result = compare(trainer.predict(test_s), past["test"], _stack(test_s), prior, alpha)
    metrics = {
        **result,
        "encoder": cfg.encoder,
        "users": {"train": len(train_users), "validation": len(val_users), "test": len(test_users)},
        "samples": {"train": len(train_s), "validation": len(val_s), "test": len(test_s)},
        "baseline_alpha": alpha,
        "blend": blend,
        "initial_validation_loss": initial_val,
        "history": history,
        "lm_losses": lm_losses,
        "config": asdict(cfg),
    }
    path = save_checkpoint(out, trainer.model, trainer.encoder, taxonomy, horizons, metrics)
    return path, metrics


def read_jsonl(path: Path) -> list[str]:
    return Path(path).read_text(encoding="utf-8").splitlines()


def summary(metrics: dict) -> str:
    return format_table(metrics, f"test users: {metrics['users']['test']}, samples: {metrics['samples']['test']}")


def evaluate_checkpoint(directory: Path, histories: dict[str, list[Entry]]) -> dict:
    """Re-score a checkpoint on the test users of `histories` (the split its seed made)."""
    from model.learned import LearnedModel

    learned = LearnedModel(directory, device=torch.device("cpu"))
    metrics = json.loads((Path(directory) / "metrics.json").read_text())
    cfg = TrainConfig(**{**metrics["config"], "progress": False})
    rng = random.Random(cfg.seed)
    _, _, test_users = split_users(list(histories), rng)
    samples = [s for s in make_samples(histories, learned.taxonomy, learned.horizons, cfg, rng) if s.user in test_users]
    if not samples:
        raise ValueError("no test samples: is this the data the checkpoint was trained on?")
    probs = {layer: [] for layer in LAYERS}
    for i in range(0, len(samples), 256):
        for dists in learned.predict([s.window for s in samples[i:i + 256]]):
            for layer in LAYERS:
                probs[layer].append(dists[layer])
    mc = learned.model.config
    past = own_horizon(featurize([s.window for s in samples], learned.taxonomy, learned.horizons, cfg.max_events).past)
    prior = {layer: np.array(mc.prior[layer]) for layer in LAYERS}
    result = compare({k: np.stack(v) for k, v in probs.items()}, past, _stack(samples), prior, mc.alpha)
    result["users"] = {"test": len(test_users)}
    result["samples"] = {"test": len(samples)}
    return result
