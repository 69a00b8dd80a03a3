"""Running one worker: check the topics, fill the model slot, start Faust."""
from __future__ import annotations

import gc
import logging

import faust

from model.profile import BaselineModel
from model.taxonomy import Taxonomy
from model.text import warm_up
from streams import ingest, lag, profiler, views
from streams.app import build
from streams.model_slot import ModelSlot
from streams.settings import Settings
from streams.topics import check_topics

log = logging.getLogger(__name__)


def model_slot(settings: Settings) -> ModelSlot:
    """The baseline, or the newest checkpoint when the learned model is asked for.

    With no usable checkpoint yet the learned setting serves the baseline and swaps a checkpoint
    in as soon as one appears.
    """
    if settings.profile_model not in ("baseline", "learned"):
        raise ValueError(f"unknown profile model {settings.profile_model!r}: choose baseline or learned")
    baseline = BaselineModel(Taxonomy.load(settings.taxonomy), settings.horizons)
    slot = ModelSlot(baseline, settings.checkpoints_dir if settings.profile_model == "learned" else None)
    slot.load_now()
    return slot


# Collect the youngest generation every 50,000 new containers, not 700. At the defaults, CPython's
# collector took ~2 s of 4 s of ingest: a poll's thousands of messages, events and entries live
# through several young collections, reach the oldest generation and set off full collections,
# each of which walked every object of the worker. Collecting less often lets a batch's objects
# die young, and freezing what start-up made keeps it out of every later collection.
YOUNG_COLLECTION_THRESHOLD = 50_000


def _tune_collector() -> None:
    gc.collect()
    gc.freeze()  # the model, jieba's dictionary, Faust: never garbage, never walked again
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Blocks until the worker is stopped (SIGTERM or Ctrl-C)."""
    check_topics(settings)
    warm_up()
    slot = model_slot(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    strata = build(settings, slot)
    for part in (ingest, profiler, views, lag):
        part.register(strata)
    _tune_collector()
    if slot.root is not None:
        strata.app.timer(settings.checkpoint_poll_s, name="checkpoint-watch")(slot.poll)
    log.info("worker on %s, data dir %s, web %s:%s, model %s", settings.broker, settings.data_dir,
             settings.web_bind, settings.web_port, slot.model.version)
    faust.Worker(strata.app, loglevel=loglevel, quiet=True).execute_from_commandline()
