"""Read-only looks inside Faust and aiokafka for the watchdog and the diagnostics page.

Every private attribute is reached here, behind ``AttributeError`` guards, so another layout
degrades to "cannot tell" instead of crashing a worker."""

from __future__ import annotations

from typing import Any

import faust


def _tps(value: Any) -> list[str]:
    return sorted(f"{tp.topic}/{tp.partition}" for tp in (value or ()))


def fetch_positions(app: faust.App) -> dict[str, int | None]:
    """aiokafka's fetch position per assigned partition ("topic/partition" → offset)."""
    aio = app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
    assignment = aio._fetcher._subscriptions.subscription.assignment
    return {
        f"{tp.topic}/{tp.partition}": assignment.state_value(tp).position for tp in aio.assignment()
    }


def committed_offsets(app: faust.App) -> dict[tuple[str, int], int]:
    committed = app.consumer._committed_offset  # type: ignore[attr-defined]
    return {(tp.topic, tp.partition): off for tp, off in committed.items() if off is not None}


def consumer_state(app: faust.App) -> dict[str, Any]:
    """Where consumption stands, for diagnosing a worker that stopped consuming."""
    consumer = app.consumer
    info: dict[str, Any] = {
        "producer_buffer": app.producer.buffer.size,
        "flow_control_active": app.flow_control.is_active(),
        "paused": _tps(getattr(consumer, "_paused_partitions", None)),
        "held_back": _tps(getattr(consumer, "_buffered_partitions", None)),
        "active": _tps(getattr(consumer, "_active_partitions", None)),
        "rebalancing": bool(getattr(app, "rebalancing", False)),
        "in_recovery": app.tables.recovery.in_recovery,
    }
    try:
        aio = consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
        info["aiokafka_paused"] = _tps(aio.paused())
        info["positions"] = fetch_positions(app)
    except Exception as exc:  # diagnostics must not fail the page
        info["aiokafka_error"] = repr(exc)
    return info


def disable_faust_index(app: faust.App) -> None:
    """Faust mounts its own ``{"status": "OK"}`` page at ``/`` when the server starts; aiohttp
    refuses a second GET route there and the worker would die at start, so that blueprint
    is dropped here, before the server applies it."""
    blueprints = app.web.blueprints
    blueprints._enabled = [  # type: ignore[attr-defined]
        (prefix, bp)
        for prefix, bp in blueprints._enabled  # type: ignore[attr-defined]
        if bp != "faust.web.apps.production_index:blueprint"
    ]


def faust_index_enabled(app: faust.App) -> bool:
    enabled = app.web.blueprints._enabled  # type: ignore[attr-defined]
    return any(bp == "faust.web.apps.production_index:blueprint" for _, bp in enabled)
