"""`meterline produce` counts what the broker acknowledged, not what it queued (issue 11): a
record librdkafka could not deliver is reported by its event id, never as published. Real
librdkafka against a closed loopback port; no broker is needed to be refused."""

from __future__ import annotations

import io
import json
import time

import pytest
from typer.testing import CliRunner

from meterline.cli import app
from meterline.client import MeterlineProducer
from meterline.client.lines import BadLine, produce_lines
from meterline.embedded.tansu import free_port
from meterline.settings import Settings, get_settings


def _lines(n: int) -> str:
    return "".join(
        json.dumps(
            {
                "event_id": f"e{i}",
                "customer_id": "c1",
                "meter": "api_calls",
                "value": "1",
                "timestamp": 1767225600000,
                "dimensions": {},
            }
        )
        + "\n"
        for i in range(n)
    )


def _dead_client(**kwargs: object) -> MeterlineProducer:
    return MeterlineProducer(
        f"127.0.0.1:{free_port()}",
        settings=Settings(),
        delivery_timeout=0.5,
        check_broker=False,
        config={"log_level": 0},
        **kwargs,  # type: ignore[arg-type]
    )


def test_undelivered_lines_are_reported_with_their_event_ids() -> None:
    client = _dead_client()
    queued = produce_lines(client, "meterline.usage", io.BytesIO(_lines(3).encode()))
    report = client.flush(10, raise_on_failure=False)
    assert queued == report.sent == 3
    assert report.acknowledged == 0 and not report.ok
    assert sorted(report.undelivered_ids) == ["e0", "e1", "e2"]


def test_other_topics_are_named_by_line() -> None:
    client = _dead_client()
    lines = b'{"type": "grant", "customer_id": "c1"}\n\n{"type": "void", "customer_id": "c2"}\n'
    produce_lines(client, "meterline.accounts", io.BytesIO(lines))
    report = client.flush(10, raise_on_failure=False)
    assert sorted(report.undelivered_ids) == ["line 1", "line 3"]


def test_a_bad_line_stops_at_its_number() -> None:
    client = _dead_client()
    data = (_lines(2) + '{"event_id": "x", "customer_id": "c1"}\n').encode()
    with pytest.raises(BadLine, match=r"line 3: .*missing field 'meter'"):
        produce_lines(client, "meterline.usage", io.BytesIO(data))
    assert client.flush(10, raise_on_failure=False).sent == 2


def _invoke(args: list[str], stdin: str, broker: str | None, monkeypatch) -> tuple[int, str]:
    if broker is None:
        monkeypatch.delenv("METERLINE_BROKER", raising=False)
    else:
        monkeypatch.setenv("METERLINE_BROKER", broker)
    monkeypatch.chdir("/")  # no project .env naming a broker
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, args, input=stdin)
    finally:
        get_settings.cache_clear()
    return result.exit_code, " ".join(result.output.split())  # rich wraps long lines


def test_produce_to_an_unreachable_broker_fails_fast_naming_the_count(monkeypatch) -> None:
    started = time.monotonic()
    code, output = _invoke(
        ["produce", "meterline.usage", "-"], _lines(3), f"127.0.0.1:{free_port()}", monkeypatch
    )
    assert code == 1
    assert time.monotonic() - started < 15
    assert "nothing was published: 3 records NOT acknowledged" in output
    assert "published 3" not in output
    assert "METERLINE_BROKER is not set" not in output


def test_produce_warns_when_the_broker_is_the_default(monkeypatch) -> None:
    code, output = _invoke(["produce", "meterline.usage", "-"], _lines(1), None, monkeypatch)
    assert "warning: METERLINE_BROKER is not set; using the default 127.0.0.1:9092" in output
    # Nothing listens on 9092 here; if something does, it must have acknowledged the record.
    assert code == 1 or "published 1 records" in output
