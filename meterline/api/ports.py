"""What the HTTP API needs from a running worker, as Protocols.

The API reads the worker's live state (pipeline counters, the open billing periods) and its
ClickHouse DSN; depending on these few members rather than on ``streams.app.Runtime`` keeps
``meterline.api`` free of any runtime import of ``streams`` (no import cycle with whoever
registers the API), and lets a test hand it a stand-in. Read-only members are properties so
that a runtime's more specific types (``Settings``, ``UsagePipeline``) satisfy them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import faust

__all__ = [
    "AccountsPort",
    "ApiRuntime",
    "ApiSettings",
    "InvoicePort",
    "OpenAccountPort",
    "PipelineStatsPort",
    "UsagePort",
]


class PipelineStatsPort(Protocol):
    """The usage pipeline's counters: a dataclass (``/health`` reports every field) with at
    least the fields ``/metrics`` exports."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    events_in: int
    counted: int
    duplicates: int
    replayed: int
    late: int
    forwarded: int
    rejected: int
    rows_written: int
    last_flush_ms: int
    process_seconds: float
    checkpoint_seconds: float
    publishes: int
    publish_seconds: float


class DeadLetterCountPort(Protocol):
    @property
    def count(self) -> int: ...  # records sent to meterline.dlq by this worker


class DedupIndexPort(Protocol):
    @property
    def size(self) -> int: ...  # event ids remembered for dedup


class InvoicePort(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class BillingAccountPort(Protocol):
    def preview_invoice(self) -> InvoicePort | None: ...


class OpenAccountPort(Protocol):
    """A customer's live account state as the usage pipeline keeps it."""

    @property
    def account(self) -> BillingAccountPort: ...


class AccountsPort(Protocol):
    def get(self, key: str, /) -> OpenAccountPort | None: ...


class UsagePort(Protocol):
    """The usage pipeline: counters, and the lock under which its state may be read."""

    @property
    def stats(self) -> PipelineStatsPort: ...
    @property
    def dlq(self) -> DeadLetterCountPort: ...
    @property
    def index(self) -> DedupIndexPort: ...
    @property
    def lock(self) -> asyncio.Lock: ...
    @property
    def lock_since(self) -> float: ...  # monotonic time the lock was taken; 0.0 when free
    @property
    def accounts(self) -> AccountsPort: ...


class ApiSettings(Protocol):
    @property
    def clickhouse_dsn(self) -> str: ...


class ApiRuntime(Protocol):
    """What ``register_api`` takes: ``streams.app.Runtime`` is one."""

    @property
    def app(self) -> faust.App: ...
    @property
    def settings(self) -> ApiSettings: ...
    @property
    def usage(self) -> UsagePort: ...
    def consumer_state(self) -> dict[str, Any]: ...  # where consumption stands (diagnostics)
    def free_web_root(self) -> None: ...  # take Faust's own page at "/" away
    def state_store_bytes(self) -> int: ...  # the table store's own memory (RocksDB's)


if TYPE_CHECKING:
    from streams.app import Runtime

    def _runtime_is_an_api_runtime(runtime: Runtime) -> ApiRuntime:
        # Never called: a type checker fails here when Runtime stops satisfying the port.
        return runtime
