"""The report of a real run opened in headless Chromium: every image loads, the page asks for nothing
beyond the machine, each cycle has its section with captions beside the figures at 1300 px, the Gantt
chart has a bar per chunk, and Dask's performance report of each calibration is linked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_browser import Chromium

pytestmark = [pytest.mark.browser]


@pytest.fixture
def browser(chromium: str, tmp_path: Path):
    b = Chromium(chromium, tmp_path / "profile")
    yield b
    b.close()


@pytest.mark.dp3
@pytest.mark.slow
def test_the_report_of_a_real_run_renders_offline_with_every_image(pipeline_run: Path, browser: Chromium):
    report = pipeline_run / "report"
    visit = browser.visit(report.joinpath("index.html").as_uri(), screenshot=report / "screenshot.png")
    page = visit.result
    assert visit.external == [] and visit.failed == []
    assert len(page["images"]) >= 9
    broken = [i["src"] for i in page["images"] if not (i["complete"] and i["width"] > 0)]
    assert broken == []
    # every <img> was fetched from the report folder, and each is a PNG there too
    assert {u.rsplit("/", 1)[-1] for u in visit.requests if u.endswith(".png")} == {i["src"] for i in page["images"]}
    assert page["sections"] == ["cycle_00", "cycle_01", "cycle_02"]
    assert all(f["beside"] for f in page["figures"]), page["figures"]  # captions next to their figures
    assert page["scrollWidth"] <= 1300  # nothing wider than the window
    for name in ("image_cycle_01.png", "solutions_cycle_02.png", "gantt.png", "convergence.png", "cutouts.png"):
        assert (report / name).is_file()
    # Dask's performance report of each calibration, linked from the page (loads Bokeh from a CDN itself)
    html = (report / "index.html").read_text()
    for cycle in (1, 2):
        assert (report / f"dask-calibrate-cycle_{cycle:02d}.html").stat().st_size > 10_000
        assert f'href="dask-calibrate-cycle_{cycle:02d}.html"' in html
    summary = json.loads((pipeline_run / "summary.json").read_text())
    chunks = sum(c["chunks"] for c in summary["cycles"])
    assert f"{chunks} chunks; no worker ran two DP3 processes at once" in page["text"]


def test_the_check_sees_a_broken_image_and_an_external_request(tmp_path: Path, browser: Chromium):
    # the test above must be able to fail: a page with a missing PNG and an image on the internet
    page = tmp_path / "probe.html"
    page.write_text(
        '<!doctype html><html><body><section class="cycle" id="cycle_01"><figure><img src="missing.png">'
        "<figcaption>x</figcaption></figure></section>"
        '<img src="https://example.org/logo.png"></body></html>'
    )
    visit = browser.visit(page.as_uri())
    assert visit.external == ["https://example.org/logo.png"]
    assert len(visit.failed) == 2  # neither left the machine: the file is missing, the host unresolvable
    assert [i["width"] for i in visit.result["images"]] == [0, 0]
    assert visit.result["sections"] == ["cycle_01"]
