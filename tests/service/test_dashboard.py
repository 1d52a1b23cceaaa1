"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a live
server whose data comes from a real small tuning run (`alto tune`)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.service.server import running_server

ALTO = Path(sys.executable).with_name("alto")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data = tmp_path_factory.mktemp("dashboard")
    run = subprocess.run(
        [
            ALTO,
            "tune",
            "--task",
            "digits-mlp",
            "--batch-sizes",
            "32,256",
            "--trials",
            "2",
            "--epochs",
            "2",
            "--optimizers",
            "alto,lamb",
        ],
        env={**os.environ, "ALTO_DATA_DIR": str(data)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    with running_server(data) as srv:
        yield srv


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=server.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, errors


def opened(page: Page, path: str, shot: str | None = None) -> Page:
    page.goto(path)
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    if shot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOTS / f"{shot}.png", full_page=True)
    return page


def trace(page: Page, chart: str, name: str) -> dict:
    return page.evaluate(
        """([chart, name]) => {
            const t = document.getElementById(chart).data.find((d) => d.name === name);
            return { x: t.x, y: t.y, symbols: t.marker.symbol, custom: t.customdata };
        }""",
        [chart, name],
    )


def test_overview_points_are_the_recommendations_in_the_database(page, server):
    opened(page, "/dashboard?task=digits-mlp", "overview")
    with server.database.unit_of_work() as uow:
        alto = uow.recommendations.latest("digits-mlp", "alto")
        lamb = uow.recommendations.latest("digits-mlp", "lamb")
    assert [r.batch_size for r in alto] == [32, 256]
    # alpha and beta1 are drawn as the search samples them: c = alpha (1 - beta1) and
    # log10(1 - beta1), computed from the stored recommendation.
    expected = {
        "c": [r.settings["alpha"] * (1 - r.settings["beta1"]) for r in alto],
        "log10(1 - beta1)": [math.log10(1 - r.settings["beta1"]) for r in alto],
        "lr": [r.settings["lr"] for r in alto],
    }
    charts = {"chart-c": "c", "chart-log-one-minus-beta1": "log10(1 - beta1)", "chart-lr": "lr"}
    for chart, key in charts.items():
        measured = trace(page, chart, key)
        assert measured["x"] == [r.batch_size for r in alto]
        assert measured["y"] == pytest.approx(expected[key])
        assert measured["custom"] == [r.study_id for r in alto]  # each point opens its study
        line = trace(page, chart, f"{key} (interpolated)")
        assert line["x"] == [32, 64, 128, 256]
        assert line["symbols"] == ["circle", "circle-open", "circle-open", "circle"]
    expect(page.locator("#chart-c")).to_have_attribute(
        "aria-label", "Best c = alpha (1 - beta1) against batch size"
    )
    expect(page.locator("#chart-log-one-minus-beta1")).to_have_attribute(
        "aria-label", "Best log10(1 - beta1) against batch size"
    )
    expect(page.get_by_role("columnheader", name="c", exact=True)).to_have_count(1)
    metric = trace(page, "chart-metric", "lamb")
    assert metric["y"] == pytest.approx([r.metric for r in lamb])
    rows = page.locator("#points tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(1)).to_contain_text("interpolated")


def test_a_point_links_to_its_study_page(page, server):
    opened(page, "/dashboard?task=digits-mlp")
    page.locator("#points tbody tr").first.get_by_role("link").click()
    page.wait_for_selector("body[data-ready='1']")
    expect(page.locator("#title")).to_contain_text("alto at batch size 32")
    page.wait_for_selector("#history .main-svg")
    expect(page.locator("#flatness tbody tr")).to_have_count(2)
    expect(page.locator("#trials tbody tr")).to_have_count(2)
    page.locator("#trials tbody input[type=checkbox]").first.check()
    page.wait_for_function("document.getElementById('curves').data?.length === 1")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SHOTS / "study.png", full_page=True)


def test_a_page_without_data_says_so(page):
    opened(page, "/dashboard?task=charlm", "overview-empty")
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#empty")).to_contain_text("No tuned batch sizes for charlm")
    expect(page.locator("#charts")).to_be_hidden()


def test_submit_and_cancel_through_the_jobs_page(page, server):
    opened(page, "/dashboard/jobs")
    page.get_by_label("Task").select_option("digits-mlp")
    page.get_by_label("Batch sizes").fill("64, 128")
    page.get_by_label("Trials per study").fill("3")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#submit-result")).to_contain_text("queued: 12 trials")
    with server.database.unit_of_work() as uow:
        (job,), _ = uow.jobs.list(status="queued")
    assert job.spec.batch_sizes == [64, 128] and job.spec.trials_per_study == 3
    row = page.locator(f"#jobs tbody tr[data-job-id='{job.id}']")
    expect(row).to_contain_text("queued")
    page.screenshot(path=SHOTS / "jobs.png", full_page=True)
    row.get_by_role("button", name=f"Cancel job {job.id}").click()
    expect(row).to_contain_text("cancelled")
    with server.database.unit_of_work() as uow:
        assert uow.jobs.get(job.id).status == "cancelled"
    opened(page, f"/dashboard/jobs/{job.id}", "job")
    expect(page.locator("#facts")).to_contain_text("cancelled")


def test_invalid_submission_shows_the_problem(page):
    opened(page, "/dashboard/jobs")
    page.get_by_label("Task").select_option("digits-mlp")
    page.get_by_label("Batch sizes").fill("4096")
    page.get_by_role("button", name="Submit").click()
    expect(page.locator("#error")).to_contain_text("batch_sizes[0]")


@pytest.mark.parametrize("path", ["/dashboard?task=digits-mlp", "/dashboard/jobs"])
def test_pages_fit_a_phone(browser, server, path):
    context = browser.new_context(viewport={"width": 390, "height": 844}, base_url=server.url)
    page = context.new_page()
    opened(page, path)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    context.close()
    assert overflow <= 0
