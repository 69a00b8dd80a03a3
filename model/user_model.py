"""The layered-interest model: a user's window -> H -> cascaded surface, middle and deep heads.

Each event is its text vector plus embeddings of its type, behaviour attributes, time gaps and
categories; a small transformer reads the window, and H joins its pooled output with each
layer's past-horizon category counts. The heads are cascaded as DESIGN.md writes them:
P(surface | H), P(middle | H, p_surface), P(deep | H, p_surface, p_middle).

Each head is a residual on the tuned counting baseline: the log of a learned mix of the
smoothed past-horizon distributions, which starts (almost) on the layer's own horizon, with
the residual starting at zero. An untrained model is the baseline; training only has to learn
where the future differs from the past.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from model.encoders import TextEncoder
from model.features import N_ATTRS, N_TIMES, Batch
from model.profile import BaselineParams, baseline_probs
from model.taxonomy import LAYERS


@dataclass(frozen=True)
class ModelConfig:
    """What builds a LayeredInterestModel; saved in a checkpoint's config.json and restored from it."""

    n_labels: dict[str, int]
    text_dim: int
    prior: dict[str, list[float]]  # the counting baseline's global prior per layer (fitted on training users)
    # its mix of horizons, smoothing and temperature per layer (tuned on validation users): BaselineParams
    baseline: dict[str, dict]
    d_model: int = 64
    layers: int = 1
    heads: int = 4
    max_events: int = 64


class LayeredInterestModel(nn.Module):
    def __init__(self, config: ModelConfig, encoder: Optional[TextEncoder] = None):
        super().__init__()
        self.config = config
        n_labels, text_dim, prior = config.n_labels, config.text_dim, config.prior
        d_model, layers, heads, max_events = config.d_model, config.layers, config.heads, config.max_events
        # A trainable encoder is fine-tuned with the heads; a frozen one feeds cached vectors.
        self.encoder = encoder if encoder is not None and encoder.trainable else None
        self.max_events = max_events
        d = d_model
        self.text_proj = nn.Linear(text_dim, d)
        self.type_emb = nn.Embedding(4, d, padding_idx=0)
        self.side_proj = nn.Linear(N_ATTRS + N_TIMES + len(LAYERS), d)
        # An entry's label rows (one-hot when named, soft when inferred) projected like embeddings.
        self.cat_proj = nn.ModuleDict({lv: nn.Linear(n_labels[lv], d, bias=False) for lv in LAYERS})
        self.pos_emb = nn.Embedding(max_events, d)
        self.seq = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d, heads, 2 * d, dropout=0.1, batch_first=True), layers,
            enable_nested_tensor=False,
        )
        n_h = len(LAYERS)
        self.past_proj = nn.ModuleDict({layer: nn.Linear(n_h * (n_labels[layer] + 1), d) for layer in LAYERS})
        self.hidden = nn.Sequential(nn.Linear(5 * d, 2 * d), nn.GELU(), nn.Dropout(0.1), nn.Linear(2 * d, 2 * d))
        h = 2 * d
        self.head = nn.ModuleDict({
            "surface": nn.Linear(h, n_labels["surface"]),
            "middle": nn.Linear(h + n_labels["surface"], n_labels["middle"]),
            "deep": nn.Linear(h + n_labels["surface"] + n_labels["middle"], n_labels["deep"]),
        })
        for head in self.head.values():
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        self.tuned = {layer: BaselineParams(**config.baseline[layer]) for layer in LAYERS}
        # The heads' base starts on the tuned baseline; its mix and temperature keep learning.
        self.mix = nn.ParameterDict({layer: nn.Parameter(torch.tensor(
            [math.log(max(m, 1e-3)) for m in self.tuned[layer].mix])) for layer in LAYERS})
        self.log_temperature = nn.ParameterDict({layer: nn.Parameter(torch.tensor(
            math.log(self.tuned[layer].temperature))) for layer in LAYERS})
        for layer in LAYERS:
            # Output blend with the tuned baseline, fitted on validation users after training
            # (1.0: the model alone; 0.0: the baseline alone). See Trainer.fit_blend.
            self.register_buffer(f"blend_{layer}", torch.tensor(1.0))
            self.register_buffer(f"prior_{layer}", torch.tensor(prior[layer], dtype=torch.float32))

    def baseline_log_probs(self, past: dict[str, torch.Tensor], tuned: bool = False) -> dict[str, torch.Tensor]:
        """Per layer: log of the counting baseline over the past horizons, with the learned mix and
        temperature (or, `tuned`, the parameters tuned on validation users)."""
        out = {}
        for layer in LAYERS:
            prior = getattr(self, f"prior_{layer}")
            if tuned:
                p = self.tuned[layer]
                mix, alpha, temperature = torch.tensor(p.mix, device=prior.device), p.alpha, p.temperature
            else:
                mix, alpha = torch.softmax(self.mix[layer], 0), self.tuned[layer].alpha
                temperature = self.log_temperature[layer].exp()
            out[layer] = torch.log(baseline_probs(past[layer], prior, mix, alpha, temperature))
        return out

    def forward(self, text_vecs: torch.Tensor, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """text_vecs [U, text_dim] for the batch's distinct texts; b: the Batch as tensors. Log-probs."""
        idx = b["text_idx"]
        has_text = (idx >= 0).unsqueeze(-1).to(text_vecs.dtype)
        x = self.text_proj(text_vecs[idx.clamp(min=0)]) * has_text
        x = x + self.type_emb(b["types"]) + self.side_proj(torch.cat([b["attrs"], b["times"], b["inferred"]], -1))
        for lv in LAYERS:
            x = x + self.cat_proj[lv](b[f"cats_{lv}"])
        t = x.shape[1]
        x = x + self.pos_emb(torch.arange(t, device=x.device))
        mask = b["mask"]
        x = self.seq(x, src_key_padding_mask=~mask)
        m = mask.unsqueeze(-1).to(x.dtype)
        pooled = (x * m).sum(1) / m.sum(1).clamp(min=1)
        last = x[torch.arange(x.shape[0], device=x.device), (mask.sum(1) - 1).clamp(min=0)]
        past = {layer: b[f"past_{layer}"] for layer in LAYERS}
        summaries = [
            self.past_proj[layer](torch.cat([
                past[layer] / past[layer].sum(-1, keepdim=True).clamp(min=1e-6),
                torch.log1p(past[layer].sum(-1, keepdim=True)),
            ], -1).flatten(1))
            for layer in LAYERS
        ]
        h = self.hidden(torch.cat([pooled, last] + summaries, -1))
        base = self.baseline_log_probs(past)
        surface = torch.log_softmax(base["surface"] + self.head["surface"](h), -1)
        p_s = surface.exp()
        middle = torch.log_softmax(base["middle"] + self.head["middle"](torch.cat([h, p_s], -1)), -1)
        p_m = middle.exp()
        deep = torch.log_softmax(base["deep"] + self.head["deep"](torch.cat([h, p_s, p_m], -1)), -1)
        out = {"surface": surface, "middle": middle, "deep": deep}
        tuned = self.baseline_log_probs(past, tuned=True)
        return {layer: self.blend(layer, out[layer], tuned[layer]) for layer in LAYERS}

    def blend(self, layer: str, log_probs: torch.Tensor, baseline: torch.Tensor) -> torch.Tensor:
        beta = getattr(self, f"blend_{layer}")
        return torch.log_softmax(beta * log_probs + (1 - beta) * baseline, -1)


def batch_tensors(batch: Batch, device: torch.device) -> dict[str, torch.Tensor]:
    out = {
        "text_idx": torch.from_numpy(batch.text_idx),
        "types": torch.from_numpy(batch.types),
        "attrs": torch.from_numpy(batch.attrs),
        "times": torch.from_numpy(batch.times),
        "inferred": torch.from_numpy(batch.inferred),
        "mask": torch.from_numpy(batch.mask),
    }
    out.update({f"past_{layer}": torch.from_numpy(batch.past[layer]) for layer in LAYERS})
    out.update({f"cats_{layer}": torch.from_numpy(batch.cats[layer]) for layer in LAYERS})
    return {k: v.to(device) for k, v in out.items()}
