"""What every view shares, handed to the views explicitly rather than through a closure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from faust.web import View
from prometheus_client import CollectorRegistry

from meterline.api.auth import Access, ApiAuth, access_for
from meterline.api.ports import ApiRuntime
from meterline.api.store import AnalyticsStore

__all__ = ["ApiContext", "ApiView"]


@dataclass(frozen=True)
class ApiContext:
    runtime: ApiRuntime  # the worker's live state: pipeline counters, open accounts
    store: AnalyticsStore  # ClickHouse, for everything already written
    registry: CollectorRegistry  # what /metrics exports
    auth: ApiAuth = field(default_factory=ApiAuth)  # who may call what; open by default


class ApiView(View):
    """A Faust view with the API's context as ``self.ctx``.

    Who may call it is checked here, before any handler runs, so no view can forget it:
    ``access`` when a view sets it, else the route policy of meterline/api/auth.py by the
    path the view is mounted at (a ``CUSTOMER`` route is open to admin keys and to keys
    scoped to the ``{customer}`` of the path)."""

    ctx: ClassVar[ApiContext]
    access: ClassVar[Access | None] = None

    @classmethod
    def bound(cls, ctx: ApiContext, name: str | None = None, **attrs: Any) -> type[View]:
        """A subclass carrying ``ctx`` (and ``attrs``) for one app. A fresh class per app,
        because Faust writes the route's name and path onto the class it is given."""
        return type(name or cls.__name__, (cls,), {"ctx": ctx, **attrs})

    async def dispatch(self, request: Any) -> Any:
        customer = (request.match_info or {}).get("customer")
        access = self.access or access_for(self.view_path)
        denial = self.ctx.auth.check(access, request.headers, customer)
        if denial is not None:
            return self.error(denial.status, denial.error, headers=denial.headers)
        return await super().dispatch(request)
