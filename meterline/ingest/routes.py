"""The HTTP ingestion routes, on any aiohttp application (``meterline ingest`` serves them
alone; ``meterline proxy`` mounts them beside its pass-through).

Every route answers only after the broker acknowledged every record of the request: 202
(Stripe routes: 200, in Stripe's shape) with counts; 400 naming each invalid record, with
nothing published; 401/403 for keys; 413 for an oversized body; 415 for a content type it
does not read; 503 when the broker did not acknowledge in time (retrying the same request is
safe: event ids make the worker count each event once).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from meterline.ingest import cloudevents, gateways, stripe
from meterline.ingest.auth import Denied, Keys, helicone_signature_ok, is_loopback
from meterline.ingest.publisher import KafkaPublisher, NotAcknowledged, Publisher
from meterline.ingest.records import (
    MAX_RECORDS,
    TOKENS,
    USAGE,
    FieldError,
    Kind,
    Mapped,
    Mapper,
    RecordError,
    codec_encoders,
    encode_messages,
    limits_from_settings,
    map_records,
)
from meterline.ingest.usage_avro import UsageWriter
from meterline.metering.windows import EventTimeLimits
from meterline.settings import Settings, get_settings
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from schemas.validate import DecodeError, to_json_bytes

PROBLEM = "application/problem+json"
FORM = "application/x-www-form-urlencoded"
_JSON_TYPES = {"application/json", cloudevents.CONTENT_SINGLE, cloudevents.CONTENT_BATCH}


@dataclass(frozen=True, slots=True)
class IngestConfig:
    keys: Keys
    limits: EventTimeLimits
    ack_timeout: float = 10.0
    max_body_bytes: int = 16 * 1024 * 1024
    helicone_secret: str = ""

    @classmethod
    def from_settings(cls, settings: Settings, host: str) -> IngestConfig:
        """Refuses (ValueError) to serve beyond loopback without keys."""
        if not settings.ingest_keys and not is_loopback(host):
            raise ValueError(
                f"ingestion on {host} (beyond loopback) needs keys: set METERLINE_INGEST_KEYS, "
                'e.g. \'{"<secret>": "*"}\''
            )
        return cls(
            Keys(dict(settings.ingest_keys)),
            limits_from_settings(settings),
            settings.ingest_ack_timeout_seconds,
            settings.ingest_max_body_bytes,
            settings.helicone_webhook_secret,
        )


class Problem(Exception):
    def __init__(self, status: int, detail: str, errors: list[RecordError] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors or []


_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 413: "Payload Too Large",
           415: "Unsupported Media Type", 503: "Service Unavailable"}  # fmt: skip


def _json_response(body: Any, status: int, content_type: str = "application/json") -> web.Response:
    return web.Response(body=to_json_bytes(body), status=status, content_type=content_type)


def problem_response(p: Problem) -> web.Response:
    """RFC 9457 problem details, as OpenMeter answers its ingest errors."""
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _TITLES.get(p.status, "Error"),
        "status": p.status,
        "detail": p.detail,
    }
    if p.errors:
        body["errors"] = [e.as_json() for e in p.errors]
    response = _json_response(body, p.status, PROBLEM)
    if p.status == 503:
        response.headers["Retry-After"] = "1"
    return response


def _invalid(mapped: Mapped, total: int) -> Problem:
    n = len(mapped.errors)
    what = "record is" if n == 1 else "records are"
    return Problem(400, f"{n} of {total} {what} invalid; nothing was published", mapped.errors)


class IngestRoutes:
    def __init__(self, publisher: Publisher, codec: Codec, config: IngestConfig) -> None:
        self.publisher = publisher
        self.codec = codec
        self.config = config
        usage = UsageWriter(codec)
        self.encoders = {
            USAGE.name: (usage.single, usage.batch),
            TOKENS.name: codec_encoders(codec, TOKENS),
        }

    # ----------------------------------------------------------------------- plumbing

    async def body(self, request: web.Request) -> bytes:
        limit = self.config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise Problem(413, f"body of {request.content_length} bytes; at most {limit}")
        data = bytearray()
        async for chunk in request.content.iter_any():
            data += chunk
            if len(data) > limit:
                raise Problem(413, f"body over {limit} bytes")
        return bytes(data)

    @staticmethod
    def parse_json(body: bytes) -> Any:
        try:
            # Decimal, never float: a value is exact from the first byte.
            return json.loads(body, parse_float=Decimal, parse_constant=Decimal)
        except (ValueError, RecursionError) as exc:
            raise Problem(400, f"invalid JSON: {exc}") from None

    async def publish(self, kind: Kind, events: Sequence[dict[str, Any]]) -> int:
        messages = encode_messages(events, *self.encoders[kind.name])
        try:
            await self.publisher.publish(kind.topic, messages, self.config.ack_timeout)
        except NotAcknowledged as exc:
            raise Problem(
                503,
                f"the broker did not acknowledge the write ({exc}); some records may already "
                "be in the topic: retry the same request (event ids make a retry count once)",
            ) from None
        return len(messages)

    def accepted(self, kind: Kind, mapped: Mapped, messages: int) -> web.Response:
        body: dict[str, Any] = {
            "accepted": len(mapped.events),
            "messages": messages,
            "topic": kind.topic,
        }
        if mapped.skipped:
            body["skipped"] = [e.as_json() for e in mapped.skipped]
        return _json_response(body, 202)

    async def run(
        self,
        request: web.Request,
        kind: Kind,
        records: Callable[[bytes, str], list[Any]],
        mapper: Mapper,
        id_keys: tuple[str, ...],
        *,
        signed: bool = False,
    ) -> web.Response:
        """The common path: authenticate, read, map and validate all, publish, answer."""
        try:
            scope = "*" if signed else self.config.keys.scope_of(request.headers)
            body = await self.body(request)
            if signed and not helicone_signature_ok(
                self.config.helicone_secret, body, request.headers.get("Helicone-Signature")
            ):
                raise Denied(401, "invalid or missing Helicone-Signature")
            try:
                items = records(body, request.content_type)
            except DecodeError as exc:
                raise Problem(400, str(exc)) from None
            if len(items) > MAX_RECORDS:
                raise Problem(413, f"{len(items)} records; at most {MAX_RECORDS} per request")
            mapped = map_records(items, mapper, kind, self.config.limits, _now_ms(), id_keys)
            if mapped.errors:
                raise _invalid(mapped, len(items))
            Keys.check_customers(scope, (e["customer_id"] for e in mapped.events))
            messages = await self.publish(kind, mapped.events)
        except Denied as d:
            return problem_response(Problem(d.status, d.message))
        except Problem as p:
            return problem_response(p)
        return self.accepted(kind, mapped, messages)

    def json_records(self, content_type: str, pick: Callable[[Any], list[Any]]) -> Any:
        def read(body: bytes, got: str) -> list[Any]:
            if got not in _JSON_TYPES:
                raise Problem(415, f"content type {got!r}; send {content_type}")
            return pick(self.parse_json(body))

        return read

    # ----------------------------------------------------------------------- CloudEvents

    async def events(self, request: web.Request) -> web.Response:
        def read(body: bytes, content_type: str) -> list[Any]:
            if content_type not in _JSON_TYPES:
                raise Problem(
                    415,
                    f"content type {content_type!r}: send {cloudevents.CONTENT_SINGLE}, "
                    f"{cloudevents.CONTENT_BATCH} or application/json (structured mode)",
                )
            return cloudevents.event_list(self.parse_json(body), content_type)

        return await self.run(request, USAGE, read, cloudevents.to_usage, ("id",))

    # ----------------------------------------------------------------------- gateway feeds

    async def openrouter(self, request: web.Request) -> web.Response:
        mapper = partial(gateways.openrouter, customer=gateways.header_customer(request.headers))
        read = self.json_records("application/json", _object_or_list)
        return await self.run(request, TOKENS, read, mapper, ("id",))

    async def helicone(self, request: web.Request) -> web.Response:
        read = self.json_records("application/json", _object_or_list)
        signed = bool(self.config.helicone_secret)
        return await self.run(
            request, TOKENS, read, gateways.helicone, ("request_id",), signed=signed
        )

    async def cloudflare(self, request: web.Request) -> web.Response:
        def read(body: bytes, content_type: str) -> list[Any]:
            if content_type == "application/x-ndjson":  # Logpush-style lines
                return [self.parse_json(line) for line in body.splitlines() if line.strip()]
            if content_type not in _JSON_TYPES:
                raise Problem(415, f"content type {content_type!r}; send application/json")
            return gateways.cloudflare_records(self.parse_json(body))

        return await self.run(request, TOKENS, read, gateways.cloudflare, ("id",))

    async def vercel(self, request: web.Request) -> web.Response:
        def read(body: bytes, content_type: str) -> list[Any]:
            if content_type == FORM:  # a Stripe v1 meter event, as the gateway sends it
                return [_form(body)]
            if content_type not in _JSON_TYPES:
                raise Problem(415, f"content type {content_type!r}; send application/json")
            return gateways.vercel_records(self.parse_json(body))

        return await self.run(request, TOKENS, read, gateways.vercel, ("identifier",))

    # ----------------------------------------------------------------------- Stripe

    async def stripe_v1(self, request: web.Request) -> web.Response:
        now = _now_ms()
        try:
            scope = self.config.keys.scope_of(request.headers)
            body = await self.body(request)
            event = _form(body) if request.content_type == FORM else self.parse_json(body)
            mapper = partial(stripe.to_usage, identifier=request.headers.get("Idempotency-Key"))
            mapped = map_records([event], mapper, USAGE, self.config.limits, now, ("identifier",))
            if mapped.errors:
                return _json_response(stripe.invalid_body(mapped.errors), 400)
            Keys.check_customers(scope, [mapped.events[0]["customer_id"]])
            await self.publish(USAGE, mapped.events)
        except (Denied, Problem) as exc:
            return _stripe_error(exc)
        except FieldError as exc:
            return _json_response(stripe.error_body(str(exc), code=exc.code, param=exc.param), 400)
        answer = stripe.meter_event_object(event, mapped.events[0]["timestamp"], now)
        return _json_response(answer, 200)

    async def stripe_v2(self, request: web.Request) -> web.Response:
        try:
            scope = self.config.keys.scope_of(request.headers)
            body = self.parse_json(await self.body(request))
            events = body.get("events") if type(body) is dict else None
            if type(events) is not list or not events:
                raise FieldError("Missing required param: events.", "events", "parameter_missing")
            if len(events) > stripe.V2_MAX_EVENTS:
                raise FieldError(
                    f"{len(events)} events; at most {stripe.V2_MAX_EVENTS} per request", "events"
                )

            def mapper(record: Any, index: int, now_ms: int) -> dict[str, Any]:
                return stripe.to_usage(record, index, now_ms, prefix=f"events[{index}].")

            limits = self.config.limits
            mapped = map_records(events, mapper, USAGE, limits, _now_ms(), ("identifier",))
            if mapped.errors:
                return _json_response(stripe.invalid_body(mapped.errors), 400)
            Keys.check_customers(scope, (e["customer_id"] for e in mapped.events))
            await self.publish(USAGE, mapped.events)
        except (Denied, Problem) as exc:
            return _stripe_error(exc)
        except FieldError as exc:
            return _json_response(stripe.error_body(str(exc), code=exc.code, param=exc.param), 400)
        return _json_response({}, 200)


def _object_or_list(body: Any) -> list[Any]:
    return body if type(body) is list else [body]


def _form(body: bytes) -> dict[str, Any]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise FieldError("form body is not UTF-8", "body") from None
    return stripe.form_event(pairs)


def _stripe_error(exc: Denied | Problem) -> web.Response:
    status = exc.status
    message = exc.message if isinstance(exc, Denied) else exc.detail
    type_ = "api_error" if status >= 500 else "invalid_request_error"
    return _json_response(stripe.error_body(message, type_=type_), status)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def register_ingest(
    app: web.Application,
    publisher: Publisher | None = None,
    *,
    settings: Settings | None = None,
    host: str | None = None,
    config: IngestConfig | None = None,
    codec: Codec | None = None,
    prefix: str = "",
) -> IngestRoutes:
    """Adds the ingestion routes to ``app``. ``host`` is where the app listens (default
    ``METERLINE_INGEST_HOST``): beyond loopback, keys must be configured (ValueError).
    Without a ``publisher`` the app gets its own ``KafkaPublisher`` (from ``settings``),
    started with the app and flushed and closed at its cleanup."""
    settings = settings or get_settings()
    config = config or IngestConfig.from_settings(settings, host or settings.ingest_host)
    codec = codec or Codec(registry_from_settings(settings.schema_registry_url))
    routes = IngestRoutes(publisher or _Unstarted(), codec, config)
    if publisher is None:
        owned_settings = settings

        async def own_publisher(_app: web.Application) -> AsyncIterator[None]:
            kafka = KafkaPublisher.from_settings(owned_settings)
            routes.publisher = kafka
            yield
            await asyncio.get_running_loop().run_in_executor(None, kafka.close)

        app.cleanup_ctx.append(own_publisher)
    app.router.add_post(f"{prefix}/v1/events", routes.events)
    app.router.add_post(f"{prefix}/v1/billing/meter_events", routes.stripe_v1)
    app.router.add_post(f"{prefix}/v2/billing/meter_event_stream", routes.stripe_v2)
    app.router.add_post(f"{prefix}/v1/feeds/openrouter", routes.openrouter)
    app.router.add_post(f"{prefix}/v1/feeds/helicone", routes.helicone)
    app.router.add_post(f"{prefix}/v1/feeds/cloudflare", routes.cloudflare)
    app.router.add_post(f"{prefix}/v1/feeds/vercel", routes.vercel)
    return routes


class _Unstarted:
    async def publish(self, topic: str, messages: Sequence[Any], timeout: float) -> None:
        raise NotAcknowledged(len(messages), len(messages), "the app has not started")
