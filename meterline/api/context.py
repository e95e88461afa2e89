"""What every view shares, handed to the views explicitly rather than through a closure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from faust.web import View
from prometheus_client import CollectorRegistry

from meterline.api.ports import ApiRuntime
from meterline.api.store import AnalyticsStore

__all__ = ["ApiContext", "ApiView"]


@dataclass(frozen=True)
class ApiContext:
    runtime: ApiRuntime  # the worker's live state: pipeline counters, open accounts
    store: AnalyticsStore  # ClickHouse, for everything already written
    registry: CollectorRegistry  # what /metrics exports


class ApiView(View):
    """A Faust view with the API's context as ``self.ctx``."""

    ctx: ClassVar[ApiContext]

    @classmethod
    def bound(cls, ctx: ApiContext, name: str | None = None, **attrs: Any) -> type[View]:
        """A subclass carrying ``ctx`` (and ``attrs``) for one app. A fresh class per app,
        because Faust writes the route's name and path onto the class it is given."""
        return type(name or cls.__name__, (cls,), {"ctx": ctx, **attrs})
