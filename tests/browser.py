"""A real headless Chromium, driven over the DevTools protocol (CDP) with `websockets`: enough to open a page,
run JavaScript in it, click, type and take a screenshot, as a user's browser would.

    with Chromium(tmp_path) as browser:
        browser.open(page_path)                 # file://, waits for the load event
        browser.js("document.title")            # a value back (JSON-able)
        browser.click(x, y); browser.type("text")
        png = browser.screenshot()

Debian's `chromium` package (apt-get install chromium; .ci/run installs it on a new machine).
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

from websockets.sync.client import connect

BINARIES = ("chromium", "chromium-browser", "google-chrome")


def chromium_binary() -> str:
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError("no chromium on PATH: `apt-get install chromium` (.ci/run installs it)")


class Chromium:
    def __init__(self, profile: Path, width: int = 1400, height: int = 900):
        self.profile = Path(profile)
        self.size = (width, height)
        self.events: list[dict] = []
        self.ids = itertools.count(1)

    def __enter__(self) -> "Chromium":
        args = [chromium_binary(), "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
                "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
                f"--window-size={self.size[0]},{self.size[1]}", "about:blank"]
        if os.geteuid() == 0:  # Chromium refuses to run as root inside its own sandbox
            args.insert(1, "--no-sandbox")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = self.profile / "DevToolsActivePort"  # Chromium writes its port and browser path here
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and len(port_file.read_text().split()) == 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"chromium did not start (exit {self.proc.poll()})")
            time.sleep(0.05)
        port, path = port_file.read_text().split()
        self.stack = ExitStack()
        self.ws = self.stack.enter_context(connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30))
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        self.call("Page.enable")
        self.call("Runtime.enable")
        self.call("Network.enable")
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.size[0], "height": self.size[1], "deviceScaleFactor": 1, "mobile": False})
        return self

    def __exit__(self, *exc):
        try:
            self.call("Browser.close", session=False, timeout=10)
        except Exception:
            pass
        self.stack.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def call(self, method: str, params: dict | None = None, session: bool = True, timeout: float = 60) -> dict:
        """Send one command and wait for its answer; events that arrive meanwhile are kept in self.events."""
        number = next(self.ids)
        message = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if reply.get("id") == number:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict:
        """The first event named `method` (already arrived, or the next to arrive)."""
        deadline = time.monotonic() + timeout
        while True:
            for event in self.events:
                if event.get("method") == method:
                    self.events.remove(event)
                    return event
            self.events.append(json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic()))))

    def open(self, path: Path) -> None:
        self.events.clear()
        self.call("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self.wait_for("Page.loadEventFired", timeout=120)

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def click_on(self, selector: str) -> None:
        """Click the middle of the first element the CSS selector finds, as the mouse would."""
        box = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                      " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        self.click(*box)

    def type(self, text: str) -> None:
        self.call("Input.insertText", {"text": text})

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])

    def requests(self) -> list[str]:
        """The URLs the page asked for since it was opened."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]
