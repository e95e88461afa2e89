"""Billing endpoints: ``/balance``, ``/ledger``, ``/payments``, ``/alerts``, ``/invoices`` and
``/invoices/{customer}/preview``.

The first five read billing tables the billing writer owns; each is looked up first, so an
older store without it answers 404 naming the table, and columns it lacks mean fewer filters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import faust
from faust.web import Request, Response
from faust.web.exceptions import NotFound

from meterline.api.context import ApiContext, ApiView
from meterline.api.params import (
    check_params,
    parse_format,
    parse_rows_request,
    request_query,
)
from meterline.api.responses import json_body, json_response, records, table_response
from meterline.api.store import ResultSet
from sinks.queries import (
    BalanceQuery,
    CustomerRowsQuery,
    TableInfo,
    balance_sql,
    customer_rows_sql,
)

__all__ = ["LISTINGS", "Balance", "InvoicePreview", "Invoices", "Listing", "register"]


@dataclass(frozen=True)
class Listing:
    """One customer's rows of one billing table, newest first."""

    path: str
    table: str
    filters: tuple[str, ...]  # repeatable exact-match parameters, named as their columns
    order: tuple[str, ...]
    time_column: str = "at"
    default_limit: int = 100


LISTINGS = (
    # seq orders ledger entries written within one millisecond.
    Listing("/ledger/{customer}", "credit_ledger", ("kind", "grant_id"), ("at DESC", "seq DESC")),
    Listing("/payments/{customer}", "payments", ("status", "processor"), ("at DESC", "payment_id")),
    Listing("/alerts/{customer}", "alerts", ("kind",), ("at DESC", "alert_id")),
)


class ListingView(ApiView):
    listing: ClassVar[Listing]

    async def get(self, request: Request, customer: str) -> Response:
        spec = self.listing
        query = request_query(request)
        check_params(query, ("from", "to", "tz", "limit", "format", *spec.filters))
        fmt = parse_format(query)
        table = await self.ctx.store.billing_table(spec.table)
        req = parse_rows_request(query, spec.filters, spec.default_limit)
        q = CustomerRowsQuery(
            table, customer, spec.time_column, req.time, req.filters, spec.order, req.limit
        )
        found = await self.ctx.store.rows(customer_rows_sql(q), list(table.columns))
        result = found.limited(req.limit)
        return table_response(self, result, fmt, {"truncated": result.truncated})


class Balance(ApiView):
    """The ``balances`` row as an object."""

    async def get(self, request: Request, customer: str) -> Response:
        check_params(request_query(request), ())
        table = await self.ctx.store.billing_table("balances")
        result = await self.ctx.store.rows(balance_sql(BalanceQuery(table, customer)))
        if not result.rows:
            raise NotFound(f"no balance recorded for customer {customer!r}", table="balances")
        return json_response(self, records(result.columns, result.rows)[0])


class Invoices(ApiView):
    """Invoice lines plus ``invoices`` (one summary each): invoice_id, from, to (on
    period_start), tz, limit, format."""

    async def get(self, request: Request, customer: str) -> Response:
        query = request_query(request)
        check_params(query, ("invoice_id", "from", "to", "tz", "limit", "format"))
        fmt = parse_format(query)
        store = self.ctx.store
        lines_table = await store.billing_table("invoice_lines")
        # The text views (009_invoice_text.sql) print amounts as the invoice records do (6.00
        # in USD, 6 in JPY); a store migrated before them shows the Decimal columns plainly.
        lines_table = await store.describe("invoice_lines_text") or lines_table
        req = parse_rows_request(query, ("invoice_id",), 1000)

        async def rows_of(table: TableInfo, order: tuple[str, ...]) -> ResultSet:
            q = CustomerRowsQuery(
                table, customer, "period_start", req.time, req.filters, order, req.limit
            )
            return (await store.rows(customer_rows_sql(q), list(table.columns))).limited(req.limit)

        lines = await rows_of(lines_table, ("period_start DESC", "invoice_id", "line_no"))
        if fmt == "tsv":
            return table_response(self, lines, fmt, {})
        # Status and payments live in `invoices` (when the billing writer has it); the
        # lines alone still give period and amount due.
        headers = await store.describe("invoices_text") or await store.describe("invoices")
        if headers is not None:
            found = await rows_of(headers, ("period_start DESC", "invoice_id"))
            # version is the writer's ReplacingMergeTree bookkeeping, not invoice data.
            summaries = [
                {k: v for k, v in r.items() if k != "version"}
                for r in records(found.columns, found.rows)
            ]
        else:
            summaries = invoice_summaries(records(lines.columns, lines.rows))
        body = json_body(
            lines.columns, lines.rows, {"truncated": lines.truncated, "invoices": summaries}
        )
        return self.bytes(body, content_type="application/json")


def invoice_summaries(lines: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per invoice, in the order of its first line; amount_due from its
    ``amount_due`` summary line (see meterline/billing/invoice.py), None if it has none."""
    invoices: dict[str, dict[str, Any]] = {}
    for line in lines:
        inv_id = str(line.get("invoice_id", ""))
        inv = invoices.setdefault(
            inv_id,
            {
                "invoice_id": inv_id,
                "period_start": line.get("period_start"),
                "period_end": line.get("period_end"),
                "amount_due": None,
                "lines": 0,
            },
        )
        if "currency" in line:
            inv["currency"] = line["currency"]
        inv["lines"] += 1
        if line.get("kind") == "amount_due":
            inv["amount_due"] = line.get("amount")
    return list(invoices.values())


class InvoicePreview(ApiView):
    """The open period's invoice as if it closed now."""

    async def get(self, request: Request, customer: str) -> Response:
        usage = self.ctx.runtime.usage
        # The live account is in this worker's memory (its single writer); read it under
        # the pipeline lock so it is not seen half-updated.
        async with usage.lock:
            state = usage.accounts.get(customer)
            invoice = state.account.preview_invoice() if state is not None else None
        if invoice is None:
            return self.json({"error": f"no open billing period for {customer!r}"}, status=404)
        return self.json(invoice.to_dict())


def register(app: faust.App, ctx: ApiContext) -> None:
    app.page("/balance/{customer}")(Balance.bound(ctx))
    for spec in LISTINGS:
        name = f"{spec.table.title().replace('_', '')}View"
        app.page(spec.path)(ListingView.bound(ctx, name, listing=spec))
    app.page("/invoices/{customer}")(Invoices.bound(ctx))
    app.page("/invoices/{customer}/preview")(InvoicePreview.bound(ctx))
