"""A worker as a child process (`strata worker ...`): how the demo, the benchmark and the tests run one."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Optional

from ops.broker import free_port


class WorkerProcess:
    def __init__(self, broker_url: str, data_dir: Path, log_path: Path, web_port: Optional[int] = None,
                 partitions: int = 4, env: Optional[dict] = None):
        self.broker_url = broker_url
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.web_port = web_port or free_port()
        self.partitions = partitions
        self.env = env or {}
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> "WorkerProcess":
        cmd = [sys.executable, "-m", "ops.cli", "worker", "--broker", self.broker_url,
               "--data-dir", str(self.data_dir), "--web-port", str(self.web_port),
               "--partitions", str(self.partitions)]
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                            env={**os.environ, **self.env}, start_new_session=True)
        return self

    def get(self, path: str, timeout: float = 2.0, headers: Optional[dict] = None) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(urllib.request.Request(self.url + path, headers=headers or {}),
                                        timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def series(self, name: str) -> list[tuple[str, float]]:
        """(series text, value) of each series of Prometheus metric `name`; none while the worker does not answer."""
        try:
            text = self.get("/metrics")[1].decode()
        except OSError:
            return []
        found = []
        for line in text.splitlines():
            series, _, value = line.rpartition(" ")
            if series == name or series.startswith(name + "{"):
                found.append((series, float(value)))
        return found

    def metric(self, name: str, labels: str = "") -> float:
        """Sum of the series of Prometheus metric `name` whose label text contains `labels`;
        0 while the worker does not answer."""
        return sum(value for series, value in self.series(name) if labels in series)

    def accepted_events(self) -> float:
        return self.metric("strata_events_total", 'outcome="accepted"')

    def model_version(self) -> Optional[str]:
        """The version of the profile model this worker serves (strata_model_info); None while it does not answer."""
        for series, value in self.series("strata_model_info"):
            match = re.search(r'model_version="([^"]*)"', series)
            if match and value == 1:
                return match.group(1)
        return None

    def peak_rss_bytes(self) -> int:
        """The most resident memory the running process has held so far (VmHWM, Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # reported in kB
        raise RuntimeError(f"no VmHWM in /proc/{self.process.pid}/status")

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Seconds until /ready/ answers 200; raises with the log's tail if the worker dies or hangs."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"worker exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if self.get("/ready/")[0] == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: a crash, no clean shutdown."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
