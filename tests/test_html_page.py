"""The HTML leaderboard: escaping, no network, and a sortable table in headless Chromium.

Chromium is driven through the DevTools protocol over ``--remote-debugging-pipe`` (NUL-separated
JSON on file descriptors 3 and 4): no websocket library, no port, no Playwright.
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from humanbench.leaderboards import leaderboard
from tests.test_leaderboards import make_records

SCRIPT_METHOD = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    """A leaderboard page of real records, one of them from a method named like a script, plus published numbers."""
    folder = tmp_path_factory.mktemp("html")
    make_records(folder, (("3dpw/cliff", "steady", 0.03), ("3dpw/cliff", SCRIPT_METHOD, 0.1),
                          ("3dpw/cliff", "zigzag", 0.06)))
    path = folder / "leaderboard.html"
    path.write_text(leaderboard([folder / "results"], published=True, fmt="html"), encoding="utf-8")
    return path


def test_record_text_is_escaped_and_the_page_is_self_contained(page) -> None:
    html = page.read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and SCRIPT_METHOD not in html
    assert html.count("<script>") == 1 and html.count("<style>") == 1
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "http://" not in html and "https://" not in html and "data:image/png;base64," in html
    assert leaderboard([page.parent / "results"], fmt="html") == leaderboard([page.parent / "results"], fmt="html")


class DevTools:
    """A minimal Chrome DevTools Protocol client over Chromium's debugging pipe."""

    def __init__(self, user_data_dir: Path) -> None:
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()

        def child_fds() -> None:  # Chromium reads commands on fd 3 and writes replies on fd 4
            os.dup2(to_chrome, 3)
            os.dup2(from_chrome, 4)

        self.process = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}",
                                         "--remote-debugging-pipe", "about:blank"], preexec_fn=child_fds,
                                        pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer, self._next_id, self.events = b"", 0, []
        self.session: str | None = None

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if not select.select([self._read], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._read, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the debugging pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, timeout: float = 30.0, **params) -> dict:
        """Send a command (to the attached page, once there is one) and return its result; events are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, event: str, timeout: float = 30.0) -> dict:
        """The first event called ``event`` (already received or arriving within ``timeout``)."""
        deadline = time.monotonic() + timeout
        while True:
            for seen in self.events:
                if seen.get("method") == event:
                    return seen
            self.events.append(self._message(deadline))

    def evaluate(self, expression: str):
        return self.send("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write)
        os.close(self._read)


@pytest.mark.skipif(not Path(CHROMIUM).exists(),
                    reason="chromium not installed (scripts/test.sh installs it when run as root with apt-get)")
def test_page_sorts_in_headless_chromium(page, tmp_path) -> None:
    browser = DevTools(tmp_path / "profile")
    try:
        target = browser.send("Target.createTarget", url="about:blank")["targetId"]
        browser.session = browser.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            browser.send(f"{domain}.enable")
        browser.send("Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1, mobile=False)
        browser.send("Page.navigate", url=page.as_uri())
        browser.wait_for("Page.loadEventFired")

        table = "document.querySelector('table.leaderboard')"
        methods = f"Array.from({table}.tBodies[0].rows, r => r.cells[0].firstChild.textContent.trim())"
        assert browser.evaluate("document.title") == "humanbench leaderboard"
        assert browser.evaluate(f"{table}.tHead.rows[0].cells[2].textContent") == "MPJPE ↓"
        assert sorted(browser.evaluate(methods)) == sorted(["steady", SCRIPT_METHOD, "zigzag"])
        assert browser.evaluate("document.querySelectorAll('table.leaderboard').length") > 5

        box = browser.evaluate(f"(() => {{ const r = {table}.tHead.rows[0].cells[2].getBoundingClientRect(); "
                               "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        values = f"Array.from({table}.tBodies[0].rows, r => Number(r.cells[2].dataset.value))"
        for expected in ("ascending", "descending"):
            for kind in ("mousePressed", "mouseReleased"):
                browser.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
            shown = browser.evaluate(values)
            assert shown == sorted(shown, reverse=expected == "descending") and len(set(shown)) == 3
            assert browser.evaluate(f"{table}.tHead.rows[0].cells[2].getAttribute('aria-sort')") == expected

        png = base64.b64decode(browser.send("Page.captureScreenshot", format="png")["data"])
        (tmp_path / "leaderboard.png").write_bytes(png)
        assert png.startswith(b"\x89PNG") and len(png) > 10_000

        requested = [e["params"]["request"]["url"] for e in browser.events if e.get("method") == "Network.requestWillBeSent"]
        assert requested and all(url.startswith(("file://", "data:")) for url in requested), requested
        assert not any(e.get("method") == "Page.javascriptDialogOpening" for e in browser.events)
    finally:
        browser.close()
