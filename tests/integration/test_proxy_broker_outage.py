"""A broker outage longer than the proxy's delivery timeout, in the middle of traffic.

Found by `meterline benchmark-proxy --outage 20`: after the outage every send failed with
PRODUCER_FENCED (librdkafka's idempotent producer asks for a new epoch after timed-out
records; Tansu refuses it), so nothing spooled during the outage, or after it, was ever
published until the proxy restarted. The proxy now replaces a fenced producer. The broker
advertises a relay that is cut, so the proxy loses the broker completely.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from meterline.embedded.relay import Relay
from meterline.embedded.stack import EmbeddedStack
from meterline.proxy.benchmark_outage import published_token_ids
from meterline.proxy.fake_upstream import FakeUpstream
from tests.integration.llm_proxy_support import ProxyProcess

pytestmark = pytest.mark.integration


@pytest.fixture
def outage_env(tmp_path: Path) -> Iterator[tuple[EmbeddedStack, ProxyProcess]]:
    started: list[Any] = []
    try:
        stack = EmbeddedStack(tmp_path / "stack", partitions=2, relay=Relay()).start()
        started.append(stack)
        upstream = FakeUpstream().start()
        started.append(upstream)
        proxy = ProxyProcess(
            {
                **stack.env(),
                "METERLINE_PROXY_KEYS": json.dumps({"ml_o": "px-outage"}),
                "METERLINE_PROXY_OPENAI_URL": upstream.url,
                "METERLINE_PROXY_OPENAI_API_KEY": "sk-upstream",
                "METERLINE_PROXY_SPOOL_DIR": str(tmp_path / "spool"),
                "METERLINE_PROXY_DELIVERY_TIMEOUT_SECONDS": "2",
            },
            tmp_path / "proxy.log",
        )
        started.append(proxy)
        proxy.start()
        yield stack, proxy
    finally:
        for thing in reversed(started):
            thing.stop()


def _ask(proxy: ProxyProcess, n: int) -> list[str]:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="ml_o", max_retries=0)
    msgs: Any = [{"role": "user", "content": "hi"}]
    return [client.chat.completions.create(model="gpt-4o", messages=msgs).id for _ in range(n)]


def test_responses_during_an_outage_longer_than_the_delivery_timeout_are_all_published(
    outage_env: tuple[EmbeddedStack, ProxyProcess],
) -> None:
    stack, proxy = outage_env
    assert stack.relay is not None
    before = _ask(proxy, 10)
    proxy.wait_health(lambda h: h["spooled"] == 0, timeout=30)
    stack.relay.cut()
    during = _ask(proxy, 10)  # answered at once: the usage waits in the spool
    time.sleep(6)  # well past the 2 s delivery timeout: those sends fail
    assert proxy.health()["spooled"] == 10  # type: ignore[index]
    stack.relay.restore()
    after = _ask(proxy, 10)
    h = proxy.wait_health(lambda h: h["spooled"] == 0, timeout=90)
    assert h["delivery_failures"] >= 10
    ids = published_token_ids(stack.bootstrap)
    completed = set(before + during + after)
    assert len(completed) == 30
    assert completed <= set(ids), sorted(completed - set(ids))
