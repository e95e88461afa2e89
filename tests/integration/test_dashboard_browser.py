"""The dashboard in a real browser (Debian's Chromium through Playwright) against a real worker
(Tansu + chDB) that requires API keys: a customer's usage, tokens and an account with a grant
are published, the page is loaded and asks for a key, refuses an unknown key (401) and another
customer's data for a customer key (403) with a clear message, then draws the customer's uPlot
charts with the data the API answers (read back through the page's window.meterline hook),
for the customer key (customer typed in) and for an admin key (customer picker). Every data
request carries the key as a Bearer header; the invoice preview shows the amount due."""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, sync_playwright

from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics
from streams.producer import TOKEN_EVENT, USAGE_EVENT, make_producer, send
from tests.browser import LAUNCH_ARGS, chromium_path

pytestmark = pytest.mark.integration

CUSTOMER = "dash-a"
MINUTE = 60_000
DAY = 86_400_000
ENDPOINTS = re.compile(r"/(customers|usage|tokens|balance|ledger|invoices|payments|alerts)\b")
STALE = re.compile(r"/(usage|tokens|balance|ledger|invoices|payments|alerts)/someone-else\b")
ADMIN_KEY = "ml_dashboard-test-admin"
CUSTOMER_KEY = "ml_dashboard-test-customer"


def keys_setting() -> str:
    """METERLINE_API_KEYS: digests only, one entry per key (meterline/api/keys.py)."""

    def entry(key: str, scope: str) -> str:
        return f"sha256:{hashlib.sha256(key.encode()).hexdigest()} {scope}"

    return f"{entry(ADMIN_KEY, 'admin')},{entry(CUSTOMER_KEY, 'customer:' + CUSTOMER)}"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def rows(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """check() until it returns something truthy without raising; its last error otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
            error: Exception = AssertionError(f"{what}: not yet")
        except (AssertionError, KeyError, IndexError, TypeError, httpx.HTTPError) as e:
            error = e
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s") from error
        time.sleep(0.4)


def publish(worker: WorkerProcess, stack: EmbeddedStack, now: int) -> None:
    codec = Codec(registry_from_settings(""))
    producer = make_producer(stack.broker.bootstrap)
    # The account first, so the usage after it is billed against the grants.
    for command in (
        {
            "type": "upsert",
            "customer_id": CUSTOMER,
            "at": now - 40 * MINUTE,
            "plan_id": "lora-pro",
            "billing_anchor": now - DAY,
            "tz": "UTC",
        },
        {
            "type": "grant",
            "customer_id": CUSTOMER,
            "at": now - 40 * MINUTE,
            "grant_id": "welcome",
            "amount": "10",
            "priority": 1,
            "category": "paid",
        },
    ):
        send(producer, topics.ACCOUNTS, CUSTOMER, json.dumps(command).encode())
    assert producer.flush(30) == 0
    with admin_client(worker) as api:

        def granted() -> bool:
            return "welcome" in {r["grant_id"] for r in rows(api.get(f"/ledger/{CUSTOMER}"))}

        eventually(granted, 30, "the grant stored")
    usage = [
        ("api_calls", "1", 20, {}),
        ("api_calls", "1", 20, {}),
        ("api_calls", "1", 10, {}),
        ("image_generations", "2", 15, {"model": "sd"}),
        ("image_generations", "3", 15, {"model": "flux"}),
        ("image_generations", "5", 5, {"model": "sd"}),
    ]
    for n, (meter, value, ago, dims) in enumerate(usage):
        event = {
            "event_id": f"u{n}",
            "customer_id": CUSTOMER,
            "meter": meter,
            "value": Decimal(value),
            "timestamp": now - ago * MINUTE,
            "dimensions": dims,
        }
        send(producer, topics.USAGE, CUSTOMER, codec.encode(USAGE_EVENT, event))
    for n, (model, ago, i, o, c) in enumerate(
        [("gpt-4o", 12, 1_000_000, 100_000, 0), ("claude-sonnet", 8, 200_000, 10_000, 100_000)]
    ):
        event = {
            "event_id": f"t{n}",
            "customer_id": CUSTOMER,
            "model": model,
            "provider": "test",
            "input_tokens": i,
            "output_tokens": o,
            "cached_input_tokens": c,
            "timestamp": now - ago * MINUTE,
            "dimensions": {},
        }
        send(producer, topics.TOKENS, CUSTOMER, codec.encode(TOKEN_EVENT, event))
    assert producer.flush(30) == 0


def group_of(row: dict[str, Any]) -> str:
    """The page's series label for a usage row: its dimensions, or "all"."""
    return ", ".join(f"{k}={v}" for k, v in sorted(row["dimensions"].items())) or "all"


def admin_client(worker: WorkerProcess) -> httpx.Client:
    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.Client(base_url=worker.url, timeout=10, headers=headers)


def check_usage(snap: dict, usage: list[dict[str, Any]]) -> bool:
    by_meter: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in usage:
        by_meter[r["meter"]].append(r)
    assert set(by_meter) == {"api_calls", "image_generations"}
    for meter, meter_rows in by_meter.items():
        chart = snap[f"usage:{meter}"]
        assert chart["drawn"] and chart["x"]
        assert all(len(ys) == len(chart["x"]) for ys in chart["plotted"])
        assert set(chart["labels"]) == {group_of(r) for r in meter_rows}
        for r in meter_rows:
            series = chart["labels"].index(group_of(r))
            point = chart["x"].index(ms(r["window_start"]))
            assert chart["raw"][series][point] == r["value"], (meter, r)
        # Nothing drawn that the API did not answer.
        assert sum(v is not None for raw in chart["raw"] for v in raw) == len(meter_rows)
    return True


def check_tokens(snap: dict, tokens: list[dict[str, Any]]) -> bool:
    cost: dict[str, Decimal] = defaultdict(Decimal)
    billed: dict[str, Decimal] = defaultdict(Decimal)
    for r in tokens:
        cost[r["model"]] += Decimal(r["cost"])
        billed[r["model"]] += Decimal(r["billed"])
    chart = snap["tokens"]
    assert chart["categories"] == sorted(cost) == ["claude-sonnet", "gpt-4o"]
    assert chart["labels"] == ["cost", "billed (with markup)"]
    assert [Decimal(v) for v in chart["raw"][0]] == [cost[m] for m in sorted(cost)]
    assert [Decimal(v) for v in chart["raw"][1]] == [billed[m] for m in sorted(cost)]
    assert chart["plotted"][1] == [float(billed[m]) for m in sorted(cost)]
    return True


def check_burn(snap: dict, ledger: list[dict[str, Any]]) -> bool:
    chart = snap["burn"]
    newest = ledger[0]  # the API lists newest first
    assert chart["labels"] == ["balance", "grants", "top-ups"]
    assert chart["raw"][0][-1] == newest["balance_after"]
    assert len(chart["x"]) >= len({r["at"] for r in ledger})
    grant_times = {ms(r["at"]) for r in ledger if r["kind"] == "grant"}
    assert {m["t"] for m in chart["markers"] if m["kind"] == "grant"} == grant_times
    marked = [t for t, v in zip(chart["x"], chart["raw"][1], strict=True) if v is not None]
    assert set(marked) == grant_times and any("+10 welcome" in v for v in chart["raw"][1] if v)
    return True


# About a minute on a busy 2-core machine; a hang (a browser that never answers) fails here.
@pytest.mark.timeout(240)
def test_dashboard_in_chromium(tmp_path: Path) -> None:
    executable = chromium_path()
    now = int(time.time() * 1000)
    with EmbeddedStack(tmp_path / "stack", partitions=2) as stack:
        worker = stack.start_worker(
            METERLINE_CATALOG_FILE=str(DEFAULT_CATALOG_PATH), METERLINE_API_KEYS=keys_setting()
        )
        check_static_files(worker.url)
        publish(worker, stack, now)
        with admin_client(worker) as api:
            in_browser(api, worker.url, executable, tmp_path)


def check_static_files(url: str) -> None:
    """The page and its files need no key (they hold no data) and come with their types;
    only the package's own files are served."""
    with httpx.Client(base_url=url, timeout=10) as open_client:
        for path, content_type in (
            ("/", "text/html"),
            ("/static/dashboard.js", "text/javascript"),
            ("/static/dashboard.css", "text/css"),
            ("/static/vendor/uplot/uPlot.iife.min.js", "text/javascript"),
            ("/static/vendor/uplot/uPlot.min.css", "text/css"),
            ("/static/vendor/uplot/LICENSE", "text/plain"),
        ):
            r = open_client.get(path)
            assert r.status_code == 200, (path, r.text)
            assert r.headers["content-type"].split(";")[0] == content_type, path
        assert "MIT License" in open_client.get("/static/vendor/uplot/LICENSE").text
        for path in ("/static/dashboard.html", "/static/..%2F..%2Fsettings.py", "/static/nope.js"):
            assert open_client.get(path).status_code == 404, path
        assert open_client.get("/customers").status_code == 401


def in_browser(api: httpx.Client, url: str, executable: str, tmp_path: Path) -> None:
    """The page against the API's own answers; the browser is closed however this ends."""

    def api_state() -> dict[str, Any]:
        usage = rows(api.get(f"/usage/{CUSTOMER}", params={"window": "minute"}))
        tokens = rows(api.get(f"/tokens/{CUSTOMER}", params={"window": "minute"}))
        ledger = rows(api.get(f"/ledger/{CUSTOMER}", params={"limit": 1000}))
        preview = api.get(f"/invoices/{CUSTOMER}/preview").json()
        assert sum(r["events"] for r in usage) == 6 and len(tokens) == 2
        assert "debit" in {r["kind"] for r in ledger}
        return {"usage": usage, "tokens": tokens, "ledger": ledger, "preview": preview}

    eventually(api_state, 40, "usage, tokens and debits stored")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            sent: list[tuple[str, str | None]] = []
            page.on(
                "request",
                lambda r: (
                    sent.append((r.url, r.headers.get("authorization")))
                    if ENDPOINTS.search(r.url)
                    else None
                ),
            )
            page.goto(url + "/", wait_until="load")
            ask_and_refuse(page)

            # A customer key: no listing (admin only), the customer is typed in. The refusals
            # for the customer it replaces are held until it is typed: arriving late, they must
            # not block the page (CI once saw them swallow the new customer's refresh).
            held: list[Route] = []
            page.route(STALE, lambda route: held.append(route))
            enter_key(page, CUSTOMER_KEY)
            page.wait_for_function(
                "document.getElementById('customer-note').textContent.includes('scoped')"
            )
            # Route handlers run only while Playwright is called, hence its own wait.
            eventually(lambda: page.wait_for_timeout(100) or held, 15, "the stale requests held")
            choose_customer(page, CUSTOMER)
            for route in held:
                route.continue_()
            page.unroute(STALE)
            eventually(lambda: check_usage(snapshot(page), api_state()["usage"]), 30, "usage drawn")

            # An admin key, remembered: the picker lists the customers; every chart and table.
            enter_key(page, ADMIN_KEY, remember=True)

            def drawn() -> bool:
                # Fetched again each round: the live data may still move (debits land).
                want = api_state()
                snap = snapshot(page)
                p = want["preview"]
                due = page.text_content("#preview-due")
                assert due == f"amount due {p['amount_due']} {p['currency']}", due
                assert page.locator(f"#customer-list option[value='{CUSTOMER}']").count() == 1
                return (
                    check_usage(snap, want["usage"])
                    and check_tokens(snap, want["tokens"])
                    and check_burn(snap, want["ledger"])
                )

            eventually(drawn, 30, "charts drawn with the customer's data")
            # The key the user gave, on every data request from then on.
            assert sent[0] == (f"{url}/customers?limit=1000", None)
            keyed = sent[next(i for i, (_, auth) in enumerate(sent) if auth) :]
            assert {auth for _, auth in keyed} == {
                f"Bearer {k}" for k in ("ml_not-a-key", CUSTOMER_KEY, ADMIN_KEY)
            }
            usage_keys = {auth for u, auth in keyed if f"/usage/{CUSTOMER}?" in u}
            assert usage_keys == {f"Bearer {CUSTOMER_KEY}", f"Bearer {ADMIN_KEY}"}
            assert sent[-1][1] == f"Bearer {ADMIN_KEY}"
            preview = api.get(f"/invoices/{CUSTOMER}/preview").json()
            due_row = page.locator("#preview tr.sum", has_text="amount_due")
            assert preview["amount_due"] in due_row.inner_text()
            balance = api.get(f"/balance/{CUSTOMER}").json()["balance"]
            assert page.locator("#balance-value").inner_text() == balance
            assert page.locator("#tokens-table tr[data-model='gpt-4o']").count() == 1
            # Remembered: in localStorage, not this tab's sessionStorage; never in the URL.
            assert page.evaluate("localStorage.getItem('meterline.apiKey')") == ADMIN_KEY
            assert page.evaluate("sessionStorage.getItem('meterline.apiKey')") is None
            assert "ml_" not in page.url
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"dashboard screenshot: {shot}")
            assert errors == []
        finally:
            browser.close()


def snapshot(page: Page) -> dict[str, Any]:
    return page.evaluate("window.meterline.snapshot()")


def enter_key(page: Page, key: str, remember: bool = False) -> None:
    if page.is_hidden("#key-panel"):
        page.click("#key-button")
    page.fill("#key-input", key)
    page.set_checked("#key-remember", remember)
    page.press("#key-input", "Enter")


def choose_customer(page: Page, customer: str) -> None:
    page.fill("#customer", customer)
    page.press("#customer", "Enter")


def wait_banner(page: Page, text: str) -> str:
    page.wait_for_function(
        "t => !document.getElementById('banner').hidden"
        " && document.getElementById('banner').textContent.includes(t)",
        arg=text,
        timeout=15_000,
    )
    assert page.is_visible("#key-panel") and page.is_visible("#key-input")
    return page.inner_text("#banner")


def ask_and_refuse(page: Page) -> None:
    """No key: the page asks for one. An unknown key: refused, asked again. A customer key
    reading another customer: forbidden, asked again."""
    assert "requires an API key (401" in wait_banner(page, "401")
    enter_key(page, "ml_not-a-key")
    assert "refused this API key (401: " in wait_banner(page, "refused")
    # Asked per tab by default.
    assert page.evaluate("sessionStorage.getItem('meterline.apiKey')") == "ml_not-a-key"
    assert page.evaluate("localStorage.getItem('meterline.apiKey')") is None
    enter_key(page, CUSTOMER_KEY)
    choose_customer(page, "someone-else")
    banner = wait_banner(page, "403")
    assert "may not read /usage/someone-else (403: " in banner
