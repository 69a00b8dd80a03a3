"""Running one worker: check the topics, choose the profile model, start Faust."""
from __future__ import annotations

import logging

import faust

from model.checkpoint import CheckpointError, latest_version
from model.profile import BaselineModel, ProfileModel
from model.taxonomy import Taxonomy
from model.text import warm_up
from streams import ingest, metrics, profiler, reload, views
from streams.app import build
from streams.reload import load_learned
from streams.settings import Settings
from streams.topics import check_topics

log = logging.getLogger(__name__)


def profile_model(settings: Settings) -> ProfileModel:
    """The baseline, or the newest checkpoint when the learned model is asked for.

    With no usable checkpoint yet the learned setting serves the baseline and swaps the
    checkpoint in as soon as one appears (see streams/reload.py).
    """
    baseline = BaselineModel(Taxonomy.load(settings.taxonomy), settings.horizons)
    if settings.profile_model == "baseline":
        return baseline
    if settings.profile_model != "learned":
        raise ValueError(f"unknown profile model {settings.profile_model!r}: choose baseline or learned")
    version = latest_version(settings.checkpoints_dir)
    if version is None:
        log.warning("no checkpoint in %s yet; serving the baseline until one appears", settings.checkpoints_dir)
        return baseline
    try:
        return load_learned(settings.checkpoints_dir / version)
    except CheckpointError as exc:
        log.error("refusing checkpoint %s: %s; serving the baseline until a good one appears", version, exc)
        metrics.CHECKPOINT_FAILURES.inc()
        return baseline


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Blocks until the worker is stopped (SIGTERM or Ctrl-C)."""
    check_topics(settings)
    warm_up()
    model = profile_model(settings)
    metrics.set_model_version(model.version)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    strata = build(settings, model)
    for part in (ingest, profiler, views):
        part.register(strata)
    if settings.profile_model == "learned":
        reload.register(strata)
    log.info("worker on %s, data dir %s, web port %s, model %s", settings.broker, settings.data_dir,
             settings.web_port, model.version)
    faust.Worker(strata.app, loglevel=loglevel, quiet=True).execute_from_commandline()
