"""A run whose cycle fails still writes its report: the failure with the chunks that have no
completion record and the last lines of their DP3 logs, and everything that did finish."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_browser import Chromium
from reportkit import run_config

from ddpipe.cli import main

#: a DP3 that fails as a crashing one does: a message on stderr and a non-zero exit
FAILING_DP3 = """#!/bin/sh
echo "msin: reading the data" >&2
echo "fatal: simulated DP3 crash for the report test" >&2
exit 3
"""


@pytest.mark.browser
def test_a_failed_cycle_still_gets_a_report_with_the_failure_table(observation, tmp_path: Path, chromium: str):
    fake = tmp_path / "DP3"
    fake.write_text(FAILING_DP3)
    fake.chmod(0o755)
    workdir = tmp_path / "work"
    cluster = {"n_workers": 2, "threads_per_worker": 1, "retries": 0}
    cfg = run_config(observation, workdir, dp3={"executable": str(fake)}, cluster=cluster, cycles=[{}])
    assert main(["run", str(cfg)]) != 0
    report = workdir / "report"
    html = (report / "index.html").read_text()
    assert 'id="failure"' in html and "The run failed in cycle 1" in html
    rows = html.split('<table class="failures">', 1)[1].split("</table>", 1)[0]
    for k in range(4):  # every chunk failed: each in the table with its log's last line
        assert f"<td>chunk_{k:03d}</td>" in rows
    assert rows.count("simulated DP3 crash for the report test") == 4
    assert 'id="cycle_00"' in html and 'id="cycle_01"' in html  # what finished, and the failed cycle
    assert (report / "image_cycle_00.png").is_file()
    assert not (workdir / "summary.json").exists()  # the summary is of complete runs only
    b = Chromium(chromium, tmp_path / "profile")
    try:
        visit = b.visit((report / "index.html").as_uri())
    finally:
        b.close()
    assert visit.external == [] and visit.failed == []
    assert all(i["width"] > 0 for i in visit.result["images"]) and visit.result["images"]
    assert "The run failed in cycle 1" in visit.result["text"]
