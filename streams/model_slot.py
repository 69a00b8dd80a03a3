"""The model slot: the one owner of the model a worker serves.

It holds the served model, the one thread that runs it (inference and checkpoint loading, so a
load waits for the running batch and torch is never driven from two threads), and the version of
`checkpoints/LATEST` it tried last. LATEST is read once per poll: a version written at any moment
is seen by the next poll and loaded, or refused with a log line while the running model stays.
"""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional

from model.latest import CheckpointError, latest_version
from model.profile import ProfileModel
from streams import metrics

log = logging.getLogger(__name__)


def load_learned(directory: Path) -> ProfileModel:
    from model.learned import LearnedModel  # torch: only a worker that serves checkpoints imports it

    model = LearnedModel(directory)
    model.on_encode = lambda hits, misses: (metrics.ENCODE_CACHE.labels("hit").inc(hits),
                                            metrics.ENCODE_CACHE.labels("miss").inc(misses))
    return model


class ModelSlot:
    def __init__(self, baseline: ProfileModel, checkpoints: Optional[Path],
                 loader: Callable[[Path], ProfileModel] = load_learned):
        """`checkpoints` None: serve `baseline` only. Otherwise serve the newest good checkpoint there."""
        self.model = baseline
        self.root = Path(checkpoints) if checkpoints is not None else None
        self.loader = loader
        self.last_tried: Optional[str] = None
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="strata-model")
        metrics.set_model_version(baseline.version)

    def _wanted(self) -> Optional[str]:
        """The version LATEST names if it is one not tried yet, else None. Refuses a bad name once."""
        try:
            version = latest_version(self.root)
        except CheckpointError as exc:
            if self.last_tried != str(exc):
                self.last_tried = str(exc)
                self._refuse("LATEST", exc)
            return None
        if version is None or version in (self.model.version, self.last_tried):
            return None
        self.last_tried = version  # a refused version is not retried until LATEST moves
        return version

    def _refuse(self, version: str, exc: Exception) -> None:
        metrics.CHECKPOINT_FAILURES.inc()
        log.error("refusing checkpoint %s: %s; keeping model %s", version, exc, self.model.version)

    def _swap(self, model: ProfileModel, reload: bool = True) -> None:
        previous, self.model = self.model.version, model  # the profiler takes it at its next batch
        metrics.set_model_version(model.version)
        if reload:
            metrics.CHECKPOINT_RELOADS.inc()
        log.info("checkpoint %s loaded; replaced model %s", model.version, previous)

    def load_now(self) -> None:
        """At start-up, before the event loop: the newest checkpoint, if any and if good."""
        if self.root is None:
            return
        version = self._wanted()
        if version is None:
            if self.last_tried is None:
                log.warning("no checkpoint in %s yet; serving %s until one appears", self.root, self.model.version)
            return
        try:
            self._swap(self.loader(self.root / version), reload=False)
        except CheckpointError as exc:
            self._refuse(version, exc)

    async def poll(self) -> None:
        """Load a new LATEST on the model thread; the running model serves until it is ready."""
        if self.root is None:
            return
        version = self._wanted()
        if version is None:
            return
        try:
            model = await asyncio.get_running_loop().run_in_executor(self.thread, self.loader, self.root / version)
        except CheckpointError as exc:
            self._refuse(version, exc)
            return
        self._swap(model)

