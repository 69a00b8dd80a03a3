"""A running worker swaps checkpoints without a restart, refuses a broken one, and loses no event."""
import json
import shutil
import time
from collections import Counter

import pytest
from conftest import tiny_checkpoint

from model.datasets.synthetic import generate
from model.latest import point_latest
from model.training.data import load_histories
from ops.clients import producer, publish_events, publish_items

pytestmark = [pytest.mark.broker, pytest.mark.timeout(300)]


def _wait_for_load(worker, version, timeout=30):
    """Until the worker serves `version`: events published before that may be profiled by the old model."""
    deadline = time.monotonic() + timeout
    while worker.metric("strata_model_info", f'model_version="{version}"') != 1:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.3)


def _wait_for_version(cluster, version, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p["model_version"] == version for p in cluster.latest_profiles().values()):
            return
        time.sleep(1)
    raise AssertionError(f"no profile stamped {version}\n" + cluster.workers[0].log_tail())


def test_checkpoints_are_hot_reloaded_and_broken_ones_refused(cluster, tmp_path):
    items, events = generate(2400, 100, seed=21)
    histories, _ = load_histories([json.dumps(e, ensure_ascii=False) for e in events])
    staging = tmp_path / "staging"
    a = tiny_checkpoint(histories, staging)
    b = tiny_checkpoint(histories, staging, seed=1)
    assert a.name != b.name

    ckpts = tmp_path / "checkpoints"
    ckpts.mkdir()
    worker = cluster.worker(env={"STRATA_PROFILE_MODEL": "learned", "STRATA_CHECKPOINTS_DIR": str(ckpts)})
    worker.wait_ready()
    publish_items(cluster.settings, items)
    p = producer(cluster.settings.broker_info())
    publish_events(p, cluster.settings, events[:800])  # no checkpoint yet: the baseline serves
    _wait_for_version(cluster, "baseline-strata-zh-v1")

    shutil.copytree(a, ckpts / a.name)
    point_latest(ckpts, a.name)
    _wait_for_load(worker, a.name)
    publish_events(p, cluster.settings, events[800:1600])
    _wait_for_version(cluster, a.name)

    broken = ckpts / "20990101T000000-broken"
    shutil.copytree(b, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    point_latest(ckpts, broken.name)
    deadline = time.monotonic() + 30
    while worker.metric("strata_checkpoint_reload_failures_total") < 1:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)
    assert "refusing checkpoint 20990101T000000-broken" in worker.log_path.read_text()

    shutil.copytree(b, ckpts / b.name)
    point_latest(ckpts, b.name)
    _wait_for_load(worker, b.name)
    publish_events(p, cluster.settings, events[1600:])
    _wait_for_version(cluster, b.name)

    expected = Counter(e["user_id"] for e in events)
    profiles = cluster.wait_for_profiles(dict(expected))
    assert {pr["model_version"] for pr in profiles.values()} <= {"baseline-strata-zh-v1", a.name, b.name}
    assert worker.metric("strata_checkpoint_reloads_total") == 2
    assert worker.accepted_events() == len(events)
    assert 'strata_model_info{model_version="%s"} 1.0' % b.name in worker.get("/metrics")[1].decode()
