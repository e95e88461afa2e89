"""Writes ``state_before_retention.json`` (test_state_migration.py) with the billing code as it
was before retention, e.g. the package at commit 8e590de:

    mkdir /tmp/before && git archive 8e590de meterline | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before:. .venv/bin/python tests/unit/billing/data/make_state_before_retention.py

A seeded random history of the every-model plan (the op shapes of tests/unit/billing/calls.py),
the state it leaves, then more calls and the effects that code returned for each.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import meterline.billing.account as account_module
from tests.unit.billing.accounts import new_account
from tests.unit.billing.calls import Sent, note, perform, resolve
from tests.unit.billing.helpers import DAY, effects_dict

assert not hasattr(account_module, "ClosingAccount"), "run this against the code before retention"
rng = random.Random(20260101)


def dec(lo: Decimal | int, hi: Decimal | int, places: int) -> Decimal:
    q = Decimal(1).scaleb(-places)
    return (Decimal(rng.randint(int(lo / q), int(hi / q))) * q).quantize(q)


def draw() -> tuple:
    r = rng.random()
    if r < 0.40:
        meter = rng.choice(["llm", "llm", "api", "img", "vol", "pkg"])
        return ("use", meter, rng.randint(0, 700), rng.randint(0, DAY // 2), dec(0, 20, 3))
    if r < 0.70:
        pick = rng.randint(0, 50)
        status = rng.choice(["succeeded"] * 4 + ["failed", "refunded", "canceled"])
        return ("pay", pick, status, dec(0, 40, 2), rng.randint(0, DAY // 4))
    if r < 0.78:
        amount, priority = dec(Decimal("0.01"), 30, 2), rng.randint(-1, 2)
        expires = rng.choice([None, rng.randint(1, 20 * DAY)])
        scope = rng.choice([(), ("img",), ("llm", "api")])
        return ("grant", amount, priority, expires, scope)
    if r < 0.82:
        return ("void", rng.randint(0, 50))
    if r < 0.90:
        return ("tick", rng.randint(0, 10 * DAY))
    if r < 0.92:
        return ("advance",)
    return (rng.choice(["replay", "regrant"]), rng.randint(0, 200))


def main(history: int = 220, after: int = 120, out: Callable[[str], object] | None = None) -> None:
    account, sent, n = new_account(), Sent(), 0
    for _ in range(history):
        call = resolve(account, draw(), n, sent)
        n += 1
        if call is not None:
            note(sent, call, perform(account, call))
    state = json.loads(json.dumps(account.to_dict()))
    steps = []
    for _ in range(after):
        call = resolve(account, draw(), n, sent)
        n += 1
        if call is None:
            continue
        fx = perform(account, call)
        note(sent, call, fx)
        effects = json.loads(json.dumps(effects_dict(fx), default=str))
        steps.append({"call": call.to_dict(), "effects": effects})
    fixture = {
        "about": (
            "An account state written by the billing code before retention (every grant, "
            "payment and invoice kept as a full dict), then calls made after it and the effects "
            "that code returned for them. Written by make_state_before_retention.py."
        ),
        "state": state,
        "after": steps,
    }
    text = json.dumps(fixture, separators=(",", ":"))
    (out or Path(__file__).with_name("state_before_retention.json").write_text)(text)


if __name__ == "__main__":
    main()
