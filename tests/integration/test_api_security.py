"""The worker's API with keys, on the embedded stack: scopes on real data, POST /sql
read-only within its limits (DROP, INSERT, CREATE, file(), url(), INTO OUTFILE, a
10-billion-row scan, ...) answered 4xx while the worker keeps serving and writing, and a
worker that will not listen beyond loopback without keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import meterline
from meterline.api.keys import entry_line, new_key
from meterline.api.openapi import OPENAPI_FILE
from meterline.embedded.stack import EmbeddedStack, WorkerProcess
from streams import topics
from streams.producer import make_producer, send

pytestmark = pytest.mark.integration

CATALOG = (Path(meterline.__file__).parent / "data" / "catalog.json").resolve()
HOUR = 3_600_000


@dataclass
class Api:
    stack: EmbeddedStack
    worker: WorkerProcess
    admin: str
    acme: str
    tmp: Path

    def client(self, key: str | None = None, header: str = "Authorization") -> httpx.Client:
        headers = {}
        if key is not None:
            headers = {header: f"Bearer {key}" if header == "Authorization" else key}
        return httpx.Client(base_url=self.worker.url, headers=headers, timeout=60.0)


def seed(stack: EmbeddedStack, customers: dict[str, int], start: int = 0) -> None:
    """``n`` api_calls events per customer (JSON), an hour ago, and a Lora account with a
    grant for each, so the billing tables have rows too."""
    producer = make_producer(stack.broker.bootstrap)
    anchor = int(time.time() * 1000) // HOUR * HOUR - HOUR
    for customer, n in customers.items():
        for i in range(start, start + n):
            event = {
                "event_id": f"{customer}-{i}",
                "customer_id": customer,
                "meter": "api_calls",
                "value": "1",
                "timestamp": anchor + i * 1000,
                "dimensions": {"region": "eu"},
            }
            send(producer, topics.USAGE, customer, json.dumps(event).encode())
        if start:
            continue
        for command in (
            {
                "type": "upsert",
                "customer_id": customer,
                "at": anchor,
                "plan_id": "lora-pro",
                "billing_anchor": anchor - 24 * HOUR,
                "tz": "UTC",
            },
            {
                "type": "grant",
                "customer_id": customer,
                "at": anchor,
                "grant_id": "welcome",
                "amount": "10",
                "priority": 1,
                "category": "paid",
            },
        ):
            send(producer, topics.ACCOUNTS, customer, json.dumps(command).encode())
    assert producer.flush(30) == 0


def wait_for(worker: WorkerProcess, sql: str, expected: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = worker.sql(sql)["rows"]
        if got == expected:
            return
        time.sleep(0.3)
    pytest.fail(f"{sql}: {got!r}, expected {expected!r}")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp("api-security")
    admin, acme = new_key(), new_key()
    keys_file = tmp / "keys"
    keys_file.write_text(f"# customer keys\n{entry_line(acme, 'acme')}\n")
    with EmbeddedStack(tmp / "stack", partitions=2) as stack:
        worker = stack.start_worker(
            METERLINE_CATALOG_FILE=str(CATALOG),
            METERLINE_API_KEYS=entry_line(admin, None),  # inline and file together
            METERLINE_API_KEYS_FILE=str(keys_file),
            METERLINE_API_KEY=admin,  # what WorkerProcess.sql sends
            # Small enough to hit cheaply on a shared 2-core machine.
            METERLINE_SQL_MAX_EXECUTION_TIME="1",
            METERLINE_SQL_MAX_MEMORY_USAGE="100000000",
        )
        seed(stack, {"acme": 5, "globex": 3})
        wait_for(
            worker,
            "SELECT customer_id, count() FROM usage_events FINAL GROUP BY customer_id "
            "ORDER BY customer_id",
            [["acme", 5], ["globex", 3]],
        )
        wait_for(worker, "SELECT count() > 0 FROM balances", [[1]])
        yield Api(stack, worker, admin, acme, tmp)


def test_scopes_on_a_real_worker(api: Api) -> None:
    with api.client() as anonymous, api.client(api.acme) as acme, api.client(api.admin) as admin:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/metrics").status_code == 200  # open by default
        served = anonymous.get("/openapi.json")
        assert served.status_code == 200 and served.content == OPENAPI_FILE.read_bytes()
        for path in ("/usage/acme", "/balance/acme", "/customers"):
            r = anonymous.get(path)
            assert r.status_code == 401 and "API key required" in r.json()["error"]
        assert anonymous.post("/sql", content="SELECT 1").status_code == 401

        usage = acme.get("/usage/acme", params={"window": "day"})
        assert usage.status_code == 200
        events = usage.json()["columns"].index("events")
        assert sum(int(row[events]) for row in usage.json()["rows"]) == 5
        for path in ("/balance/acme", "/ledger/acme", "/invoices/acme", "/payments/acme"):
            assert acme.get(path).status_code == 200, path
        for path in ("/usage/globex", "/tokens/globex", "/balance/globex", "/ledger/globex",
                     "/invoices/globex", "/invoices/globex/preview", "/payments/globex",
                     "/alerts/globex", "/customers", "/debug/consumer"):  # fmt: skip
            r = acme.get(path)
            assert r.status_code == 403 and r.json()["error"], path
        assert acme.post("/sql", content="SELECT 1").status_code == 403

        with api.client(api.acme, header="X-Api-Key") as by_header:
            assert by_header.get("/balance/acme").status_code == 200
        customers = admin.get("/customers").json()
        assert {r[0] for r in customers["rows"]} == {"acme", "globex"}
        assert admin.get("/balance/globex").status_code == 200


def still_serving(api: Api, client: httpx.Client) -> None:
    assert client.get("/health").status_code == 200
    r = client.post("/sql", content="SELECT count() FROM usage_events FINAL")
    assert r.status_code == 200 and r.json()["rows"] == [[8]], r.text


REFUSED = [
    # (statement, status, reason, words in the error)
    ("DROP TABLE usage_events", 403, "read_only", "DROP is not allowed"),
    ("INSERT INTO dlq (topic) VALUES ('x')", 403, "read_only", "INSERT is not allowed"),
    ("CREATE TABLE pwned (a UInt8) ENGINE = Memory", 403, "read_only", "CREATE is not allowed"),
    ("TRUNCATE TABLE usage_events", 403, "read_only", "TRUNCATE is not allowed"),
    ("SET readonly = 0", 403, "read_only", "SET is not allowed"),
    ("KILL QUERY WHERE 1", 403, "read_only", "KILL is not allowed"),
    ("SELECT * FROM file('/etc/passwd', 'LineAsString')", 403, "read_only", "file()"),
    ("SELECT file('/etc/passwd')", 403, "read_only", "file()"),
    ("SELECT * FROM url('http://127.0.0.1:1/x', 'CSV', 'a String')", 403, "read_only", "url()"),
    ("SELECT * FROM remote('127.0.0.1:1', system.one)", 403, "read_only", "remote()"),
    ("select * from `s3`('http://127.0.0.1:1/b/k.csv')", 403, "read_only", "s3()"),
    ("SELECT 1 /* x */; DROP TABLE dlq", 400, "sql", "Multi-statements"),
    ("SELECT * FROM usage_events SETTINGS readonly = 0", 403, "read_only", "readonly"),
    ("SELECT 1 SETTINGS max_rows_to_read = 0", 403, "read_only", "readonly mode"),
    ("SELECT count() FROM numbers(10000000000)", 400, "limit", "max_rows_to_read"),
    ("SELECT count() FROM system.numbers", 400, "limit", "exceeded"),  # rows or time
    ("SELECT number FROM numbers(500000)", 400, "limit", "Limit for result"),
    ("SELECT groupArray(number) FROM numbers(50000000)", 400, "limit", "memory limit"),
    ("SELECT nope FROM nowhere", 400, "sql", "nowhere"),
    ("SELEC 1", 400, "sql", "Syntax error"),
]


@pytest.mark.parametrize(("sql", "status", "reason", "words"), REFUSED)
def test_sql_is_read_only_and_bounded(
    api: Api, sql: str, status: int, reason: str, words: str
) -> None:
    with api.client(api.admin) as admin:
        r = admin.post("/sql", content=sql)
        assert r.status_code == status, r.text
        body = r.json()
        assert body["reason"] == reason and words.lower() in body["error"].lower(), body
        assert "root:" not in r.text  # nothing of /etc/passwd came back
        still_serving(api, admin)


def test_a_long_query_hits_the_time_limit(api: Api) -> None:
    # Under max_rows_to_read, but far over one second of work on this machine.
    sql = (
        "SELECT count() FROM numbers(900000000) "
        "WHERE cityHash64(number, number * 3, toString(number)) % 7 = 3"
    )
    with api.client(api.admin) as admin:
        started = time.monotonic()
        r = admin.post("/sql", content=sql)
        assert r.status_code == 400 and r.json()["reason"] == "limit", r.text
        assert r.json()["clickhouse_error"] in ("TIMEOUT_EXCEEDED", "TOO_SLOW")
        assert time.monotonic() - started < 30
        still_serving(api, admin)


def test_into_outfile_writes_nothing(api: Api) -> None:
    target = api.tmp / "out.tsv"
    with api.client(api.admin) as admin:
        r = admin.post("/sql", content=f"SELECT * FROM usage_events INTO OUTFILE '{target}'")
        assert r.status_code == 403 and "INTO OUTFILE" in r.json()["error"]
    assert not target.exists()


def test_no_writes_through_sql_with_keys(api: Api) -> None:
    with api.client(api.admin) as admin:
        r = admin.post("/sql", params={"mode": "write"}, content="DROP TABLE usage_events")
        assert r.status_code == 403 and r.json()["reason"] == "read_only"
        still_serving(api, admin)


def test_the_worker_still_writes_after_all_that(api: Api) -> None:
    # Runs after the attacks above (file order): the pipeline's own inserts still land.
    seed(api.stack, {"acme": 2}, start=100)
    wait_for(api.worker, "SELECT count() FROM usage_events FINAL WHERE customer_id = 'acme'", [[7]])
    with api.client(api.acme) as acme:
        rows = acme.get("/usage/acme", params={"window": "day"}).json()
        assert rows["rows"]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"METERLINE_WEB_HOST": "0.0.0.0"}, "beyond loopback"),
        ({"METERLINE_WEB_HOST": "::"}, "beyond loopback"),
        ({"METERLINE_API_KEYS": "ml_plain_key admin"}, "expected 'sha256:"),
    ],
)
def test_worker_refuses_to_start_exposed_without_keys(
    tmp_path: Path, env: dict[str, str], message: str
) -> None:
    # The check comes before the broker or ClickHouse is touched: nothing runs on port 1.
    clean = {k: v for k, v in os.environ.items() if not k.startswith("METERLINE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "meterline", "worker"],
        env={**clean, "METERLINE_BROKER": "127.0.0.1:1", **env},
        cwd=tmp_path,  # no stray .env
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr
    assert "ml_plain_key" not in proc.stderr  # a key pasted by mistake is not echoed
