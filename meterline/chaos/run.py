"""`meterline chaos`: the workload of meterline/chaos/workload.py through the embedded stack
while faults are injected, then every surface compared with the reference.

Rounds are published one after another; a fault fires at a random point of a round while
publishing goes on (producers do not stop for a crash). After each round the harness waits
until the consumer group has committed past everything published (so the round is applied),
answers the top-up requests the round raised as a payment service would (three processors;
some declined, some canceled, some delivered twice) and waits for those to be applied too.
"""

from __future__ import annotations

import json
import random
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meterline.chaos.compare import (
    Findings,
    compare_aggregates,
    compare_billing,
    compare_dlq,
    compare_metering,
)
from meterline.chaos.faults import DiskFull, FaultLog, Outage, Workers
from meterline.chaos.kafka import GroupProbe, Publisher, read_topic
from meterline.chaos.reference import BillingReference, MeteringReference
from meterline.chaos.workload import PROCESSORS, Msg, Workload, generate
from meterline.embedded.stack import EmbeddedStack
from meterline.metering.catalog_file import DEFAULT_CATALOG_PATH
from schemas.codec import Codec
from schemas.registry_choice import registry_from_settings
from sinks.fault import FAULT_ENV
from streams import topics

INPUTS = (topics.USAGE, topics.TOKENS, topics.ACCOUNTS, topics.PAYMENTS)
PARTITIONS = 4


@dataclass(slots=True)
class ChaosOptions:
    records: int = 200_000
    kills: int = 5
    seed: int = 1
    outage_seconds: float = 30.0
    work_dir: Path | None = None
    catch_up_timeout: float = 300.0
    # The store's directory on a tmpfs filled up for outage_seconds (needs mount: root).
    disk_full: bool = True


@dataclass(slots=True)
class ChaosResult:
    records: int
    events: int
    malformed: int
    findings: Findings
    faults: FaultLog
    seconds: float
    topup_answers: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        f = self.findings
        return (
            f.lost + f.doubled + f.window_mismatches + f.token_mismatches
            + abs(f.dlq_rows - self.malformed) + abs(f.dlq_topic - self.malformed)
            + f.duplicate_topups + f.topup_mismatches + f.balance_mismatches
            + f.ledger_identity_failures + f.ledger_mismatches + f.invoice_mismatches
            + f.payment_mismatches + f.alert_mismatches + f.aggregate_mismatches
        )  # fmt: skip


def _plan(opts: ChaosOptions, rounds: int, r: random.Random) -> dict[int, list[str]]:
    """Faults per round: kills spread over the run (one of them while the replacement is
    still recovering), the pair of workers in the middle, the outage in a later round."""
    plan: dict[int, list[str]] = {k: [] for k in range(rounds)}
    pair = rounds // 2 - 1 if rounds > 3 else 0
    plan[pair].append("pair_start")
    plan[pair + 1].append("pair_kill")
    outage = min(rounds - 1, pair + 2)
    plan[outage].append("outage")
    if opts.disk_full:
        plan[min(rounds - 1, outage + 1)].append("disk_full")
    for i in range(opts.kills):
        plan[r.randrange(rounds)].append("kill_recovery" if i == 1 else "kill")
    return plan


class Chaos:
    def __init__(
        self, opts: ChaosOptions, stack: EmbeddedStack, outage: Outage, disk: DiskFull | None
    ) -> None:
        self.opts = opts
        self.stack = stack
        self.outage = outage
        self.disk = disk
        self.codec = Codec(registry_from_settings(""))
        self.r = random.Random(opts.seed)
        self.now = int(time.time() * 1000)
        self.load: Workload = generate(self.codec, opts.records, opts.seed, self.now)
        self.metering = MeteringReference()
        self.billing = BillingReference(self.load.billing)
        self.faults = FaultLog()
        self.env = {
            "METERLINE_CATALOG_FILE": str(DEFAULT_CATALOG_PATH),
            "METERLINE_MAX_PAST_DAYS": "100",
            "METERLINE_DEDUP_HORIZON_DAYS": "100",
            # Simulated history: only the inputs move the accounts' clocks.
            "METERLINE_BILLING_TICK_SECONDS": "0",
            "METERLINE_SQL_MAX_RESULT_ROWS": "50000000",
            "METERLINE_SQL_MAX_RESULT_BYTES": "20000000000",
            FAULT_ENV: str(outage.path),
        }
        self.pub = Publisher(stack.broker.bootstrap)
        self.group = GroupProbe(stack.broker.bootstrap, "meterline")
        self.answered: set[str] = set()
        self.answers = 0

    # ---- publishing and waiting ---------------------------------------------------------

    def _publish(self, msgs: list[Msg], seconds: float = 0.0) -> None:
        # Paced like live traffic: at most ~2,000 records/s, or spread over ``seconds`` so
        # that records keep arriving during a fault and a backlog builds up behind it.
        pause = max(0.05, seconds * 100 / max(1, len(msgs)))
        for i, m in enumerate(msgs):
            if i % 100 == 99:
                time.sleep(pause)
            for e in m.events:
                if self.metering.offer(e) and e["customer_id"] in self.billing.accounts:
                    self.billing.usage(e)
            self.pub.publish(m)
        self.pub.flush()

    def _applied(self) -> float:
        return self.group.wait_caught_up(self.pub.ends(INPUTS), self.opts.catch_up_timeout)

    # ---- the payment service ------------------------------------------------------------

    def _answer_topups(self) -> None:
        """Answers each new request of meterline.topups once it is published (the reference
        says which to expect): the processor of the customer, an outcome by request id."""
        wanted = set(self.billing.topups) - self.answered
        if not wanted:
            return
        deadline = time.monotonic() + self.opts.catch_up_timeout
        seen: dict[str, dict[str, Any]] = {}
        while not wanted <= set(seen) and time.monotonic() < deadline:
            for *_, v in read_topic(self.stack.broker.bootstrap, topics.TOPUPS, PARTITIONS, 1.0):
                rec = json.loads(v)
                seen[rec["request_id"]] = rec
        for rid in sorted(wanted):
            req = self.billing.topups[rid]
            c = req["customer_id"]
            outcome = zlib.crc32(rid.encode()) % 10
            status = "failed" if outcome == 7 else "canceled" if outcome == 8 else "succeeded"
            p = {
                "payment_id": f"pay-{rid}", "customer_id": c,
                "processor": PROCESSORS[self.load.billing.index(c) % 3], "status": status,
                "amount": req["amount"], "currency": req["currency"], "pays_kind": "topup",
                "pays_id": rid, "occurred_at": req["requested_at"] + 60_000,
                "failure_code": "card_declined" if status == "failed" else None,
            }  # fmt: skip
            copies = 2 if outcome == 9 else 1  # a processor's webhook delivered twice
            for _ in range(copies):
                self.billing.payment(p)
                self.pub.publish(Msg(topics.PAYMENTS, c, json.dumps(p).encode()))
                self.answers += 1
            self.answered.add(rid)
        self.pub.flush()
        self._applied()

    # ---- faults ---------------------------------------------------------------------------

    def _fault(self, workers: Workers, fault: str) -> None:
        t0 = time.monotonic()
        if fault in ("kill", "kill_recovery"):
            workers.kill_primary(during_recovery=fault == "kill_recovery")
        elif fault == "pair_start":
            workers.start_second()
        elif fault == "pair_kill":
            workers.kill_second_and_replace()
        elif fault == "outage":
            self.outage.begin()
            time.sleep(self.opts.outage_seconds)
            self.outage.end()
        elif fault == "disk_full" and self.disk is not None:
            filled = self.disk.fill()
            time.sleep(self.opts.outage_seconds)
            self.disk.free()
            self.faults.notes.append(f"disk_full: {filled >> 20} MiB filler on the store's tmpfs")
        self.faults.notes.append(f"{fault}: {time.monotonic() - t0:.1f}s")

    def _round(self, workers: Workers, k: int, faults: list[str]) -> None:
        msgs = self.load.rounds[k].messages
        if k == len(self.load.rounds) // 2:
            change = dict(self.load.price_change, at=self.now)
            self.metering.price_change(change)
            self.pub.publish(Msg(topics.CATALOG, None, json.dumps(change).encode()))
        cuts = sorted(self.r.randint(len(msgs) // 10, len(msgs) * 9 // 10) for _ in faults)
        start = 0
        for fault, cut in zip(faults, cuts, strict=True):
            # The slice is published over about the fault's length, and the fault fires early
            # in it: it lands mid-stream and records arrive while it lasts.
            lasts = self.opts.outage_seconds if fault in ("outage", "disk_full") else 20.0
            publisher = threading.Thread(target=self._publish, args=(msgs[start:cut], lasts))
            publisher.start()
            time.sleep(lasts * self.r.uniform(0.05, 0.25))
            self._fault(workers, fault)
            # Catch-up: from the fault's end (replacement ready, store back) until all that
            # was published by then is applied and durable.
            took = self.group.wait_caught_up(self.pub.ends(INPUTS), self.opts.catch_up_timeout)
            self.faults.catch_up.append((f"round {k}: {fault}", took))
            publisher.join()
            self._applied()
            start = cut
        self._publish(msgs[start:])
        self._applied()
        self._answer_topups()

    # ---- the run --------------------------------------------------------------------------

    def run(self) -> ChaosResult:
        started = time.monotonic()
        workers = Workers(self.stack, self.env, self.faults)
        # A malformed plan change first: logged and skipped, it must not touch the plan in
        # force (before streams/catalog_feed.py parsed plans, it made every upsert fail).
        bad_plan = {"type": "plan", "change_id": "chaos-bad-plan", "plan_id": "lora-pro",
                    "fee": "abc", "at": self.now}  # fmt: skip
        self.pub.publish(Msg(topics.CATALOG, None, json.dumps(bad_plan).encode()))
        self.pub.flush()
        time.sleep(2)  # the catalog feed is its own consumer: let it read the change first
        for cmd in self.load.commands:
            self.billing.command(cmd)
            self.pub.publish(Msg(topics.ACCOUNTS, cmd["customer_id"], json.dumps(cmd).encode()))
        for m in self.load.malformed_commands:
            self.pub.publish(m)
        self.pub.flush()
        self._applied()
        plan = _plan(self.opts, len(self.load.rounds), self.r)
        for k in range(len(self.load.rounds)):
            self._round(workers, k, plan[k])
            if "pair_kill" in plan[k]:
                # The pair ends with the replacement stopping; its store joins the primary's.
                t0 = time.monotonic()
                workers.stop_second()
                self.faults.notes.append(f"pair merged: {time.monotonic() - t0:.1f}s")
        # A last pass of the payment service: requests raised by its own answers.
        self._answer_topups()
        findings = self._settle_and_compare(workers)
        return ChaosResult(
            self.pub.sent, len(self.metering.usage) + len(self.metering.tokens),
            self.load.malformed, findings, self.faults, time.monotonic() - started, self.answers,
        )  # fmt: skip

    def _settle_and_compare(self, workers: Workers) -> Findings:
        """Waits until the store holds every reference event and every dead letter (or time
        runs out), past a few flush intervals for the outboxes, then compares everything."""
        sql = workers.primary.sql
        want = len(self.metering.usage) + len(self.metering.tokens)
        deadline = time.monotonic() + self.opts.catch_up_timeout
        while time.monotonic() < deadline:
            u, t, d = sql(
                "SELECT (SELECT count() FROM usage_events FINAL), "
                "(SELECT count() FROM token_events FINAL), (SELECT count() FROM dlq FINAL)"
            )["rows"][0]
            if int(u) + int(t) >= want and int(d) >= self.load.malformed:
                break
            time.sleep(1)
        time.sleep(5)  # outboxes and window snapshots follow on the flush timer
        boot = self.stack.broker.bootstrap
        outputs = {
            name: read_topic(boot, topic, PARTITIONS)
            for name, topic in (
                ("topups", topics.TOPUPS), ("alerts", topics.ALERTS),
                ("invoices", topics.INVOICES), ("dlq", topics.DLQ),
                ("aggregates", topics.AGGREGATES),
            )
        }  # fmt: skip
        f = Findings()

        def rows(q: str) -> list[list[Any]]:
            return sql(q)["rows"]

        compare_metering(rows, self.metering, f)
        compare_dlq(rows, outputs["dlq"], self.codec, self.load.malformed, f)
        compare_billing(rows, self.billing, outputs, f)
        compare_aggregates(outputs["aggregates"], self.metering, f)
        return f


def run_chaos(opts: ChaosOptions) -> ChaosResult:
    with tempfile.TemporaryDirectory(prefix="meterline-chaos-") as tmp:
        base = opts.work_dir or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        outage = Outage(base / "sink-outage")
        disk = None
        if opts.disk_full:
            # Room for the run's store and then some; filled up only during the fault.
            disk = DiskFull(base / "stack" / "chdb", max(512, opts.records // 200))
            if not disk.mount():
                disk = None
                opts.disk_full = False
        try:
            with EmbeddedStack(base / "stack", partitions=PARTITIONS) as stack:
                chaos = Chaos(opts, stack, outage, disk)
                try:
                    return chaos.run()
                finally:
                    outage.end()
                    chaos.group.close()
        finally:
            if disk is not None:
                disk.free()
                disk.unmount()
