"""The worker's HTTP API against a real worker (Tansu + chDB): usage with window, meter, time
range, time zone and dimension filters; token usage priced from the catalog; customers; the
dashboard page; metrics; 400 on bad parameters; 404 from billing endpoints without their
tables."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from faust.web.exceptions import ValidationError

import meterline
from meterline.api import parse_instant, parse_tz
from meterline.embedded.stack import EmbeddedStack
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from streams import topics
from streams.producer import TOKEN_EVENT, USAGE_EVENT, make_producer, send

pytestmark = pytest.mark.integration

CATALOG = (Path(meterline.__file__).parent / "data" / "catalog.json").resolve()
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


def iso(ms: int) -> str:
    """As the API prints window_start: ISO-8601 UTC with a Z."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).replace(tzinfo=None).isoformat() + "Z"


def usage(event_id: str, customer: str, meter: str, value: str, ts: int, **dims: str) -> dict:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "meter": meter,
        "value": Decimal(value),
        "timestamp": ts,
        "dimensions": dims,
    }


def tokens(event_id: str, customer: str, model: str, ts: int, i: int, o: int, c: int) -> dict:
    return {
        "event_id": event_id,
        "customer_id": customer,
        "model": model,
        "provider": "test",
        "input_tokens": i,
        "output_tokens": o,
        "cached_input_tokens": c,
        "timestamp": ts,
        "dimensions": {},
    }


def rows(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    body = response.json()
    return [dict(zip(body["columns"], row, strict=True)) for row in body["rows"]]


def test_parameter_parsing() -> None:
    berlin = parse_tz("Europe/Berlin")[1]
    assert parse_instant("1700000000123", berlin, "from") == 1_700_000_000_123
    assert parse_instant("2025-01-01T00:00:00Z", berlin, "from") == 1_735_689_600_000
    # A naive time is read in the request's zone: Berlin is UTC+1 in January.
    assert parse_instant("2025-01-01T00:00:00", berlin, "from") == 1_735_689_600_000 - HOUR
    assert parse_instant("2025-01-01", berlin, "from") == 1_735_689_600_000 - HOUR
    for bad in ("yesterday", "2025-13-01", "99999999999999999"):
        with pytest.raises(ValidationError):
            parse_instant(bad, berlin, "from")
    for bad in ("Mars/Olympus", "UTC'; DROP TABLE dlq; --", "../etc/passwd", "/etc/localtime"):
        with pytest.raises(ValidationError):
            parse_tz(bad)


def test_http_api(tmp_path: Path) -> None:
    now = int(time.time() * 1000)
    # The previous whole UTC hour: complete, and inside the worker's accepted event-time range.
    anchor = now // HOUR * HOUR - HOUR
    midnight = now // DAY * DAY
    usage_events = [
        # api_calls is a count meter without group-by: the region dimension is not kept.
        usage("a1", "acme", "api_calls", "1", anchor + MINUTE, region="eu"),
        usage("a2", "acme", "api_calls", "1", anchor + MINUTE + 10_000, region="us"),
        usage("a3", "acme", "api_calls", "1", anchor + 2 * MINUTE, region="eu"),
        # image_generations sums values, grouped by model.
        usage("i1", "acme", "image_generations", "2", anchor + 5 * MINUTE, model="sd"),
        usage("i2", "acme", "image_generations", "3", anchor + 5 * MINUTE, model="flux"),
        usage("i3", "acme", "image_generations", "5", anchor + 6 * MINUTE, model="sd"),
        # One UTC day, but two days on Berlin's clock (UTC+1 or +2): 21:30 and 23:30 UTC.
        usage("g1", "globex", "api_calls", "1", midnight - 150 * MINUTE),
        usage("g2", "globex", "api_calls", "1", midnight - 30 * MINUTE),
    ]
    token_events = [
        tokens("t1", "acme", "gpt-4o", anchor + 3 * MINUTE, 1_000_000, 100_000, 0),
        tokens("t2", "acme", "claude-sonnet", anchor + 4 * MINUTE, 200_000, 10_000, 100_000),
    ]

    with EmbeddedStack(tmp_path / "stack", partitions=2) as stack:
        worker = stack.start_worker(METERLINE_CATALOG_FILE=str(CATALOG))
        codec = Codec(registry_from_settings(""))
        producer = make_producer(stack.broker.bootstrap)
        for event in usage_events:
            send(producer, topics.USAGE, event["customer_id"], codec.encode(USAGE_EVENT, event))
        for event in token_events:
            send(producer, topics.TOKENS, event["customer_id"], codec.encode(TOKEN_EVENT, event))
        # Commands go as JSON, which every topic accepts.
        for command in (
            {
                "type": "upsert",
                "customer_id": "acme",
                "at": anchor,
                "plan_id": "lora-pro",
                "billing_anchor": anchor - DAY,
                "tz": "UTC",
            },
            {
                "type": "grant",
                "customer_id": "acme",
                "at": anchor,
                "grant_id": "welcome",
                "amount": "10",
                "priority": 1,
                "category": "paid",
            },
        ):
            send(producer, topics.ACCOUNTS, "acme", json.dumps(command).encode())
        assert producer.flush(30) == 0

        with httpx.Client(base_url=worker.url, timeout=30.0) as api:

            def get(path: str, **params: Any) -> httpx.Response:
                return api.get(path, params=params)

            deadline = time.monotonic() + 40
            customers: dict[str, dict[str, Any]] = {}
            while time.monotonic() < deadline:
                customers = {c["customer_id"]: c for c in rows(get("/customers"))}
                counts = {
                    k: (int(c["events"]), int(c["token_events"])) for k, c in customers.items()
                }
                if counts == {"acme": (6, 2), "globex": (2, 0)}:
                    break
                time.sleep(0.3)
            else:
                pytest.fail(f"events not visible in time: {customers}")

            # /customers: totals per customer.
            acme = customers["acme"]
            assert acme["meters"] == 2
            assert acme["meter_codes"] == ["api_calls", "image_generations"]
            assert acme["models"] == ["claude-sonnet", "gpt-4o"]
            assert customers["globex"]["meter_codes"] == ["api_calls"]
            assert [c["customer_id"] for c in rows(get("/customers", prefix="glo"))] == ["globex"]

            # /usage: window and meter.
            body = get("/usage/acme", window="minute", meter="api_calls").json()
            assert body["columns"][:7] == [
                "customer_id",
                "meter",
                "dimensions",
                "window",
                "window_start",
                "value",
                "events",
            ]
            assert body["window"] == "minute" and body["tz"] == "UTC"
            assert body["truncated"] is False
            minute = rows(get("/usage/acme", window="minute", meter="api_calls"))
            assert [(r["window_start"], r["value"], r["events"]) for r in minute] == [
                (iso(anchor + MINUTE), "2", 2),
                (iso(anchor + 2 * MINUTE), "1", 1),
            ]
            assert all(r["dimensions"] == {} for r in minute)

            # Default window is the hour; an empty meter (as `meterline usage` sends) is no filter.
            hourly = rows(get("/usage/acme", meter=""))
            assert {(r["meter"], r["dimensions"].get("model"), r["value"]) for r in hourly} == {
                ("api_calls", None, "3"),
                ("image_generations", "sd", "7"),
                ("image_generations", "flux", "3"),
            }
            assert {r["window_start"] for r in hourly} == {iso(anchor)}
            both = rows(get("/usage/acme", window="hour", meter=["api_calls", "image_generations"]))
            assert len(both) == 3

            # Dimension filters: one key; repeated values of a key are alternatives.
            sd = rows(get("/usage/acme", window="day", **{"dim.model": "sd"}))
            assert [(r["meter"], r["value"], r["events"]) for r in sd] == [
                ("image_generations", "7", 2)
            ]
            either = rows(get("/usage/acme", window="day", **{"dim.model": ["sd", "flux"]}))
            assert sorted(r["value"] for r in either) == ["3", "7"]
            # An empty answer keeps its columns (chDB reports none for an empty result).
            empty = get("/usage/acme", window="day", **{"dim.model": "dalle"}).json()
            assert empty["rows"] == [] and empty["columns"] == body["columns"]

            # Time range [from, to): ISO-8601 and epoch ms.
            ranged = rows(
                get(
                    "/usage/acme",
                    window="minute",
                    meter="api_calls",
                    **{"from": iso(anchor + 2 * MINUTE), "to": str(anchor + 3 * MINUTE)},
                )
            )
            assert [r["window_start"] for r in ranged] == [iso(anchor + 2 * MINUTE)]

            # Time zones: days follow Berlin's clock; hours follow Kolkata's half-hour offset.
            utc_days = rows(get("/usage/globex", window="day"))
            assert [(r["window_start"], r["value"]) for r in utc_days] == [
                (iso(midnight - DAY), "2")
            ]
            berlin = ZoneInfo("Europe/Berlin")
            expected: dict[str, int] = {}
            for event in usage_events[6:]:
                local = datetime.fromtimestamp(event["timestamp"] / 1000, tz=berlin)
                start = local.replace(hour=0, minute=0, second=0, microsecond=0)
                key = iso(int(start.timestamp() * 1000))
                expected[key] = expected.get(key, 0) + 1
            berlin_days = rows(get("/usage/globex", window="day", tz="Europe/Berlin"))
            assert {r["window_start"]: r["events"] for r in berlin_days} == expected
            assert len(berlin_days) == 2
            kolkata = rows(get("/usage/acme", window="hour", meter="api_calls", tz="Asia/Kolkata"))
            assert [(r["window_start"], r["value"]) for r in kolkata] == [
                (iso(anchor - 30 * MINUTE), "3")
            ]

            # /tokens: priced with the catalog's price book and 20% markup.
            day_tokens = {r["model"]: r for r in rows(get("/tokens/acme", window="day"))}
            gpt = day_tokens["gpt-4o"]
            assert (gpt["input_tokens"], gpt["output_tokens"], gpt["events"]) == (
                1_000_000,
                100_000,
                1,
            )
            # 1M × 2.50/M + 100k × 10.00/M = 3.50; billed × 1.2.
            assert Decimal(gpt["cost"]) == Decimal("3.5")
            assert Decimal(gpt["billed"]) == Decimal("4.2")
            claude = day_tokens["claude-sonnet"]
            # 200k input of which 100k cached (TokenEvent semantics):
            # 100k × 3.00/M + 100k × 0.30/M + 10k × 15.00/M = 0.48.
            assert Decimal(claude["cost"]) == Decimal("0.48")
            assert Decimal(claude["billed"]) == Decimal("0.576")
            only = rows(get("/tokens/acme", window="minute", model="gpt-4o"))
            assert [(r["model"], r["window_start"]) for r in only] == [
                ("gpt-4o", iso(anchor + 3 * MINUTE))
            ]
            tsv = get("/tokens/acme", window="day", format="tsv")
            assert tsv.status_code == 200 and tsv.text.splitlines()[0].startswith("customer_id\t")

            # Bad parameters: 400 with a JSON error, never a query.
            bad = [
                ("/usage/acme", {"window": "week"}),
                ("/usage/acme", {"tz": "Mars/Olympus"}),
                ("/usage/acme", {"tz": "UTC') UNION ALL SELECT 1 --"}),
                ("/usage/acme", {"from": "yesterday"}),
                ("/usage/acme", {"from": str(anchor), "to": str(anchor)}),
                ("/usage/acme", {"limit": "0"}),
                ("/usage/acme", {"meters": "api_calls"}),
                ("/usage/acme", {"dim.": "x"}),
                ("/usage/acme", {"format": "xml"}),
                ("/tokens/acme", {"dim.model": "x"}),
                ("/tokens/acme", {"window": "year"}),
                ("/customers", {"limit": "many"}),
                ("/ledger/acme", {"from": "soon"}),
            ]
            for path, params in bad:
                r = get(path, **params)
                assert r.status_code == 400, (path, params, r.text)
                assert r.json()["error"], (path, params)

            # Billing: an account on the lora-pro plan (50 recurring credits) plus a paid grant.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                balance = get("/balance/acme")
                if balance.status_code == 200:
                    break
                assert balance.status_code == 404 and "no balance" in balance.json()["error"]
                time.sleep(0.3)
            else:
                pytest.fail("no balance for acme")
            assert set(balance.json()) >= {"customer_id", "balance", "at"}
            Decimal(balance.json()["balance"])
            ledger = rows(get("/ledger/acme"))
            assert {"grant"} <= {r["kind"] for r in ledger}
            assert "welcome" in {r["grant_id"] for r in ledger}
            assert ledger == sorted(ledger, key=lambda r: (r["at"], r["seq"]), reverse=True)
            grants = rows(get("/ledger/acme", kind="grant"))
            assert grants and all(r["kind"] == "grant" for r in grants)
            assert rows(get("/ledger/acme", grant_id="welcome"))[0]["amount"] == "10"
            assert rows(get("/ledger/globex")) == []
            invoices = get("/invoices/acme").json()
            assert {"columns", "rows", "invoices", "truncated"} <= invoices.keys()
            payments = get("/payments/acme").json()
            assert payments["rows"] == [] and "payment_id" in payments["columns"]
            assert get("/alerts/acme").status_code == 200
            assert get("/balance/globex").status_code == 404

            # Without the billing tables (an older store): 404 naming the missing table.
            hidden = ("balances", "credit_ledger", "invoice_lines")
            worker.sql("RENAME " + ", ".join(f"{t} TO {t}_hidden" for t in hidden))
            try:
                for path, table in (
                    ("/balance/acme", "balances"),
                    ("/ledger/acme", "credit_ledger"),
                    ("/invoices/acme", "invoice_lines"),
                ):
                    r = get(path)
                    assert r.status_code == 404, (path, r.text)
                    assert r.json()["table"] == table
                    assert "does not exist" in r.json()["error"]
            finally:
                worker.sql("RENAME " + ", ".join(f"{t}_hidden TO {t}" for t in hidden))

            # The dashboard, metrics, health, and /sql as before.
            page = get("/")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert "<svg" in page.text and "/usage/" in page.text
            assert "http://" not in page.text and "https://" not in page.text
            metrics = get("/metrics").text
            assert "meterline_usage_counted" in metrics and "meterline_dlq_sent" in metrics
            health = get("/health").json()
            assert {"status", "ready", "assigned", "usage", "dlq_sent"} <= health.keys()
            assert health["usage"]["counted"] >= 10
            assert worker.sql("SELECT count() FROM usage_events FINAL")["rows"] == [[8]]
            assert worker.sql("SELECT 1 AS one", fmt="tsv") == "one\n1"
            sql_error = api.post("/sql", content="SELECT nope FROM nowhere")
            assert sql_error.status_code == 400 and sql_error.json()["error"]
