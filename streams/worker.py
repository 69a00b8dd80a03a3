"""Running one worker: check the topics, choose the profile model, start Faust."""
from __future__ import annotations

import logging

import faust

from model.profile import BaselineModel, ProfileModel
from model.taxonomy import Taxonomy
from model.text import warm_up
from streams import metrics
from streams.app import build
from streams.settings import Settings
from streams.topics import check_topics

log = logging.getLogger(__name__)


def profile_model(settings: Settings) -> ProfileModel:
    if settings.profile_model == "baseline":
        return BaselineModel(Taxonomy.load(settings.taxonomy), settings.horizons)
    raise ValueError(f"unknown profile model {settings.profile_model!r}: choose baseline or learned")


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Blocks until the worker is stopped (SIGTERM or Ctrl-C)."""
    check_topics(settings)
    warm_up()
    model = profile_model(settings)
    metrics.set_model_version(model.version)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    strata = build(settings, model)
    log.info("worker on %s, data dir %s, web port %s, model %s", settings.broker, settings.data_dir,
             settings.web_port, model.version)
    faust.Worker(strata.app, loglevel=loglevel, quiet=True).execute_from_commandline()
