"""The model slot: LATEST read once per poll, new versions loaded, broken ones refused once."""
from __future__ import annotations

import asyncio

from model.latest import CheckpointError, point_latest
from model.profile import BaselineModel
from model.taxonomy import Taxonomy
from streams import metrics
from streams.model_slot import ModelSlot


def _slot(root, broken=()):
    loads = []

    def loader(path):
        loads.append(path.name)
        if path.name in broken:
            raise CheckpointError("corrupt weights")
        model = BaselineModel(Taxonomy.load())
        model.version = path.name
        return model

    return ModelSlot(BaselineModel(Taxonomy.load()), root, loader), loads


def test_a_version_written_between_two_polls_is_loaded(tmp_path):
    slot, loads = _slot(tmp_path)
    slot.load_now()
    assert slot.model.version.startswith("baseline") and loads == []
    point_latest(tmp_path, "v1")  # written after start-up, before the first poll
    asyncio.run(slot.poll())
    assert slot.model.version == "v1"
    point_latest(tmp_path, "v2")
    point_latest(tmp_path, "v3")  # two writes between polls: the newest wins
    asyncio.run(slot.poll())
    asyncio.run(slot.poll())
    assert slot.model.version == "v3" and loads == ["v1", "v3"]


def test_a_broken_checkpoint_is_refused_once_and_the_model_stays(tmp_path):
    slot, loads = _slot(tmp_path, broken={"bad"})
    point_latest(tmp_path, "good")
    slot.load_now()
    assert slot.model.version == "good"
    failures = metrics.CHECKPOINT_FAILURES._value.get()
    point_latest(tmp_path, "bad")
    for _ in range(3):
        asyncio.run(slot.poll())
    assert slot.model.version == "good" and loads.count("bad") == 1
    assert metrics.CHECKPOINT_FAILURES._value.get() == failures + 1
    (tmp_path / "LATEST").write_text("../../etc\n")  # a path, not a version: refused, nothing loaded
    asyncio.run(slot.poll())
    assert slot.model.version == "good" and metrics.CHECKPOINT_FAILURES._value.get() == failures + 2
    point_latest(tmp_path, "better")
    asyncio.run(slot.poll())
    assert slot.model.version == "better"


def test_a_baseline_slot_never_looks_for_checkpoints(tmp_path):
    slot, loads = _slot(None)
    point_latest(tmp_path, "v1")
    slot.load_now()
    asyncio.run(slot.poll())
    assert slot.model.version.startswith("baseline") and loads == []
