import subprocess
import sys

import pytest

pytestmark = [pytest.mark.broker, pytest.mark.timeout(200)]


def test_demo_runs_end_to_end_and_stops_everything():
    out = subprocess.run([sys.executable, "-m", "streams.cli", "demo", "--events", "1200", "--users", "120"],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "120/120 users have a profile of all their events" in out.stdout
    assert "GET /profiles/" in out.stdout and "-> 200" in out.stdout
    assert "stopped broker and worker" in out.stdout
