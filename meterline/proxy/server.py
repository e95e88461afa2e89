"""The proxy's aiohttp application: ``POST /v1/chat/completions``, ``/v1/responses`` (OpenAI)
and ``/v1/messages`` (Anthropic), streaming and not, plus ``GET /health``.

Bodies go upstream as the client sent them, with one exception: a streamed chat completion
without ``stream_options.include_usage`` gets it (OpenAI reports no usage in a stream
otherwise), and the usage-only chunk it adds is then taken out of the stream the client sees.
The other chunks then carry ``"usage": null``, which the SDKs read as absent.

Every response is handled by a task of its own, shielded from the request: a client that goes
away mid-stream stops receiving, but the upstream is read to its end and billed.

The usage is spooled beside the response, not before it: the upstream has done (and charged
for) the work whether or not the client receives the answer, so holding the answer back until
the spool's fsync would shorten no window in which usage can be lost (that window runs from
the upstream's answer to the fsync either way); it would only add the fsync to every request's
latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from meterline.proxy.callers import Caller, CallerPolicy, ProxyError, response_headers
from meterline.proxy.gate import GateUnavailable, SpendGate
from meterline.proxy.publisher import Publisher
from meterline.proxy.sse import SseSplitter
from meterline.proxy.usage import StreamMeter, UsageMissing, completion_from_body, token_event

log = logging.getLogger(__name__)

# path → (api, provider)
ROUTES: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("chat", "openai"),
    "/v1/responses": ("responses", "openai"),
    "/v1/messages": ("messages", "anthropic"),
}
_INCLUDE_USAGE = b'"stream_options":{"include_usage":true},'


@dataclass(frozen=True, slots=True)
class PreparedBody:
    body: bytes
    stream: bool
    strip_usage: bool  # the proxy asked for the usage chunk: the client does not see it


def prepare_body(api: str, body: bytes) -> PreparedBody:
    if api != "chat" or b'"stream"' not in body:
        # Only a streamed chat request may need changing; whether any other response is a
        # stream is read from its content type, so the request need not even be parsed.
        return PreparedBody(body, False, False)
    try:
        obj = json.loads(body)
    except ValueError:
        return PreparedBody(body, False, False)  # the upstream's 400 is the answer
    if not isinstance(obj, dict):
        return PreparedBody(body, False, False)
    if obj.get("stream") is not True:
        return PreparedBody(body, False, False)
    options = obj.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage") is True:
        return PreparedBody(body, True, False)
    if "stream_options" not in obj:
        # Spliced in after the opening brace: every byte the client sent stays as it was.
        at = body.index(b"{") + 1
        return PreparedBody(body[:at] + _INCLUDE_USAGE + body[at:], True, True)
    # stream_options present without include_usage: only then is the body re-serialized.
    obj["stream_options"] = {
        **(options if isinstance(options, dict) else {}),
        "include_usage": True,
    }
    return PreparedBody(json.dumps(obj, ensure_ascii=False).encode(), True, True)


class Proxy:
    def __init__(
        self,
        policy: CallerPolicy,
        upstreams: dict[str, str],
        publisher: Publisher,
        gate_customers: list[str],
        api_url: str,
        balance_ttl_seconds: float,
        worker_api_key: str = "",
    ) -> None:
        self.policy = policy
        self.upstreams = {p: u.rstrip("/") for p, u in upstreams.items()}
        self.publisher = publisher
        self._gate_args = (api_url, gate_customers, balance_ttl_seconds, worker_api_key)
        self.gate: SpendGate | None = None
        self.session: aiohttp.ClientSession | None = None
        self.unbilled = 0
        self.billed = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)  # images inline as base64
        for path in ROUTES:
            app.router.add_post(path, self.handle)
        app.router.add_get("/health", self.health)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        return app

    async def _startup(self, _app: web.Application) -> None:
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=600),
        )
        api_url, customers, ttl, key = self._gate_args
        self.gate = SpendGate(api_url, customers, ttl, self.session, key)
        await self.publisher.start()

    async def _cleanup(self, _app: web.Application) -> None:
        # Responses still draining are billed before the spool closes.
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=30)
        if self.session is not None:
            await self.session.close()
        await self.publisher.close()

    async def health(self, _request: web.Request) -> web.Response:
        p = self.publisher
        return web.json_response(
            {
                "status": "ok",
                "spooled": await p.spooled(),
                "delivered": p.delivered,
                "delivery_failures": p.failed,
                "producer_renewals": p.kafka.renewals,
                "billed": self.billed,
                "unbilled": self.unbilled,
            }
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        api, provider = ROUTES[request.path]
        try:
            caller = self.policy.identify(request.headers, request.remote, provider)
            await self._check_gate(caller.customer, provider)
            prepared = prepare_body(api, await request.read())
        except ProxyError as exc:
            return _error(exc, provider)
        task = asyncio.ensure_future(self._forward(request, api, provider, caller, prepared))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def _check_gate(self, customer: str, provider: str) -> None:
        gate = self.gate
        if gate is None or not gate.applies(customer):
            return
        try:
            verdict = await gate.check(customer)
        except GateUnavailable as exc:
            raise ProxyError(503, _kind(provider, "unavailable"), str(exc)) from None
        if not verdict.allowed:
            raise ProxyError(
                402,
                _kind(provider, "billing"),
                f"Meterline spend gate: customer {customer!r}: {verdict.reason}",
                {"code": "insufficient_quota"},
            )

    async def _forward(
        self, request: web.Request, api: str, provider: str, caller: Caller, p: PreparedBody
    ) -> web.StreamResponse:
        assert self.session is not None
        url = self.upstreams[provider] + request.path_qs
        try:
            async with self.session.post(url, data=p.body, headers=caller.headers) as up:
                headers = response_headers(up.headers)
                ctype = up.headers.get("content-type", "")
                if up.status == 200 and ctype.startswith("text/event-stream"):
                    return await self._stream(request, up, headers, api, caller, p.strip_usage)
                data = await up.read()
                if up.status == 200 and "json" in ctype:
                    self._bill(caller, lambda: self._body_event(api, caller, data))
                return web.Response(status=up.status, body=data, headers=headers)
        except aiohttp.ClientError as exc:
            log.warning("upstream %s failed: %s", url, exc)
            kind = _kind(provider, "unavailable")
            return _error(ProxyError(502, kind, f"upstream unreachable: {exc}"), provider)

    async def _stream(
        self,
        request: web.Request,
        up: aiohttp.ClientResponse,
        headers: Any,
        api: str,
        caller: Caller,
        strip: bool,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers=headers)
        client = True
        try:
            await resp.prepare(request)
        except ConnectionError:
            client = False
        splitter = SseSplitter()
        meter = StreamMeter(api)
        billed = False
        try:
            async for chunk in up.content.iter_any():
                kept: list[bytes] = []
                for ev in splitter.feed(chunk):
                    if not meter.feed(ev) or not strip:
                        kept.append(ev.raw)
                if meter.final and not billed:
                    billed = self._bill(caller, lambda: self._stream_event(meter, api, caller))
                if client:
                    client = await _write(resp, b"".join(kept) if strip else chunk)
        except aiohttp.ClientError as exc:
            log.warning("upstream stream cut: %s", exc)
        if not billed:
            # The stream ended without its terminal event: bill what the upstream reported.
            self._bill(caller, lambda: self._stream_event(meter, api, caller))
        if client and strip:
            client = await _write(resp, splitter.rest())
        if client:
            with contextlib.suppress(ConnectionError):
                await resp.write_eof()
        return resp

    def _bill(self, caller: Caller, event_of: Callable[[], dict[str, Any]]) -> bool:
        """Start spooling the response's TokenEvent; False if the response reports no usage."""
        try:
            event = event_of()
        except (UsageMissing, ValueError, AttributeError) as exc:
            self.unbilled += 1
            log.warning("not billed (customer %s): %s", caller.customer, exc)
            return False
        task = asyncio.ensure_future(self._record(event))
        self._tasks.add(task)  # _cleanup waits for it, so a graceful stop spools it
        task.add_done_callback(self._tasks.discard)
        return True

    async def _record(self, event: dict[str, Any]) -> None:
        try:
            await self.publisher.record(event)
        except Exception:
            self.unbilled += 1
            log.exception("spool write failed: usage of %s not recorded", event["event_id"])
            return
        self.billed += 1

    def _stream_event(self, meter: StreamMeter, api: str, caller: Caller) -> dict[str, Any]:
        return token_event(meter.completion(), caller.customer, api, True, _now_ms())

    def _body_event(self, api: str, caller: Caller, data: bytes) -> dict[str, Any]:
        completion = completion_from_body(api, json.loads(data))
        return token_event(completion, caller.customer, api, False, _now_ms())


async def _write(resp: web.StreamResponse, data: bytes) -> bool:
    """False once the client is gone (the caller keeps draining the upstream)."""
    if not data:
        return True
    try:
        await resp.write(data)
        return True
    except (ConnectionError, RuntimeError):
        log.info("client disconnected mid-stream; draining the upstream to bill it")
        return False


def _kind(provider: str, what: str) -> str:
    anthropic = {"billing": "billing_error", "unavailable": "api_error"}
    openai = {"billing": "insufficient_quota", "unavailable": "api_error"}
    return (anthropic if provider == "anthropic" else openai)[what]


def _error(exc: ProxyError, provider: str) -> web.Response:
    return web.Response(status=exc.status, body=exc.body(provider), content_type="application/json")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
