"""The portal in a real browser: Debian's Chromium driven through its chromedriver by selenium, against
a real collector holding the demo's workload (sent through the real openai client and OTLP). Each page
loads with no console error and its figures equal the API's and sums computed here from the calls;
sorting, filtering, paging and the month selector work; each export button downloads the API's file;
a tenant token sees its tenant only. A screenshot of each page goes to build/screenshots/."""

from __future__ import annotations

import csv
import io
import json
import shutil
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from spendscope.collector import Collector, CollectorConfig
from spendscope.demo import workload
from spendscope.demo.fake_openai import FakeOpenAI
from spendscope.demo.runner import DEMO_MARGINS, wait_for_calls
from spendscope.demo.services import DemoServices
from spendscope.store import Store
from spendscope.store import tokens as t
from spendscope.store.billing import set_margin
from tests.store_fixtures import fresh_store

selenium = pytest.importorskip("selenium")  # a test dependency: installed with '.[test]'
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, server_dsn: str, _store_admin: Store
) -> Iterator[dict[str, Any]]:
    """A collector on a fresh store holding the demo's workload (seed 7), with the demo's margins, an
    admin token and a token for each tenant."""
    spool = tmp_path_factory.mktemp("spool")
    with fresh_store(server_dsn, _store_admin) as store:
        dsn = f"{server_dsn}/{store.database}"
        config = CollectorConfig.resolve(listen="127.0.0.1:0", store=dsn, spool=str(spool))
        with Collector(config, store=store) as collector, FakeOpenAI() as server:
            with DemoServices(collector.url) as services:
                outcome = workload.run(server, seed=7, on_client=services.instrument)
            assert wait_for_calls(store, outcome.calls) == outcome.calls
            for tenant, percent in DEMO_MARGINS.items():
                set_margin(store, tenant, percent)
            _, admin = t.create(store, kind=t.ADMIN)
            _, talentco = t.create(store, kind=t.TENANT, tenant="talentco")
            time.sleep(2.5)  # the collector reads the store's tokens at most every 2 s: now it has them
            yield {"url": collector.url, "store": store, "admin": admin, "talentco": talentco}


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(downloads: Path) -> Iterator[WebDriver]:
    for tool in (CHROMIUM, CHROMEDRIVER):
        if not Path(tool).exists():
            pytest.fail(f"{tool} is missing: run scripts/install-test-tools", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


# --- helpers ---------------------------------------------------------------------------------------------
def api(site: dict[str, Any], path: str, token: str | None = None) -> bytes:
    request = urllib.request.Request(
        site["url"] + path, headers={"Authorization": f"Bearer {token or site['admin']}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def api_json(site: dict[str, Any], path: str, token: str | None = None) -> Any:
    return json.loads(api(site, path, token))


def sign_in(browser: WebDriver, site: dict[str, Any], token: str) -> None:
    browser.delete_all_cookies()
    browser.get(site["url"] + "/login")
    browser.find_element(By.ID, "token").send_keys(token)
    browser.find_element(By.ID, "sign-in").click()
    _wait(lambda: "/login" not in browser.current_url, "the redirect after signing in")


def _wait(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}", pytrace=False)


def console_errors(browser: WebDriver) -> list[dict[str, Any]]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def open_page(browser: WebDriver, site: dict[str, Any], path: str, screenshot: str | None = None) -> None:
    browser.get(site["url"] + path)
    assert browser.find_elements(By.ID, "error") == [], browser.find_element(By.ID, "error").text
    assert console_errors(browser) == []
    if screenshot:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        browser.set_window_size(
            1280, max(1000, int(browser.execute_script("return document.documentElement.scrollHeight")) + 40)
        )
        browser.save_screenshot(str(SCREENSHOTS / f"{screenshot}.png"))
        browser.set_window_size(1280, 1000)


def usd(cell: Any) -> tuple[str | None, int]:
    """A money cell's exact figure (None: unknown) and its calls of unknown cost."""
    money = cell if cell.get_attribute("class") == "money" else cell.find_element(By.CSS_SELECTOR, ".money")
    exact = money.get_attribute("data-usd")
    return (exact or None), int(money.get_attribute("data-unknown"))


def api_cost(row: dict[str, Any], column: str = "cost_usd") -> tuple[str | None, int]:
    return row[column], int(row["unpriced_calls"]) + int(row["usage_unavailable_calls"])


def rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(report["columns"], row, strict=True)) for row in report["rows"]]


def downloaded(folder: Path, before: set[str]) -> Path:
    """The file a click downloaded, once Chrome has finished writing it (no partial file left, its
    size steady)."""
    sizes: dict[str, int] = {}

    def done() -> Path | None:
        entries = [p for p in folder.iterdir() if p.name not in before]
        if not entries or any(p.name.endswith((".crdownload", ".tmp")) for p in entries):
            return None
        new = entries[0]
        size, sizes[new.name] = sizes.get(new.name), new.stat().st_size
        return new if size == new.stat().st_size and size else None

    return _wait(done, "a download")


# --- tests -----------------------------------------------------------------------------------------------
def test_every_page_loads_signed_in_with_no_console_error(browser: WebDriver, site: dict[str, Any]) -> None:
    browser.get(site["url"] + "/users")
    assert "/login?next=%2Fusers" in browser.current_url  # not signed in yet
    sign_in(browser, site, site["admin"])
    cookie = browser.get_cookie("spendscope_session")
    assert cookie is not None and cookie["httpOnly"] and cookie["secure"]
    month = datetime.now(UTC).strftime("%Y-%m")
    for path, name in [
        ("/", "overview"),
        ("/users", "users"),
        (f"/users/recruiter-1?month={month}", "user-month"),
        ("/tenants?tenant=talentco", "tenants-and-jobs"),
        ("/billing?tenant=talentco", "billing"),
    ]:
        open_page(browser, site, path, screenshot=name)
        assert browser.title.endswith("SpendScope")
    assert (SCREENSHOTS / "overview.png").stat().st_size > 10_000


def test_the_overview_equals_the_api_and_the_calls(browser: WebDriver, site: dict[str, Any]) -> None:
    sign_in(browser, site, site["admin"])
    open_page(browser, site, "/")
    stats = api_json(site, "/api/usage/stats?since=" + urllib.parse.quote(_month_start()))
    store: Store = site["store"]
    calls, cost, unknown = store.query(
        "SELECT count(), sum(ifNull(cost_usd, 0)), countIf(unpriced OR usage_unavailable) FROM llm_usage FINAL"
    ).rows[0]
    talentco = store.query(
        "SELECT sum(ifNull(cost_usd, 0)) FROM llm_usage FINAL WHERE tenant = 'talentco'"
    ).rows[0][0]
    billed = Decimal(cost) + Decimal(talentco) * Decimal("0.25")
    for window in ("today", "month", "window"):
        card = browser.find_element(By.ID, f"stats-{window}")
        field = lambda name, card=card: card.find_element(By.CSS_SELECTOR, f'[data-field="{name}"]')  # noqa: E731
        assert int(field("calls").text.replace(",", "")) == stats[window]["calls"] == calls
        assert usd(field("cost_usd")) == api_cost(stats[window]) == (str(Decimal(cost).normalize()), unknown)
        assert usd(field("billed_usd")) == api_cost(stats[window], "billed_usd")
        assert Decimal(usd(field("billed_usd"))[0]) == billed
        assert int(field("active_users").text) == stats[window]["active_users"] == 10
    pairs = rows(
        api_json(
            site, "/api/usage/breakdown?by=endpoint&by2=model&since=" + urllib.parse.quote(_month_start())
        )
    )
    shown = browser.find_elements(By.CSS_SELECTOR, "#pairs tbody tr")
    assert len(shown) == len(pairs)
    for tr, row in zip(shown, pairs, strict=True):
        assert (tr.get_attribute("data-endpoint"), tr.get_attribute("data-model")) == (
            row["endpoint"],
            row["model"],
        )
        assert usd(tr.find_element(By.CSS_SELECTOR, '[data-field="cost_usd"]')) == api_cost(row)
    unknown_rows = browser.find_elements(By.CSS_SELECTOR, "#unknown tbody tr")
    assert {r.get_attribute("data-model") for r in unknown_rows} >= {"brightschool-tutor-v2"}
    # the unpriced model's cost is shown as unknown, never $0
    tutor = browser.find_element(
        By.CSS_SELECTOR, '#pairs tr[data-model="brightschool-tutor-v2"] [data-field="cost_usd"]'
    )
    assert tutor.text == "unknown"


def _month_start() -> str:
    return datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0).isoformat()


def test_users_sort_filter_and_page_on_the_server(browser: WebDriver, site: dict[str, Any]) -> None:
    sign_in(browser, site, site["admin"])
    open_page(browser, site, "/users")

    def listed() -> list[str]:
        return [
            tr.get_attribute("data-user") for tr in browser.find_elements(By.CSS_SELECTOR, "#users tbody tr")
        ]

    by_cost = rows(api_json(site, "/api/usage/users?limit=50"))
    assert listed() == [row["user"] for row in by_cost]
    for tr, row in zip(browser.find_elements(By.CSS_SELECTOR, "#users tbody tr"), by_cost, strict=True):
        assert usd(tr.find_element(By.CSS_SELECTOR, '[data-field="cost_usd"]')) == api_cost(row)
    browser.find_element(By.ID, "sort-user").click()
    _wait(lambda: "sort=user" in browser.current_url, "sorting by user")
    assert listed() == sorted(listed()) and len(listed()) == 10
    browser.find_element(By.ID, "sort-user").click()
    _wait(lambda: "order=desc" in browser.current_url, "sorting by user, descending")
    assert listed() == sorted(listed(), reverse=True)
    tenant = browser.find_element(By.ID, "filter-tenant")
    tenant.clear()
    tenant.send_keys("brightschool")
    Select(browser.find_element(By.ID, "filter-size")).select_by_visible_text("5")
    browser.find_element(By.ID, "apply-filters").click()
    _wait(lambda: "tenant=brightschool" in browser.current_url, "the tenant filter")
    first = listed()
    assert browser.find_element(By.ID, "user-count").get_attribute("data-total") == "8"
    assert len(first) == 5 and all(u.startswith("student-") for u in first)
    browser.find_element(By.ID, "page-next").click()
    _wait(lambda: "page=2" in browser.current_url, "the next page")
    second = listed()
    assert len(second) == 3 and not set(first) & set(second)
    expected = rows(
        api_json(site, "/api/usage/users?sort=user&order=desc&limit=50&where=tenant%3Dbrightschool")
    )
    assert first + second == [row["user"] for row in expected]
    browser.find_element(By.ID, "filter-endpoint").send_keys("generate_hint")
    browser.find_element(By.ID, "filter-search").send_keys("STUDENT-00")
    browser.find_element(By.ID, "apply-filters").click()
    _wait(lambda: "endpoint=generate_hint" in browser.current_url, "the endpoint filter")
    assert listed() == ["student-00"]
    cell = browser.find_element(
        By.CSS_SELECTOR, '#users tbody tr[data-user="student-00"] [data-field="calls"]'
    )
    hints = rows(api_json(site, "/api/usage/users?search=student-00&where=endpoint%3Dgenerate_hint"))
    assert int(cell.text) == hints[0]["calls"]
    browser.find_element(By.LINK_TEXT, "student-00").click()
    _wait(lambda: "/users/student-00" in browser.current_url, "the user's month")
    month = rows(api_json(site, "/api/usage/users/student-00"))
    shown = {
        tr.get_attribute("data-model"): tr
        for tr in browser.find_elements(By.CSS_SELECTOR, "#by-model tbody tr")
    }
    assert set(shown) == {row["model"] for row in month}
    for row in month:
        assert usd(shown[row["model"]].find_element(By.CSS_SELECTOR, '[data-field="cost_usd"]')) == api_cost(
            row
        )
    assert len(browser.find_elements(By.CSS_SELECTOR, "#by-day tbody tr")) == 1


def test_tenants_and_jobs_equal_the_api(browser: WebDriver, site: dict[str, Any]) -> None:
    sign_in(browser, site, site["admin"])
    open_page(browser, site, "/tenants?tenant=talentco")
    since = urllib.parse.quote(_month_start())
    tenants = rows(api_json(site, f"/api/usage/billing?by=tenant&since={since}"))
    for row in tenants:
        tr = browser.find_element(By.CSS_SELECTOR, f'#tenants tr[data-tenant="{row["tenant"]}"]')
        assert usd(tr.find_element(By.CSS_SELECTOR, '[data-field="cost_usd"]')) == api_cost(row)
        assert usd(tr.find_element(By.CSS_SELECTOR, '[data-field="billed_usd"]')) == api_cost(
            row, "billed_usd"
        )
    jobs = rows(
        api_json(
            site, f"/api/usage/billing?by=attr:job_id&by2=endpoint&where=tenant%3Dtalentco&since={since}"
        )
    )
    for row in jobs:
        tr = browser.find_element(By.CSS_SELECTOR, f'#jobs tr[data-key="{row["attr:job_id"]}"]')
        cell = tr.find_element(By.CSS_SELECTOR, f'[data-column="{row["endpoint"]}"]')
        assert usd(cell) == api_cost(row, "billed_usd")
    job = browser.find_element(By.CSS_SELECTOR, '#jobs tr[data-key="job-1001"]')
    total = sum(Decimal(r["billed_usd"]) for r in jobs if r["attr:job_id"] == "job-1001")
    assert Decimal(usd(job.find_element(By.CSS_SELECTOR, '[data-field="total"]'))[0]) == total
    names = {
        q.get_attribute("data-name"): float(q.get_attribute("data-value"))
        for q in job.find_elements(By.CSS_SELECTOR, ".quantity")
    }
    assert names["questions"] == 5 and names["cvs_parsed"] >= 2 and names["realtime_seconds"] > 0


def test_the_billing_page_and_its_month_selector(browser: WebDriver, site: dict[str, Any]) -> None:
    sign_in(browser, site, site["admin"])
    open_page(browser, site, "/billing?tenant=talentco")
    month = datetime.now(UTC).strftime("%Y-%m")
    categories = rows(api_json(site, f"/api/usage/billing?by=endpoint&month={month}&where=tenant%3Dtalentco"))
    shown = {
        tr.get_attribute("data-endpoint"): tr
        for tr in browser.find_elements(By.CSS_SELECTOR, "#categories tbody tr")
    }
    assert set(shown) == {row["endpoint"] for row in categories}
    for row in categories:
        tr = shown[row["endpoint"]]
        assert int(tr.find_element(By.CSS_SELECTOR, '[data-field="calls"]').text) == row["calls"]
        assert usd(tr.find_element(By.CSS_SELECTOR, '[data-field="billed_usd"]')) == api_cost(
            row, "billed_usd"
        )
        for q in tr.find_elements(By.CSS_SELECTOR, ".quantity"):
            assert float(q.get_attribute("data-value")) == row["quantities"].get(
                q.get_attribute("data-name"), 0
            )
    questions = shown["question-generation"].find_element(By.CSS_SELECTOR, '.quantity[data-name="questions"]')
    assert float(questions.get_attribute("data-value")) == 15  # 5 a job, three jobs
    total = browser.find_element(By.CSS_SELECTOR, '#billing-totals [data-field="billed_usd"]')
    assert Decimal(usd(total)[0]) == sum(Decimal(r["billed_usd"]) for r in categories if r["billed_usd"])
    previous = Select(browser.find_element(By.ID, "month")).options[1].text
    Select(browser.find_element(By.ID, "month")).select_by_visible_text(previous)
    browser.find_element(By.ID, "show-month").click()
    _wait(lambda: f"month={previous}" in browser.current_url, "the previous month")
    assert browser.find_element(By.ID, "billing-month").text == previous
    assert "No calls this month" in browser.find_element(By.ID, "categories").text
    assert console_errors(browser) == []


@pytest.mark.parametrize(
    ("page", "button"),
    [
        ("/", "export-detailed"),
        ("/", "export-summary"),
        ("/users?tenant=brightschool", "export-summary"),
        ("/tenants?tenant=talentco", "export-jobs"),
        ("/billing?tenant=talentco", "export-summary"),
        ("/billing?tenant=talentco", "export-detailed"),
    ],
)
def test_each_export_button_downloads_the_apis_file(
    browser: WebDriver, site: dict[str, Any], downloads: Path, page: str, button: str
) -> None:
    sign_in(browser, site, site["admin"])
    open_page(browser, site, page)
    link = browser.find_element(By.ID, button)
    href = link.get_attribute("href")
    before = {p.name for p in downloads.iterdir()}
    link.click()
    got = downloaded(downloads, before).read_bytes()
    expected = api(site, urllib.parse.urlsplit(href)._replace(scheme="", netloc="").geturl())
    assert got == expected and got.count(b"\n") >= 2


def test_a_tenant_token_sees_only_its_tenant_in_the_browser(
    browser: WebDriver, site: dict[str, Any], downloads: Path
) -> None:
    sign_in(browser, site, site["talentco"])
    assert urllib.parse.urlsplit(browser.current_url).path == "/billing"
    assert browser.find_element(By.ID, "who").text == "tenant talentco"
    assert browser.find_element(By.ID, "billing-tenant").text == "talentco"
    assert browser.find_elements(By.LINK_TEXT, "Overview") == []
    open_page(browser, site, "/billing", screenshot="billing-tenant")
    browser.get(site["url"] + "/billing?tenant=brightschool")
    assert "sees that tenant only" in browser.find_element(By.ID, "error").text
    assert [e["message"].split(" - ")[1] for e in console_errors(browser)] == [
        "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    ]
    browser.get(site["url"] + "/users?tenant=brightschool")
    assert browser.find_elements(By.CSS_SELECTOR, "#users tbody tr") == []
    browser.get(site["url"] + "/users")
    users = {
        tr.get_attribute("data-user") for tr in browser.find_elements(By.CSS_SELECTOR, "#users tbody tr")
    }
    assert users == {"recruiter-1", "recruiter-2"}
    browser.get(site["url"] + "/api/usage/summary?by=tenant")  # the sign-in cookie works on the API too
    assert [row[0] for row in json.loads(browser.find_element(By.TAG_NAME, "body").text)["rows"]] == [
        "talentco"
    ]
    open_page(browser, site, "/billing")
    before = {p.name for p in downloads.iterdir()}
    browser.find_element(By.ID, "export-detailed").click()
    exported = list(csv.DictReader(io.StringIO(downloaded(downloads, before).read_text())))
    assert exported and {row["tenant"] for row in exported} == {"talentco"}
    browser.find_element(By.ID, "logout").click()
    _wait(lambda: "/login" in browser.current_url, "signing out")
    browser.get(site["url"] + "/billing")
    assert "/login" in browser.current_url


@pytest.fixture(scope="module", autouse=True)
def _fresh_screenshots() -> None:
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
