"""schemathesis, driven from the checked-in OpenAPI description, against a real worker on the
embedded stack holding some usage, token and billing data, with an admin key: no answer is
a 5xx and every answer matches its documented schema (status, content type, body).

Bounded: 20 examples per operation, positive data only (the examples and fuzzing phases), so
the run takes well under two minutes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

import meterline
from meterline.api.keys import entry_line, new_key
from meterline.api.openapi import document
from meterline.embedded.stack import EmbeddedStack
from streams import topics
from streams.producer import make_producer, send
from tests.integration.test_api_security import seed, wait_for

pytestmark = pytest.mark.integration

CATALOG = (Path(meterline.__file__).parent / "data" / "catalog.json").resolve()
ADMIN = new_key()


def seed_tokens(stack: EmbeddedStack, customer: str, n: int) -> None:
    producer = make_producer(stack.broker.bootstrap)
    now = int(time.time() * 1000)
    for i in range(n):
        event = {
            "event_id": f"tok-{customer}-{i}",
            "customer_id": customer,
            "model": "gpt-4o",
            "provider": "openai",
            "input_tokens": 1000 + i,
            "output_tokens": 100,
            "cached_input_tokens": 0,
            "timestamp": now - 600_000 + i * 1000,
            "dimensions": {},
        }
        send(producer, topics.TOKENS, customer, json.dumps(event).encode())
    assert producer.flush(30) == 0


@pytest.fixture(scope="module")
def worker_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    with EmbeddedStack(tmp / "stack", partitions=2) as stack:
        worker = stack.start_worker(
            METERLINE_CATALOG_FILE=str(CATALOG),
            METERLINE_API_KEYS=entry_line(ADMIN, None),
            METERLINE_API_KEY=ADMIN,
        )
        seed(stack, {"acme": 20, "globex": 5})
        seed_tokens(stack, "acme", 5)
        wait_for(worker, "SELECT count() FROM usage_events FINAL", [[25]])
        wait_for(worker, "SELECT count() FROM token_events FINAL", [[5]])
        wait_for(worker, "SELECT count() > 0 FROM balances", [[1]])
        yield worker.url


# Loaded at import (schemathesis's fixture-based loader breaks on pytest 9: it writes
# request.node._nodeid); the worker's URL, known only once it runs, goes with each call.
schema = schemathesis.openapi.from_dict(document())
schema.config.generation.update(max_examples=20, modes=[schemathesis.GenerationMode.POSITIVE])
schema.config.phases.update(phases=["examples", "fuzzing"])


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_description(case: schemathesis.Case, worker_url: str) -> None:
    case.call_and_validate(
        base_url=worker_url,
        headers={"Authorization": f"Bearer {ADMIN}"},
        checks=[not_a_server_error, response_schema_conformance],
    )
