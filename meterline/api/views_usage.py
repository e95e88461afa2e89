"""Usage endpoints: ``/usage/{customer}``, ``/tokens/{customer}`` and ``/customers``."""

from __future__ import annotations

import faust
from faust.web import Request, Response
from faust.web.exceptions import ValidationError

from meterline.api.context import ApiContext, ApiView
from meterline.api.params import (
    DIM_PREFIX,
    check_params,
    parse_dimensions,
    parse_format,
    parse_limit,
    parse_window_query,
    repeated,
    request_query,
)
from meterline.api.responses import table_response
from sinks.queries import (
    CUSTOMERS_COLUMNS,
    TOKENS_COLUMNS,
    USAGE_COLUMNS,
    CustomersQuery,
    TokensQuery,
    UsageQuery,
    customers_sql,
    tokens_sql,
    usage_sql,
)

__all__ = ["Customers", "Tokens", "Usage", "register"]

_WINDOW_PARAMS = ("window", "from", "to", "tz", "limit", "format")


class Usage(ApiView):
    """``usage_windows_tz``: window, meter (repeatable), from, to, tz, ``dim.<key>=<value>``
    (repeatable), limit, format."""

    async def get(self, request: Request, customer: str) -> Response:
        query = request_query(request)
        check_params(query, ("meter", *_WINDOW_PARAMS), dims=True)
        w = parse_window_query(query)
        q = UsageQuery(
            customer=customer,
            window=w.window,
            tz=w.tz,
            time=w.time,
            limit=w.limit,
            meters=repeated(query, "meter"),
            dimensions=parse_dimensions(query),
        )
        result = (await self.ctx.store.rows(usage_sql(q), USAGE_COLUMNS)).limited(w.limit)
        return table_response(self, result, w.fmt, {**w.meta(), "truncated": result.truncated})


class Tokens(ApiView):
    """``token_usage_tz``: window, model (repeatable), from, to, tz, limit, format."""

    async def get(self, request: Request, customer: str) -> Response:
        query = request_query(request)
        if any(k.startswith(DIM_PREFIX) for k in query):
            raise ValidationError(
                "token_usage has no dimensions: dim.<key> filters apply to /usage only"
            )
        check_params(query, ("model", *_WINDOW_PARAMS))
        w = parse_window_query(query)
        q = TokensQuery(
            customer=customer,
            window=w.window,
            tz=w.tz,
            time=w.time,
            limit=w.limit,
            models=repeated(query, "model"),
        )
        result = (await self.ctx.store.rows(tokens_sql(q), TOKENS_COLUMNS)).limited(w.limit)
        return table_response(self, result, w.fmt, {**w.meta(), "truncated": result.truncated})


class Customers(ApiView):
    """Customers seen in usage_events / token_events with totals: prefix, limit, format."""

    async def get(self, request: Request) -> Response:
        query = request_query(request)
        check_params(query, ("prefix", "limit", "format"))
        limit = parse_limit(query.get("limit"), default=1000)
        fmt = parse_format(query)
        q = CustomersQuery(prefix=query.get("prefix", ""), limit=limit)
        result = (await self.ctx.store.rows(customers_sql(q), CUSTOMERS_COLUMNS)).limited(limit)
        return table_response(self, result, fmt, {"truncated": result.truncated})


def register(app: faust.App, ctx: ApiContext) -> None:
    app.page("/usage/{customer}")(Usage.bound(ctx))
    app.page("/tokens/{customer}")(Tokens.bound(ctx))
    app.page("/customers")(Customers.bound(ctx))
