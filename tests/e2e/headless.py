"""Open a local HTML file in real headless Chromium (Debian's `chromium`) and record what it did.

Two independent witnesses of network use:
  * the DevTools protocol (over --remote-debugging-pipe, stdlib only): every request the page starts
    (Network.requestWillBeSent), file:// and data: subresources included, and every console message,
    log entry (failed loads, CSP, ...) and uncaught exception;
  * a proxy: Chromium is pointed at a socket this module listens on, loopback included
    (--proxy-bypass-list=<-loopback>), so any http(s)/ws connection attempt arrives there.
After the page's load event it evaluates a script that measures the rendered SVG charts (layout
boxes and geometry from the renderer, not the markup).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

# Flags that stop Chromium's own background traffic (updates, metrics, sync, ...), so that the
# proxy sees only what the page asks for.
QUIET = (
    "--headless",
    "--disable-gpu",
    "--no-sandbox",  # the suite runs as root
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-field-trial-config",
    "--disable-breakpad",
    "--disable-component-extensions-with-background-pages",
    "--no-service-autorun",
    "--no-pings",
    "--password-store=basic",
    "--disable-features=OptimizationHints,MediaRouter,DialMediaRouteProvider,Translate,"
    "AutofillServerCommunication,NetworkTimeServiceQuerying,CertificateTransparencyComponentUpdater,"
    "OptimizationGuideModelDownloading,SafeBrowsing,InterestFeedContentSuggestions,PrivacySandboxSettings4",
    "--metrics-recording-only",
    "--mute-audio",
    "--hide-scrollbars",
)

# Chromium's own connections that the flags above do not stop (its extension/component updater and
# its Google-account check), seen through the proxy whatever the page is (an about:blank visit makes
# them too). Matched exactly, as request-line prefixes; everything else at the proxy is the page's.
BROWSER_OWN = (
    "CONNECT update.googleapis.com:443 ",
    "POST http://update.googleapis.com/service/update2/json?",
    "CONNECT accounts.google.com:443 ",
)

# What the page reports about its charts, measured by the renderer.
MEASURE_CHARTS = r"""
JSON.stringify(Array.from(document.querySelectorAll('svg')).map(svg => {
  const box = svg.getBoundingClientRect();
  const marks = Array.from(svg.querySelectorAll('polyline, rect, path, circle'));
  const drawn = marks.filter(m => { const b = m.getBBox(); return b.width > 0 || b.height > 0; });
  const lines = Array.from(svg.querySelectorAll('polyline.series')).map(p => ({
    points: p.points.numberOfItems, length: p.getTotalLength(),
    declared: Number(p.getAttribute('data-points'))}));
  const box2 = b => ({width: b.width, height: b.height});
  const bars = Array.from(svg.querySelectorAll('rect.bar')).map(r => box2(r.getBBox()));
  const cells = Array.from(svg.querySelectorAll('rect.cell')).map(r => box2(r.getBBox()));
  return {id: svg.id, cls: svg.getAttribute('class'), width: box.width, height: box.height,
          marks: marks.length, drawn: drawn.length, lines, bars, cells};
}))
"""


def chromium() -> str | None:
    """Debian's Chromium binary. Not its launcher /usr/bin/chromium: that one adds
    --enable-remote-extensions and Google API keys (/etc/chromium.d), i.e. background traffic."""
    launcher = shutil.which("chromium")
    if launcher is None:
        return None
    binary = Path(launcher).resolve().parent.parent / "lib" / "chromium" / "chromium"
    return str(binary) if binary.is_file() else launcher


@dataclass
class PageVisit:
    url: str
    requests: list[str] = field(default_factory=list)  # every URL the page asked for
    proxy_hits: list[str] = field(default_factory=list)  # first line of each proxy connection
    console: list[str] = field(default_factory=list)  # console / log / exception messages
    charts: list[dict] = field(default_factory=list)
    loaded: bool = False

    def network(self) -> list[str]:
        """Requests the page made other than for the document itself (DevTools), and every proxy
        connection except Chromium's own (BROWSER_OWN)."""
        return [u for u in self.requests if u != self.url] + [
            f"proxy: {h}" for h in self.proxy_hits if not h.startswith(BROWSER_OWN)
        ]


class _Proxy:
    """A socket Chromium must use as its proxy; records the first line of every connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hits: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    first = ""
                self.hits.append(first or "(connection without a request line)")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class _Pipe:
    """The DevTools protocol over --remote-debugging-pipe: NUL-terminated JSON messages."""

    def __init__(self, write_fd: int, read_fd: int) -> None:
        self.w, self.r = write_fd, read_fd
        self.buf = b""
        self.next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        return self.next_id

    def _read_one(self, deadline: float) -> dict | None:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.r], [], [], left)[0]:
                return None
            chunk = os.read(self.r, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params=None, session=None, timeout=60.0) -> dict:
        want = self.send(method, params, session)
        deadline = time.monotonic() + timeout
        while (msg := self._read_one(deadline)) is not None:
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)
        raise TimeoutError(f"no answer to {method} in {timeout} s")

    def wait_event(self, method: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        if any(e.get("method") == method for e in self.events):
            return True
        while (msg := self._read_one(deadline)) is not None:
            self.events.append(msg)
            if msg.get("method") == method:
                return True
        return False

    def drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (msg := self._read_one(deadline)) is not None:
            self.events.append(msg)


def _high_fd(fd: int) -> int:
    """A copy of fd numbered >= 10, so that placing the pipe at 3 and 4 cannot clobber it."""
    import fcntl

    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


def visit(html: Path, settle_s: float = 1.0, timeout_s: float = 120.0) -> PageVisit:
    """Load `html` in headless Chromium, wait for its load event (+ settle_s for late requests and
    messages), measure its charts, and return everything it did."""
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium not found: run scripts/setup.sh (installs Debian's chromium)")
    url = html.resolve().as_uri()
    page = PageVisit(url)
    proxy = _Proxy()
    to_chrome_r, to_chrome_w = (_high_fd(fd) for fd in os.pipe())
    from_chrome_r, from_chrome_w = (_high_fd(fd) for fd in os.pipe())

    with (
        tempfile.TemporaryDirectory(prefix="pm-chromium-") as profile,
        tempfile.TemporaryFile() as log,
    ):
        proc = subprocess.Popen(
            [  # Chromium reads commands on fd 3 and writes answers on fd 4
                "bash",
                "-c",
                f'exec "$@" 3<&{to_chrome_r} 4>&{from_chrome_w} {to_chrome_r}<&- {from_chrome_w}>&-',
                "bash",
                exe,
                *QUIET,
                f"--user-data-dir={profile}",
                f"--proxy-server=127.0.0.1:{proxy.port}",
                "--proxy-bypass-list=<-loopback>",
                "--remote-debugging-pipe",
                "--window-size=1200,2400",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            pass_fds=(to_chrome_r, from_chrome_w),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        cdp = _Pipe(to_chrome_w, from_chrome_r)
        try:
            try:
                target = cdp.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            except (OSError, RuntimeError, TimeoutError) as e:
                log.seek(0)
                tail = log.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"Chromium did not start ({e}); its stderr:\n{tail}") from e
            sid = cdp.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
                "sessionId"
            ]
            for domain in ("Network", "Runtime", "Log", "Page"):
                cdp.call(f"{domain}.enable", session=sid)
            cdp.call("Page.navigate", {"url": url}, session=sid)
            page.loaded = cdp.wait_event("Page.loadEventFired", timeout_s)
            cdp.drain(settle_s)
            res = cdp.call(
                "Runtime.evaluate", {"expression": MEASURE_CHARTS, "returnByValue": True}, sid
            )
            page.charts = json.loads(res["result"]["value"]) if "value" in res["result"] else []
            cdp.drain(0.2)
            try:
                cdp.call("Browser.close", timeout=10)
            except (RuntimeError, TimeoutError):
                pass
        finally:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            os.close(to_chrome_w)
            os.close(from_chrome_r)
            proxy.close()
    page.proxy_hits = list(proxy.hits)
    for e in cdp.events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Network.requestWillBeSent":
            page.requests.append(p["request"]["url"])
        elif m == "Runtime.consoleAPICalled":
            args = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
            page.console.append(f"console.{p['type']}: {args}")
        elif m == "Log.entryAdded":
            entry = p["entry"]
            page.console.append(f"log {entry['level']} ({entry['source']}): {entry['text']}")
        elif m == "Runtime.exceptionThrown":
            page.console.append(f"exception: {p['exceptionDetails'].get('text')}")
    return page


def problems(page: PageVisit, chart_ids: tuple[str, ...] = ()) -> list[str]:
    """Everything wrong with a visit: not loaded, any network use, any console/log message or
    exception, and any chart (svg.chart) that did not draw: no layout box, a data series whose
    rendered point count differs from its data-points or is 0, a line of no length, bars of no
    height, heat map cells of no area, or a chart with no drawn mark at all. chart_ids: id
    prefixes that must be present."""
    found = []
    if not page.loaded:
        found.append("the page's load event never came")
    found += [f"network: {u}" for u in page.network()]
    found += [f"console: {m}" for m in page.console]
    charts = [c for c in page.charts if c["cls"] == "chart"]
    for prefix in chart_ids:
        if not any(c["id"].startswith(prefix) for c in charts):
            found.append(f"no chart with an id starting {prefix!r}")
    for c in charts:
        name = f"chart {c['id'] or '?'}"
        if c["width"] <= 0 or c["height"] <= 0:
            found.append(f"{name}: no layout box ({c['width']}x{c['height']})")
        if c["drawn"] == 0:
            found.append(f"{name}: no drawn mark")
        for i, line in enumerate(c["lines"]):
            if line["points"] == 0 or line["points"] != line["declared"] or line["length"] <= 0:
                found.append(
                    f"{name}: series {i} drew {line['points']} points of "
                    f"{line['declared']}, length {line['length']}"
                )
        if c["bars"] and not any(b["height"] > 0 and b["width"] > 0 for b in c["bars"]):
            found.append(f"{name}: {len(c['bars'])} bars, none with an area")
        if c["cells"] and not all(b["height"] > 0 and b["width"] > 0 for b in c["cells"]):
            found.append(f"{name}: heat map cells without an area")
        if not c["lines"] and not c["bars"] and not c["cells"]:
            found.append(f"{name}: neither a data series, bars nor heat map cells")
    return found
