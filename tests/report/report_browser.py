"""Headless Chromium driven through the DevTools protocol on a pipe (``--remote-debugging-pipe``):
load a page, record every request it makes, evaluate a script in it, take a screenshot.

No network: ``--host-resolver-rules`` maps every host name to "not found", so a request for an
external URL fails on the machine, and ``Network.requestWillBeSent`` still records that it was made.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: URL schemes that stay on the machine
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")

#: what the page script reports: every image, the cycle sections, whether captions sit beside figures
PAGE_SCRIPT = """(async () => {
  const imgs = [...document.images];
  await Promise.all(imgs.map(i => i.decode().catch(() => null)));
  const figures = [...document.querySelectorAll('figure')].map(f => {
    const i = f.querySelector('img').getBoundingClientRect();
    const c = f.querySelector('figcaption').getBoundingClientRect();
    return {src: f.querySelector('img').getAttribute('src'), beside: c.left >= i.right - 1 && c.top < i.bottom};
  });
  return {
    images: imgs.map(i => ({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth})),
    sections: [...document.querySelectorAll('section.cycle')].map(s => s.id),
    figures: figures,
    scrollWidth: document.documentElement.scrollWidth,
    text: document.body.innerText,
  };
})()"""


@dataclass
class Visit:
    """What loading one page did: every URL requested, those that failed, the script's value."""

    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    result: Any = None

    @property
    def external(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


class Chromium:
    """One headless Chromium; ``visit(url)`` loads a page in a fresh tab."""

    def __init__(self, exe: str, profile: Path, timeout: float = 60.0):
        self.timeout = timeout
        cmd_r, self._cmd_w = os.pipe()  # Chromium reads commands on its fd 3 ...
        self._ev_r, ev_w = os.pipe()  # ... and writes responses and events on its fd 4

        def wire() -> None:
            a, b = os.dup(cmd_r), os.dup(ev_w)  # out of the way of 3 and 4 first
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                "--host-resolver-rules=MAP * ~NOTFOUND",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,
            preexec_fn=wire,
        )
        os.close(cmd_r)
        os.close(ev_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send one command and wait for its response (events meanwhile go to ``events``)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        while True:
            m = self._next()
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def _next(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._ev_r], [], [], max(left, 0))
            if not ready:
                raise TimeoutError(f"no answer from Chromium in {self.timeout} s")
            chunk = os.read(self._ev_r, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited ({self.proc.poll()})")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def wait_event(self, method: str, session: str) -> dict[str, Any]:
        for i, e in enumerate(self.events):
            if e.get("method") == method and e.get("sessionId") == session:
                return self.events.pop(i)
        while True:
            m = self._next()
            if m.get("method") == method and m.get("sessionId") == session:
                return m
            self.events.append(m)

    def visit(self, url: str, script: str = PAGE_SCRIPT, width: int = 1300, screenshot: Path | None = None) -> Visit:
        """Load ``url`` in a ``width`` px wide tab; record its requests; evaluate ``script`` after load."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Network", "Page", "Runtime"):
            self.send(f"{domain}.enable", session=sid)
        metrics = {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False}
        self.send("Emulation.setDeviceMetricsOverride", metrics, session=sid)
        self.events.clear()
        self.send("Page.navigate", {"url": url}, session=sid)
        self.wait_event("Page.loadEventFired", sid)
        value = self.send(
            "Runtime.evaluate", {"expression": script, "returnByValue": True, "awaitPromise": True}, session=sid
        )
        visit = Visit(result=value.get("result", {}).get("value"))
        if screenshot is not None:
            shot = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}, session=sid)
            import base64

            screenshot.write_bytes(base64.b64decode(shot["data"]))
        for e in self.events:
            if e.get("sessionId") != sid:
                continue
            if e.get("method") == "Network.requestWillBeSent":
                visit.requests.append(e["params"]["request"]["url"])
            elif e.get("method") == "Network.loadingFailed":
                visit.failed.append(e["params"].get("errorText", "?"))
        self.send("Target.closeTarget", {"targetId": target})
        return visit

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._cmd_w)
        os.close(self._ev_r)
