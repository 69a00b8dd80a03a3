"""Hot reload: the worker watches `checkpoints/LATEST`, loads a new checkpoint in the background,
and swaps it in between inference batches. A broken checkpoint is refused; the running model stays."""
from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from model.checkpoint import CheckpointError, latest_version
from streams import metrics
from streams.app import Strata

log = logging.getLogger(__name__)


def load_learned(directory: Path):
    from model.learned import LearnedModel

    model = LearnedModel(directory)
    model.on_encode = lambda hits, misses: (metrics.ENCODE_CACHE.labels("hit").inc(hits),
                                            metrics.ENCODE_CACHE.labels("miss").inc(misses))
    return model


def register(strata: Strata, interval_s: float = 2.0) -> None:
    root = Path(strata.settings.checkpoints_dir)
    # At start the worker loaded LATEST, refused it, or found none: either way, wait for a new one.
    last_tried = {"version": latest_version(root)}

    @strata.app.timer(interval_s, name="checkpoint-watch")
    async def watch() -> None:
        version = latest_version(root)
        if version is None or version in (strata.model.version, last_tried["version"]):
            return
        last_tried["version"] = version  # a refused version is not retried until LATEST moves
        try:
            # On the model thread, between inference batches: the running model serves until then.
            model = await asyncio.get_running_loop().run_in_executor(strata.model_thread, load_learned,
                                                                     root / version)
        except CheckpointError as exc:
            metrics.CHECKPOINT_FAILURES.inc()
            log.error("refusing checkpoint %s: %s; keeping model %s", version, exc, strata.model.version)
            return
        previous, strata.model = strata.model.version, model  # the profiler picks it up at its next batch
        metrics.set_model_version(model.version)
        metrics.CHECKPOINT_RELOADS.inc()
        log.info("checkpoint %s loaded; replaced model %s", version, previous)
