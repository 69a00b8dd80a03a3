"""Checkpoints: `checkpoints/<version>/` (model.safetensors, categorizer.safetensors,
recommender.safetensors, recommender.json, config.json, taxonomy.json, vocab.json, metrics.json) and `checkpoints/LATEST`, which names the newest and is
replaced atomically."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from model.categorizer import Categorizer, CategorizerConfig
from model.encoders import TextEncoder, encoder_from_config
from model.latest import CheckpointError, point_latest
from model.profile import Horizons
from model.recommend.recommender import Recommender, RecommenderState
from model.recommend.sequential import SequentialConfig, SequentialModel
from model.taxonomy import LAYERS, Taxonomy
from model.user_model import LayeredInterestModel, ModelConfig

FORMAT = 3  # 2: the per-event categorizer travels with the layered model; 3: and the recommender


@dataclass
class Checkpoint:
    model: LayeredInterestModel
    encoder: TextEncoder
    categorizer: Categorizer
    recommender: RecommenderState
    sequential: SequentialModel
    taxonomy: Taxonomy
    horizons: Horizons
    config: dict


def save_checkpoint(root: Path, model: LayeredInterestModel, encoder: TextEncoder, categorizer: Categorizer,
                    recommender: Recommender, taxonomy: Taxonomy, horizons: Horizons, metrics: dict,
                    make_latest: bool = True) -> Path:
    """Write a new version directory, then point LATEST at it (rename: readers never see half)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{os.getpid()}-{time.time_ns()}"
    tmp.mkdir()
    try:
        return _write_version(root, tmp, model, encoder, categorizer, recommender, taxonomy, horizons, metrics,
                              make_latest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_version(root, tmp, model, encoder, categorizer, recommender, taxonomy, horizons, metrics, make_latest) -> Path:
    save_model(model, str(tmp / "model.safetensors"))
    save_model(categorizer, str(tmp / "categorizer.safetensors"))
    save_model(recommender.model, str(tmp / "recommender.safetensors"))
    (tmp / "recommender.json").write_text(json.dumps(recommender.state.to_dict(), ensure_ascii=False))
    digest = hashlib.sha256((tmp / "model.safetensors").read_bytes()).hexdigest()[:6]
    version = f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{digest}"
    config = {
        "format": FORMAT, "version": version, "encoder": encoder.config(), "model": asdict(model.config),
        "categorizer": asdict(categorizer.config),
        "horizons": asdict(horizons), "labels": {layer: len(taxonomy.labels[layer]) for layer in LAYERS},
    }
    (tmp / "config.json").write_text(json.dumps(config, indent=1))
    taxonomy.save(tmp / "taxonomy.json")
    encoder.save_extra(tmp)
    (tmp / "metrics.json").write_text(json.dumps(metrics, indent=1, ensure_ascii=False))
    final = root / version
    if final.exists():
        shutil.rmtree(tmp)
    else:
        tmp.rename(final)
    if make_latest:
        point_latest(root, version)
    return final


def load_checkpoint(directory: Path, device: torch.device = torch.device("cpu")) -> Checkpoint:
    """The checkpoint in `directory`; raises CheckpointError saying what is wrong."""
    directory = Path(directory)
    try:
        config = json.loads((directory / "config.json").read_text())
        if config.get("format") != FORMAT:
            raise CheckpointError(f"format {config.get('format')!r}, this worker reads format {FORMAT}")
        taxonomy = Taxonomy.load(directory / "taxonomy.json")
        for layer in LAYERS:
            if len(taxonomy.labels[layer]) != config["labels"][layer]:
                raise CheckpointError(f"{layer}: taxonomy has {len(taxonomy.labels[layer])} labels, "
                                      f"weights were trained for {config['labels'][layer]}")
        encoder = encoder_from_config(config["encoder"], directory)
        model = LayeredInterestModel(ModelConfig(**config["model"]), encoder=encoder)
        missing, unexpected = load_model(model, str(directory / "model.safetensors"), strict=True)
        if missing or unexpected:
            raise CheckpointError(f"weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        categorizer = Categorizer(CategorizerConfig(**config["categorizer"]))
        missing, unexpected = load_model(categorizer, str(directory / "categorizer.safetensors"), strict=True)
        if missing or unexpected:
            raise CheckpointError(f"categorizer weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        state = RecommenderState.from_dict(json.loads((directory / "recommender.json").read_text()))
        sequential = SequentialModel(SequentialConfig(**state.sequential))
        missing, unexpected = load_model(sequential, str(directory / "recommender.safetensors"), strict=True)
        if missing or unexpected:
            raise CheckpointError(f"recommender weights do not fit: missing {missing[:3]}, unexpected {unexpected[:3]}")
        horizons = Horizons(**config["horizons"])
        sequential.to(device).eval()
        model.to(device).eval()
        encoder.to(device).eval()
        categorizer.eval()
    except CheckpointError:
        raise
    except FileNotFoundError as exc:
        raise CheckpointError(f"missing file {Path(exc.filename).name}") from exc
    except Exception as exc:  # corrupt JSON, corrupt safetensors, shape mismatches, unknown encoder
        raise CheckpointError(f"{type(exc).__name__}: {exc}") from exc
    return Checkpoint(model, encoder, categorizer, state, sequential, taxonomy, horizons, config)
