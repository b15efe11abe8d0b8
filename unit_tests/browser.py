"""Open a local HTML file in headless Chromium and report what a reader's browser would see.

Talks the DevTools protocol over ``--remote-debugging-pipe`` (JSON messages ending in a NUL byte on
file descriptors 3 and 4), so it needs no WebSocket library and no port. It collects every console
error, uncaught exception and network request that leaves the machine, and evaluates JavaScript in
the loaded page (for example: the number of points each plotly chart drew).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:", "chrome:", "devtools:")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


@dataclass
class PageVisit:
    """What loading a page produced: its console errors, exceptions, remote requests and evaluations."""

    errors: list[str] = field(default_factory=list)
    remote_requests: list[str] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)


class Chromium:
    """One headless Chromium; ``visit`` loads a file and evaluates expressions in it."""

    def __init__(self, executable: str, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="finrl-chromium-")
        # Chromium reads commands on fd 3 and writes answers on fd 4; the child's ends are moved above
        # fd 10 first, so that putting them on 3 and 4 cannot overwrite one with the other
        read_end, self._to_browser = os.pipe()
        self._from_browser, write_end = os.pipe()
        child_read, child_write = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (read_end, write_end))
        os.close(read_end)
        os.close(write_end)
        args = [
            executable, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
            "--no-first-run", "--no-default-browser-check", "--disable-extensions", "--mute-audio",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={self._profile.name}", "about:blank",
        ]  # fmt: skip

        def map_pipes() -> None:  # in the child, before exec: dup2 leaves 3 and 4 inheritable
            os.dup2(child_read, 3)
            os.dup2(child_write, 4)

        self._process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            close_fds=False,  # keeps 3 and 4; every other descriptor of ours is close-on-exec (PEP 446)
            preexec_fn=map_pipes,
        )
        os.close(child_read)
        os.close(child_write)
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self._from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self._messages.put(json.loads(message))
        self._messages.put(None)  # the browser went away

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send a command and wait for its answer; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            answer = self._next_message(deadline, method)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result
            self._events.append(answer)

    def _next_message(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"chromium did not answer {waiting_for} within {self.timeout:.0f}s")
        try:
            message = self._messages.get(timeout=remaining)
        except queue.Empty:
            raise TimeoutError(f"chromium did not answer {waiting_for} within {self.timeout:.0f}s") from None
        if message is None:
            raise RuntimeError(f"chromium exited (code {self._process.poll()}) while waiting for {waiting_for}")
        return message

    def wait_for_event(self, method: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        if any(e.get("method") == method and e.get("sessionId") == session for e in self._events):
            return
        while True:
            event = self._next_message(deadline, method)
            self._events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return

    def visit(self, page: Path, expressions: dict[str, str], settle_seconds: float = 1.0) -> PageVisit:
        """Load ``page``, let its scripts run, then evaluate each expression (awaiting promises)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.send(f"{domain}.enable", session=session)
        self._events.clear()
        self.send("Page.navigate", {"url": page.resolve().as_uri()}, session=session)
        self.wait_for_event("Page.loadEventFired", session)
        time.sleep(settle_seconds)  # timers and animation frames that charts schedule after load
        values = {
            name: self.send(
                "Runtime.evaluate",
                {"expression": expression, "returnByValue": True, "awaitPromise": True},
                session=session,
            )
            for name, expression in expressions.items()
        }
        visit = PageVisit(values={name: _evaluated(name, answer) for name, answer in values.items()})
        for event in self._events:
            _record(event, visit)
        self.send("Target.closeTarget", {"targetId": target})
        return visit

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        self._profile.cleanup()


def _evaluated(name: str, answer: dict[str, Any]) -> Any:
    if "exceptionDetails" in answer:
        raise AssertionError(f"evaluating {name} threw: {answer['exceptionDetails'].get('text')}")
    return answer["result"].get("value")


def _record(event: dict[str, Any], visit: PageVisit) -> None:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        details = params["exceptionDetails"]
        visit.errors.append(f"exception: {details.get('exception', {}).get('description') or details.get('text')}")
    elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
        visit.errors.append("console: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
    elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
        visit.errors.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}".strip())
    elif method == "Network.requestWillBeSent":
        url = params["request"]["url"]
        if not url.startswith(LOCAL_SCHEMES):
            visit.remote_requests.append(url)
