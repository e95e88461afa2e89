"""Every surface of the run against the reference: ClickHouse (usage_windows at each size,
token_usage, raw events, dlq, credit_ledger, balances, topups, payments, alerts, invoices,
invoice_lines) and the output topics (aggregates, topups, alerts, invoices, dlq).

Each figure is a count of things wrong, so a clean run is all zeros; ``details`` keeps the
first examples of each, to say what went wrong."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from meterline.chaos.reference import BillingReference, MeteringReference
from schemas.codec import Codec, DecodeError

Sql = Callable[[str], list[list[Any]]]


@dataclass(slots=True)
class Findings:
    lost: int = 0
    doubled: int = 0
    window_mismatches: int = 0
    token_mismatches: int = 0
    dlq_rows: int = 0
    dlq_topic: int = 0
    duplicate_topups: int = 0
    topup_mismatches: int = 0
    balance_mismatches: int = 0
    ledger_identity_failures: int = 0
    ledger_mismatches: int = 0
    invoice_mismatches: int = 0
    payment_mismatches: int = 0
    alert_mismatches: int = 0
    aggregate_mismatches: int = 0
    details: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def note(self, what: str, text: str) -> None:
        if len(self.details[what]) < 5:
            self.details[what].append(text)


def _dec(v: Any) -> Decimal | None:
    return None if v is None or v == "\\N" else Decimal(str(v))


def compare_metering(sql: Sql, ref: MeteringReference, f: Findings) -> None:
    got_counts: dict[tuple[str, str], int] = {}
    for table, kind in (("usage_events", "usage"), ("token_events", "tokens")):
        for c, n in sql(f"SELECT customer_id, count() FROM {table} FINAL GROUP BY customer_id"):
            got_counts[(c, kind)] = int(n)
    want_counts = ref.events_by_customer()
    for key in set(got_counts) | set(want_counts):
        got, want = got_counts.get(key, 0), want_counts.get(key, 0)
        if got < want:
            f.lost += want - got
            f.note("lost", f"{key}: {got} stored of {want}")
        elif got > want:
            f.doubled += got - want
            f.note("doubled", f"{key}: {got} stored of {want}")

    rows = sql(
        "SELECT customer_id, meter, dimensions, window, toUnixTimestamp64Milli(window_start), "
        "toString(value), events FROM usage_windows"
    )
    got_w = {
        (c, m, tuple(sorted(d.items())), w, int(s)): (Decimal(v), int(n))
        for c, m, d, w, s, v, n in rows
    }
    want_w = ref.usage_windows()
    for key in set(got_w) | set(want_w):
        got_v, want_v = got_w.get(key), want_w.get(key)
        if got_v != want_v:
            f.window_mismatches += 1
            f.note("usage_windows", f"{key}: stored {got_v}, expected {want_v}")
            if key[3] == "minute":  # events are counted once per window size
                g, w = (got_v or (0, 0))[1], (want_v or (0, 0))[1]
                f.doubled += max(0, g - w)

    rows = sql(
        "SELECT customer_id, model, window, toUnixTimestamp64Milli(window_start), input_tokens, "
        "output_tokens, toString(cost), toString(billed) FROM token_usage"
    )
    got_t = {
        (c, m, w, int(s)): (int(i), int(o), Decimal(cost), Decimal(billed))
        for c, m, w, s, i, o, cost, billed in rows
    }
    want_t = ref.token_usage()
    for key in set(got_t) | set(want_t):
        if got_t.get(key) != want_t.get(key):
            f.token_mismatches += 1
            f.note("token_usage", f"{key}: stored {got_t.get(key)}, expected {want_t.get(key)}")


def compare_dlq(
    sql: Sql, dlq_records: list[Any], codec: Codec, malformed: int, f: Findings
) -> None:
    (n,) = sql("SELECT count() FROM dlq FINAL")[0]
    f.dlq_rows = int(n)
    coords = set()
    for _, _, _, value in dlq_records:
        try:
            _, rec = codec.decode(value)
            coords.add((rec["topic"], rec["partition"], rec["offset"]))
        except (DecodeError, KeyError, TypeError):
            coords.add(("?", 0, value))
    f.dlq_topic = len(coords)
    for rows in sql("SELECT topic, reason FROM dlq FINAL WHERE reason = ''"):
        f.note("dlq", f"a dead letter without a reason: {rows}")
    if f.dlq_rows != malformed:
        f.note("dlq", f"{f.dlq_rows} DLQ rows for {malformed} malformed records")


def compare_billing(
    sql: Sql, ref: BillingReference, outputs: dict[str, list[Any]], f: Findings
) -> None:
    customers = list(ref.accounts)
    inlist = ", ".join(f"'{c}'" for c in customers)
    ledger: dict[str, list[tuple[str, str, Decimal, Decimal]]] = defaultdict(list)
    for c, eid, kind, amount, after in sql(
        "SELECT customer_id, entry_id, kind, toString(amount), toString(balance_after) "
        f"FROM credit_ledger FINAL WHERE customer_id IN ({inlist}) ORDER BY customer_id, seq"
    ):
        ledger[c].append((eid, kind, Decimal(amount), Decimal(after)))
    balances = {
        c: Decimal(b)
        for c, b in sql(
            f"SELECT customer_id, toString(balance) FROM balances WHERE customer_id IN ({inlist})"
        )
    }
    for c in customers:
        want = {(e["entry_id"], e["kind"], Decimal(e["amount"]), Decimal(e["balance_after"]))
                for e in ref.entries[c].values()}  # fmt: skip
        got = set(ledger[c])
        if got != want:
            f.ledger_mismatches += len(got ^ want)
            f.note(
                "ledger", f"{c}: {sorted(got - want)[:2]} stored, {sorted(want - got)[:2]} missing"
            )
        total = sum((a for _, _, a, _ in ledger[c]), Decimal(0))
        stored = balances.get(c)
        last = ledger[c][-1][3] if ledger[c] else Decimal(0)
        if stored is None or total != stored or last != stored:
            f.ledger_identity_failures += 1
            f.note("ledger identity", f"{c}: entries sum {total}, last {last}, balance {stored}")
        if stored != ref.balance(c):
            f.balance_mismatches += 1
            f.note("balance", f"{c}: stored {stored}, expected {ref.balance(c)}")

    stored_topups = {
        r: (Decimal(a), int(n))
        for r, a, n in sql("SELECT request_id, toString(amount), attempt FROM topups FINAL")
    }
    want_topups = {k: (Decimal(v["amount"]), int(v["attempt"])) for k, v in ref.topups.items()}
    for k in set(stored_topups) | set(want_topups):
        if stored_topups.get(k) != want_topups.get(k):
            f.topup_mismatches += 1
            f.note("topups", f"{k}: stored {stored_topups.get(k)}, expected {want_topups.get(k)}")
    by_id: dict[str, set[bytes]] = defaultdict(set)
    for *_, value in outputs["topups"]:
        rec = json.loads(value)
        by_id[rec["request_id"]].add(value)
    for rid, values in by_id.items():
        # A request published again after a crash repeats the same record (same id, same
        # content); another request for the same low balance would be a new id.
        if len(values) > 1 or rid not in ref.topups:
            f.duplicate_topups += 1
            f.note("duplicate top-ups", f"{rid}: {len(values)} versions")
    for rid in set(ref.topups) - set(by_id):
        f.topup_mismatches += 1
        f.note("topups", f"{rid}: never published")

    lines = sql(
        "SELECT invoice_id, line_no, kind, meter, toString(quantity), toString(unit_price), "
        "toString(amount) FROM invoice_lines FINAL"
    )
    got_lines = {(i, int(n)): (k, m, _dec(q), _dec(u), _dec(a)) for i, n, k, m, q, u, a in lines}
    want_lines = {
        (ln["invoice_id"], ln["line_no"]): (
            ln["kind"], ln["meter"], _dec(ln["quantity"]), _dec(ln["unit_price"]),
            _dec(ln["amount"]),
        )
        for inv in ref.invoices.values()
        for ln in inv["lines"]
    }  # fmt: skip
    for k in set(got_lines) | set(want_lines):
        if got_lines.get(k) != want_lines.get(k):
            f.invoice_mismatches += 1
            f.note("invoice_lines", f"{k}: stored {got_lines.get(k)}, expected {want_lines.get(k)}")
    got_inv = {
        i: Decimal(a) for i, a in sql("SELECT invoice_id, toString(amount_due) FROM invoices FINAL")
    }
    want_inv = {i: Decimal(v["amount_due"]) for i, v in ref.invoices.items()}
    topic_inv = {json.loads(v)["invoice_id"] for *_, v in outputs["invoices"]}
    for i in set(got_inv) | set(want_inv) | topic_inv:
        if got_inv.get(i) != want_inv.get(i) or i not in topic_inv:
            f.invoice_mismatches += 1
            f.note("invoices", f"{i}: stored {got_inv.get(i)}, expected {want_inv.get(i)}, "
                   f"published {i in topic_inv}")  # fmt: skip

    got_pay = {
        (p, s): proc
        for p, s, proc in sql("SELECT payment_id, status, processor FROM payments FINAL")
    }
    want_pay = {k: v["processor"] for k, v in ref.payments.items()}
    if got_pay != want_pay:
        f.payment_mismatches += len(set(got_pay.items()) ^ set(want_pay.items()))
        f.note("payments", f"stored-only {sorted(set(got_pay) - set(want_pay))[:3]}, "
               f"missing {sorted(set(want_pay) - set(got_pay))[:3]}")  # fmt: skip

    got_alerts = {
        a for (a,) in sql(f"SELECT alert_id FROM alerts FINAL WHERE customer_id IN ({inlist})")
    }
    topic_alerts = {json.loads(v)["alert_id"] for *_, v in outputs["alerts"]}
    for a in got_alerts ^ set(ref.alerts) | topic_alerts ^ set(ref.alerts):
        f.alert_mismatches += 1
        f.note("alerts", f"{a}: stored {a in got_alerts}, published {a in topic_alerts}, "
               f"expected {a in ref.alerts}")  # fmt: skip


def compare_aggregates(records: list[Any], ref: MeteringReference, f: Findings) -> None:
    """meterline.aggregates: a record id always carries the same fact, and merged per minute
    window (revision 0 plus corrections) the events equal the reference's. Windows still open
    at the end (within grace of the stream) are not published yet, so only published
    windows are checked."""
    by_id: dict[str, dict[str, Any]] = {}
    for *_, value in records:
        rec = json.loads(value)
        prev = by_id.setdefault(rec["id"], rec)
        if prev != rec:
            f.aggregate_mismatches += 1
            f.note("aggregates", f"{rec['id']}: two versions")
    events: dict[tuple[Any, ...], int] = defaultdict(int)
    for rec in by_id.values():
        dims = tuple(sorted(rec["dimensions"].items()))
        events[(rec["customer_id"], rec["meter"], dims, "minute", rec["window_start"])] += rec[
            "events"
        ]
    want = ref.usage_windows()
    # A token event is published as one record per token kind (llm_input_tokens, ...), each
    # grouped by model: its events are the token events of that model and minute.
    tokens: dict[tuple[Any, ...], int] = defaultdict(int)
    for e in ref.tokens:
        tokens[(e["customer_id"], e["model"], e["timestamp"] // 60_000 * 60_000)] += 1
    for key, n in events.items():
        if key[1].startswith("llm_"):
            w = tokens.get((key[0], dict(key[2]).get("model"), key[4]), 0)
        else:
            w = want.get(key, (None, 0))[1]
        if n != w:
            f.aggregate_mismatches += 1
            f.note("aggregates", f"{key}: {n} events published, expected {w}")
