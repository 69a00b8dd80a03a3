"""`strata bench ingest --workers 2`: every figure of the JSON is there and describes the run (no timings asserted)."""
import json

import pytest
from click.testing import CliRunner
from conftest import generated_histories, tiny_checkpoint

from model.datasets.synthetic import generate
from model.latest import latest_version
from ops.bench import LOAD_SEED, checkpoints_root
from ops.cli import cli

REQUIRED = {"worker_eps", "reference_eps", "ratio", "p50_s", "p99_s", "active_users", "state_bytes_per_user",
            "rss_mb", "workers", "profile_model", "worker_eps_per_worker", "state_disk_bytes_per_user",
            "rss_mb_per_worker", "model_version", "events", "users", "runs", "reference", "worker", "delay_events",
            "delay_active_users"}


@pytest.mark.broker
@pytest.mark.timeout(420)
def test_two_workers_on_the_learned_model_report_every_figure(tmp_path, monkeypatch):
    version_dir = tiny_checkpoint(generated_histories(1200, 60, seed=5), tmp_path / "checkpoints")
    # Small ingest batches, so the workers take the events over several of the bench's samples.
    monkeypatch.setenv("STRATA_INGEST_BATCH", "100")
    n_events, n_users = 3000, 50
    out = tmp_path / "bench.json"
    result = CliRunner().invoke(cli, ["bench", "ingest", "--workers", "2", "--events", str(n_events),
                                      "--users", str(n_users), "--runs", "1", "--profile-model", "learned",
                                      "--checkpoint", str(version_dir), "--json-out", str(out)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    r = json.loads(out.read_text())

    assert REQUIRED <= r.keys()
    assert r["workers"] == 2
    assert r["profile_model"] == "learned" and r["model_version"] == version_dir.name
    assert r["worker_eps"] > 0 and r["reference_eps"] > 0
    assert r["ratio"] == pytest.approx(r["worker_eps"] / r["reference_eps"])
    assert r["worker_eps_per_worker"] == pytest.approx(r["worker_eps"] / 2)
    (run,) = r["per_run"]
    assert sum(run["accepted_per_worker"]) == n_events  # each event accepted once, by one of the two
    assert r["active_users"] == len({e["user_id"] for e in generate(n_events, n_users, seed=LOAD_SEED)[1]})
    assert r["state_bytes_per_user"] > 0 and r["state_disk_bytes_per_user"] > 0
    assert len(r["rss_mb_per_worker"]) == 2 and min(r["rss_mb_per_worker"]) > 0
    assert r["rss_mb"] == max(r["rss_mb_per_worker"])
    assert r["delay_events"] > 0 and 0 < r["p50_s"] <= r["p99_s"] and r["delay_active_users"] == n_users


def test_the_learned_model_without_a_checkpoint_is_refused_before_anything_starts(tmp_path):
    result = CliRunner().invoke(cli, ["bench", "ingest", "--profile-model", "learned", "--checkpoint", str(tmp_path)])
    assert result.exit_code != 0
    assert f"the learned model needs a checkpoint: there is none in {tmp_path}" in result.output


def test_a_version_directory_gets_a_checkpoints_root_of_its_own(tmp_path):
    version = tmp_path / "20261129T000000-abcdef"
    version.mkdir()
    (version / "config.json").write_text("{}")
    root = checkpoints_root(version, tmp_path)
    assert latest_version(root) == version.name and (root / version.name).resolve() == version.resolve()
    assert checkpoints_root(root, tmp_path / "unused") == root  # a root holding LATEST is used as it is
    assert checkpoints_root(tmp_path / "empty", tmp_path / "unused") is None
