import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.broker, pytest.mark.timeout(330)]


def test_demo_trains_then_streams_learned_profiles_and_stops_everything(tmp_path):
    env = {**os.environ, "STRATA_CHECKPOINTS_DIR": str(tmp_path / "checkpoints")}
    out = subprocess.run([sys.executable, "-m", "ops.cli", "demo", "--events", "1200", "--users", "120"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "training a small model first" in out.stdout
    version = (tmp_path / "checkpoints" / "LATEST").read_text().strip()
    assert f"  {version}" in out.stdout  # profiles stamped with the trained model
    assert "120/120 users have a profile of all their events" in out.stdout
    assert "GET /profiles/" in out.stdout and "-> 200" in out.stdout
    assert "stopped broker and worker" in out.stdout
