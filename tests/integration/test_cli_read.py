"""The read commands against a running worker (issue 11): balance, ledger, invoices, payments,
usage and status print tables, and with --json the API's JSON; a stopped worker is a clear
error with exit 1."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import meterline
from meterline.cli import app
from meterline.client import MeterlineProducer, UsageEvent
from meterline.embedded.stack import EmbeddedStack
from meterline.settings import get_settings
from streams import topics

pytestmark = pytest.mark.integration

CATALOG = (Path(meterline.__file__).parent / "data" / "catalog.json").resolve()
HOUR = 3_600_000
DAY = 86_400_000


def _cli(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> tuple[int, str]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def _json(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], *args: str) -> Any:
    code, output = _cli(monkeypatch, env, *args, "--json")
    assert code == 0, output
    return json.loads(output)


def test_read_commands_against_a_running_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    now = int(time.time() * 1000)
    anchor = now // HOUR * HOUR - HOUR
    with EmbeddedStack(tmp_path / "stack", partitions=2) as stack:
        worker = stack.start_worker(METERLINE_CATALOG_FILE=str(CATALOG))
        env = {
            "METERLINE_WEB_PORT": str(worker.port),
            "METERLINE_BROKER": stack.broker.bootstrap,
        }
        with MeterlineProducer(stack.broker.bootstrap, batch_size=10) as producer:
            for i in range(5):
                producer.send(
                    UsageEvent(
                        event_id=f"r{i}",
                        customer_id="acme",
                        meter="api_calls",
                        value=Decimal(1),
                        timestamp=anchor + i,
                    )
                )
            upsert = {
                "type": "upsert",
                "customer_id": "acme",
                "at": anchor - 1,
                "plan_id": "lora-pro",
                "billing_anchor": anchor - DAY,
                "tz": "UTC",
            }
            grant = {
                "type": "grant",
                "customer_id": "acme",
                "at": anchor - 1,
                "grant_id": "welcome",
                "amount": "10",
                "priority": 1,
                "category": "paid",
            }
            for n, command in enumerate((upsert, grant)):
                producer.send_value(topics.ACCOUNTS, "acme", json.dumps(command).encode(), f"c{n}")

        deadline = time.monotonic() + 60
        ledger: dict[str, Any] = {}
        while time.monotonic() < deadline:
            ledger = _json(monkeypatch, env, "ledger", "acme")
            usage = _json(monkeypatch, env, "usage", "acme", "--window", "day")
            kinds = {dict(zip(ledger["columns"], r, strict=True))["kind"] for r in ledger["rows"]}
            if "grant" in kinds and usage["rows"]:
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"ledger/usage not visible in time: {ledger}")

        # --json is the API's JSON: exact decimals as strings.
        balance = _json(monkeypatch, env, "balance", "acme")
        assert balance["customer_id"] == "acme"
        Decimal(balance["balance"])
        grants = _json(monkeypatch, env, "ledger", "acme", "--kind", "grant")
        rows = [dict(zip(grants["columns"], r, strict=True)) for r in grants["rows"]]
        assert [(r["grant_id"], r["amount"]) for r in rows if r["grant_id"] == "welcome"] == [
            ("welcome", "10")
        ]
        usage_cols = usage["columns"]
        day = [dict(zip(usage_cols, r, strict=True)) for r in usage["rows"]]
        assert sum(int(r["events"]) for r in day if r["meter"] == "api_calls") == 5
        assert "invoices" in _json(monkeypatch, env, "invoices", "acme")
        assert "payment_id" in _json(monkeypatch, env, "payments", "acme")["columns"]

        # Tables for people.
        code, out = _cli(monkeypatch, env, "balance", "acme")
        assert code == 0 and "acme — balance" in out and "balance" in out
        code, out = _cli(monkeypatch, env, "ledger", "acme")
        assert code == 0 and "credit ledger" in out and "welcome" in out
        code, out = _cli(monkeypatch, env, "invoices", "acme")
        assert code == 0 and "acme — invoices" in out  # none yet: said so
        code, out = _cli(monkeypatch, env, "payments", "acme")
        assert code == 0 and "acme — payments: none" in out
        code, out = _cli(monkeypatch, env, "usage", "acme")
        assert code == 0 and "api_calls" in out
        code, out = _cli(monkeypatch, env, "balance", "nobody")
        assert code == 1 and "404" in out and "no balance recorded" in out

        # status: health, lag per partition of the worker's group, dead letters.
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            status = _json(monkeypatch, env, "status")
            usage_lag = [r for r in status["lag"] if r["topic"] == topics.USAGE]
            if usage_lag and all(r["lag"] == 0 for r in usage_lag):
                break
            time.sleep(0.5)
        assert status["worker"]["ready"] is True
        assert status["problems"] == []
        assert {r["partition"] for r in status["lag"] if r["topic"] == topics.USAGE} <= {0, 1}
        assert sum(r["end"] for r in status["lag"] if r["topic"] == topics.USAGE) == 1
        assert status["dlq_rows"] == 0
        code, out = _cli(monkeypatch, env, "status")
        assert code == 0 and "ready" in out and "consumer lag" in out and "dead letters" in out

    # The worker is gone: a clear error, not a traceback.
    code, out = _cli(monkeypatch, env, "balance", "acme")
    assert code == 1 and "no Meterline worker answers" in " ".join(out.split())
    code, out = _cli(monkeypatch, env, "status", "--json")
    assert code == 1
    assert json.loads(out)["worker"] is None
