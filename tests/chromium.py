"""Debian's headless Chromium, driven over the Chrome DevTools Protocol: load a page with chosen
request headers, read its HTTP status, evaluate JavaScript in it, take a full-page screenshot.

No driver or browser download (the closed network has none): the protocol's WebSocket through
aiohttp, which Faust already brings. The flags keep Chromium off the network it cannot reach.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Optional

import aiohttp
import pytest

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--remote-debugging-port=0", "--remote-allow-origins=*")
TIMEOUT_S = 30.0


class Chromium:
    """`with Chromium(folder) as browser: tab = browser.load(url, headers)`; a fresh profile in `folder`."""

    def __init__(self, folder: Path, width: int = 1360, height: int = 900):
        self.folder = Path(folder)
        self.size = (width, height)
        self.process: Optional[subprocess.Popen] = None
        self.loop = asyncio.new_event_loop()

    def __enter__(self) -> "Chromium":
        binary = shutil.which("chromium")
        if binary is None:
            pytest.fail("chromium is not installed: run `make tools` (installs Debian's chromium)", pytrace=False)
        profile = self.folder / "chromium-profile"
        profile.mkdir(parents=True)
        self.log_path = self.folder / "chromium.log"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT_S
        while not (port_file.exists() and len(port_file.read_text().split()) == 2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"chromium did not start:\n{self.log_tail()}")
            time.sleep(0.1)
        port, path = port_file.read_text().split()
        self.devtools = self.run(_DevTools.connect(f"ws://127.0.0.1:{port}{path}"))
        return self

    def __exit__(self, *exc) -> None:
        if getattr(self, "devtools", None) is not None:
            self.run(self.devtools.close())
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # Chromium's helpers are in its own process group
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.loop.close()

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def load(self, url: str, headers: Optional[dict] = None) -> "Tab":
        """A new tab that has loaded `url` (its load event fired), sending `headers` with every request."""
        return Tab(self, self.run(self.devtools.open(url, headers or {}, self.size)))


class Tab:
    def __init__(self, browser: Chromium, opened: tuple[str, int]):
        self.browser = browser
        self.session, self.status = opened

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able)."""
        reply = self.browser.run(self.browser.devtools.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, self.session))
        if "exceptionDetails" in reply:
            raise RuntimeError(f"the page's JavaScript failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self) -> bytes:
        """PNG of the whole page, not only the viewport."""
        send = self.browser.devtools.send
        size = self.browser.run(send("Page.getLayoutMetrics", {}, self.session))["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
        shot = self.browser.run(send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True,
                                                                 "clip": clip}, self.session))
        return base64.b64decode(shot["data"])


class _DevTools:
    """One WebSocket to the browser; commands answered by id, events kept in order of arrival."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse):
        self.http, self.ws = http, ws
        self.ids = itertools.count(1)
        self.replies: dict[int, asyncio.Future] = {}
        self.events: list[dict] = []
        self.arrived = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def connect(cls, url: str) -> "_DevTools":
        http = aiohttp.ClientSession()
        return cls(http, await http.ws_connect(url, max_msg_size=0))  # screenshots are large messages

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            reply = self.replies.pop(data.get("id"), None)
            if reply is not None and not reply.done():
                reply.set_result(data)
            elif "method" in data:
                self.events.append(data)
                self.arrived.set()
        for reply in self.replies.values():
            reply.set_exception(ConnectionError("chromium closed the DevTools connection"))

    async def send(self, method: str, params: Optional[dict] = None, session: Optional[str] = None) -> dict:
        i = next(self.ids)
        self.replies[i] = asyncio.get_running_loop().create_future()
        await self.ws.send_json({"id": i, "method": method, "params": params or {},
                                 **({"sessionId": session} if session else {})})
        reply = await asyncio.wait_for(self.replies[i], TIMEOUT_S)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    async def event(self, matches: Callable[[dict], bool], after: int) -> dict:
        """The first event from index `after` on that `matches`, waiting for it if need be."""
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for event in self.events[after:]:
                if matches(event):
                    return event
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise TimeoutError(f"chromium sent no awaited event within {TIMEOUT_S:.0f} s") from None

    async def open(self, url: str, headers: dict, size: tuple[int, int]) -> tuple[str, int]:
        """(session, HTTP status of the document) of a new tab that has loaded `url`."""
        target = (await self.send("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await self.send("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        for method, params in (("Page.enable", {}), ("Network.enable", {}),
                               ("Network.setExtraHTTPHeaders", {"headers": headers}),
                               ("Emulation.setDeviceMetricsOverride",
                                {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False})):
            await self.send(method, params, session)
        mark = len(self.events)
        navigation = await self.send("Page.navigate", {"url": url}, session)
        if navigation.get("errorText"):
            raise RuntimeError(f"chromium could not load {url}: {navigation['errorText']}")
        def is_tabs(event: dict, method: str) -> bool:
            return event.get("sessionId") == session and event["method"] == method

        response = await self.event(lambda e: is_tabs(e, "Network.responseReceived")
                                    and e["params"].get("loaderId") == navigation["loaderId"]
                                    and e["params"]["type"] == "Document", mark)
        await self.event(lambda e: is_tabs(e, "Page.loadEventFired"), mark)
        return session, response["params"]["response"]["status"]

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()
        await self.reader
