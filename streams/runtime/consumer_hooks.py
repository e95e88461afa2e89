"""Install per-consumer patches on a Faust app's consumer at the moment it is created."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import faust


def on_consumer_created(app: faust.App, mark: str, patch: Callable[[Any], None]) -> None:
    """Run ``patch(consumer)`` once on this app's consumer, now if it exists, else at creation.

    Only this app's consumer is touched (instance attributes, never the Faust classes), and
    a second call with the same ``mark`` is harmless."""

    def patch_once(consumer: Any) -> None:
        if not getattr(consumer, mark, False):
            patch(consumer)
            setattr(consumer, mark, True)

    existing = app._consumer  # type: ignore[attr-defined]
    if existing is not None:
        patch_once(existing)
        return
    if getattr(app, mark, False):
        return
    # The consumer is created lazily when the worker starts; building it here could bind
    # it to the wrong event loop, so patch it at creation instead.
    new_consumer = app._new_consumer

    def _new_consumer() -> Any:
        consumer = new_consumer()
        patch_once(consumer)
        return consumer

    app._new_consumer = _new_consumer  # type: ignore[method-assign]
    setattr(app, mark, True)
