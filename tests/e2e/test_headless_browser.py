"""The browser check used on report.html (tests/e2e/headless.py) can fail: real headless Chromium
on small pages that fetch over the network, load a file:// subresource, log to the console, throw,
or carry a chart that draws nothing. (Needs Debian's chromium, which scripts/setup.sh installs.)"""

from __future__ import annotations

from . import headless

BAD = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>bad</title></head><body>
<img src="http://example.invalid/x.png"><img src="neighbour.png">
<svg class="chart" id="kv-1" width="300" height="100" xmlns="http://www.w3.org/2000/svg">
<polyline class="series" data-points="3" points=""/></svg>
<script>console.error("boom"); throw new Error("thrown")</script></body></html>
"""

GOOD = """<!DOCTYPE html><html><head><meta charset="utf-8"><title>good</title></head><body>
<svg class="chart" id="kv-1" width="300" height="100" xmlns="http://www.w3.org/2000/svg">
<polyline class="series" data-points="3" fill="none" stroke="#000" points="0,90 150,10 300,50"/>
</svg></body></html>
"""


def test_chromium_is_installed():
    assert headless.chromium(), "Debian's chromium is missing: run scripts/setup.sh"


def test_the_check_sees_network_file_loads_console_errors_and_blank_charts(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text(BAD)
    visit = headless.visit(page)
    found = headless.problems(visit, chart_ids=("kv-", "fwd-"))
    text = "\n".join(found)
    # both witnesses of the remote fetch: the page's own request (DevTools) and the proxy
    assert "network: http://example.invalid/x.png" in found, text
    assert any(p.startswith("network: proxy: GET http://example.invalid/x.png") for p in found)
    # a file:// subresource is a fetch too
    assert f"network: {(tmp_path / 'neighbour.png').as_uri()}" in found, text
    assert "console: console.error: boom" in found, text
    assert any(p.startswith("console: exception:") for p in found), text
    assert "no chart with an id starting 'fwd-'" in found, text
    assert any(p.startswith("chart kv-1: series 0 drew 0 points of 3") for p in found), text


def test_the_check_passes_a_clean_page(tmp_path):
    page = tmp_path / "good.html"
    page.write_text(GOOD)
    assert headless.problems(headless.visit(page), chart_ids=("kv-",)) == []
