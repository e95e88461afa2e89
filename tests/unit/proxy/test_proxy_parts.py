"""SSE splitting, request body preparation, caller identification, the spool."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from multidict import CIMultiDict

from meterline.proxy.callers import CallerPolicy, ProxyError
from meterline.proxy.gate import pending_topups_sql
from meterline.proxy.server import prepare_body
from meterline.proxy.spool import Spool
from meterline.proxy.sse import SseSplitter

STREAM = (
    b': keep-alive\n\nevent: a\ndata: {"x": 1}\n\n'
    b"event: b\r\ndata: line1\r\ndata: line2\r\n\r\ndata: [DONE]\n\ndata: tail"
)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 1000])
def test_splitter_returns_every_byte(size: int) -> None:
    s, got = SseSplitter(), []
    for i in range(0, len(STREAM), size):
        got.extend(s.feed(STREAM[i : i + size]))
    rest = s.rest()
    assert b"".join(e.raw for e in got) + rest == STREAM
    assert rest == b"data: tail"
    assert [(e.event, e.data) for e in got] == [
        ("message", ""),
        ("a", '{"x": 1}'),
        ("b", "line1\nline2"),
        ("message", "[DONE]"),
    ]


def test_chat_stream_gets_include_usage_spliced() -> None:
    body = (
        b'{"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "\\u00e9"}]}'
    )
    p = prepare_body("chat", body)
    assert p.stream and p.strip_usage
    assert p.body == b'{"stream_options":{"include_usage":true},' + body[1:]
    assert json.loads(p.body)["stream_options"] == {"include_usage": True}


def test_bodies_untouched_otherwise() -> None:
    asked = b'{"model":"m","stream":true,"stream_options":{"include_usage":true}}'
    assert prepare_body("chat", asked).body == asked
    assert not prepare_body("chat", asked).strip_usage
    for api in ("chat", "responses", "messages"):
        body = b'{"model":"m","tools":[{"type":"function"}],"temperature":0.70}'
        assert prepare_body(api, body).body == body
    assert prepare_body("messages", b'{"stream": true}').body == b'{"stream": true}'
    assert prepare_body("chat", b"not json").body == b"not json"


def test_chat_stream_options_without_include_usage() -> None:
    p = prepare_body("chat", b'{"model":"m","stream":true,"stream_options":{"x":1}}')
    assert json.loads(p.body)["stream_options"] == {"x": 1, "include_usage": True}
    assert p.strip_usage


POLICY = CallerPolicy(
    keys={"ml_a": "cust-a"},
    trust_customer_header=True,
    provider_keys={"openai": "sk-configured", "anthropic": ""},
)


def h(**items: str) -> CIMultiDict[str]:
    return CIMultiDict((k.replace("_", "-"), v) for k, v in items.items())


def test_meterline_key_as_sdk_key_is_consumed() -> None:
    c = POLICY.identify(h(Authorization="Bearer ml_a", Host="x"), "10.0.0.1", "openai")
    assert c.customer == "cust-a"
    assert c.headers["Authorization"] == "Bearer sk-configured"
    assert "Host" not in c.headers


def test_meterline_key_needs_a_configured_provider_key() -> None:
    with pytest.raises(ProxyError) as e:
        POLICY.identify(h(x_api_key="ml_a"), "127.0.0.1", "anthropic")
    assert e.value.status == 401
    body = json.loads(e.value.body("anthropic"))
    assert body["type"] == "error" and body["error"]["type"] == "authentication_error"


def test_explicit_key_passes_the_clients_provider_key_through() -> None:
    c = POLICY.identify(h(x_api_key="sk-ant-own", X_Meterline_Key="ml_a"), None, "anthropic")
    assert c.customer == "cust-a"
    assert c.headers["x-api-key"] == "sk-ant-own"
    assert "X-Meterline-Key" not in c.headers


def test_customer_header_only_when_trusted_and_from_loopback() -> None:
    headers = h(Authorization="Bearer sk-own", X_Meterline_Customer="cust-b")
    c = POLICY.identify(headers, "127.0.0.1", "anthropic")
    assert (c.customer, c.via, c.headers["Authorization"]) == ("cust-b", "header", "Bearer sk-own")
    with pytest.raises(ProxyError):
        POLICY.identify(headers, "192.168.1.5", "anthropic")
    untrusted = CallerPolicy(POLICY.keys, False, POLICY.provider_keys)
    with pytest.raises(ProxyError) as e:
        untrusted.identify(headers, "127.0.0.1", "openai")
    assert json.loads(e.value.body("openai"))["error"]["type"] == "invalid_api_key"


def test_spool_keeps_until_removed(tmp_path: Path) -> None:
    s = Spool(tmp_path)
    ev = {"event_id": "chatcmpl-1", "customer_id": "c", "input_tokens": 1}
    s.add(ev)
    s.add(ev)  # one response id, one row
    s.add({**ev, "event_id": "msg_2"})
    assert s.count() == 2
    assert [e["event_id"] for e in s.pending(exclude=frozenset({"msg_2"}))] == ["chatcmpl-1"]
    s.close()
    s = Spool(tmp_path)  # survives a restart
    s.remove("chatcmpl-1")
    assert [e["event_id"] for e in s.pending()] == ["msg_2"]
    s.close()


def test_pending_topups_sql_quotes_the_customer() -> None:
    sql = pending_topups_sql("o'brien\\")
    assert "'o\\'brien\\\\'" in sql
