"""Faust behind one door: the Faust app, its customer tables, and every patch of Faust,
aiokafka and Tansu internals live in this package, and nothing outside it touches a private
attribute of either.

The patches (delivery_fix, batch_delivery, tansu_fix, consumer_hooks) and the introspection
helpers were proven against one faust-streaming release by the SIGKILL and backlog tests;
another release may move what they wrap, so importing this package on any other version fails
loudly instead of losing records quietly. An upgrade re-runs those tests and moves the pin.
"""

from __future__ import annotations

import faust

PROVEN_FAUST_VERSION = "0.15.3"

if faust.__version__ != PROVEN_FAUST_VERSION:  # pragma: no cover - guards an upgrade
    raise ImportError(
        f"streams.runtime patches Faust internals proven on faust-streaming "
        f"{PROVEN_FAUST_VERSION}; found {faust.__version__}. Re-run the SIGKILL tests "
        "(tests/integration/test_spine_exactly_once.py) before moving the pin."
    )
