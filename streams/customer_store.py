"""The processor's state, kept in Faust tables keyed by customer (each table's changelog
partition is the customer's home partition, so a customer's state has one writer):
``usage-state`` (UsageState), ``usage-seen`` (dedup chunks, one per customer per batch) and
``account-state`` (AccountState) and ``usage-raw`` (each step's counted raw events until they
are stored in ClickHouse, under the key of that step's chunk). The in-memory dedup index is
derived from the chunks and rebuilt after every (re)assignment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from meterline.metering.dedup import Chunk, SeenIds
from meterline.metering.usage_state import RecoveryMark, UsageState
from meterline.processor.account_state import AccountState
from meterline.processor.customer import CustomerState
from meterline.processor.raw_batch import RawBatch
from streams.runtime.tables import account_headers, json_values, usage_marks


class CustomerStore:
    def __init__(
        self,
        states: Any,
        chunks: Any,
        accounts: Any,
        raw: Any,
        dedup: SeenIds,
        home: Callable[[str], int],
        owned: Callable[[], set[int]],
    ) -> None:
        self.states = states
        self.chunks = chunks
        self.accounts = accounts
        self.raw = raw
        self.dedup = dedup
        self.home = home
        self.owned = owned
        # customer → when its account is next due (None: nothing timed ahead), for the
        # owned partitions; rebuilt by recover_accounts, kept by put_account.
        self._due: dict[str, int | None] = {}

    def load(self, customer: str) -> CustomerState:
        usage = self.states.get(customer)
        if usage is None:
            usage = UsageState(customer_id=customer)
        return CustomerState(usage, self.accounts.get(customer))

    def usage(self, customer: str) -> UsageState | None:
        return self.states.get(customer)

    def account(self, customer: str) -> AccountState | None:
        return self.accounts.get(customer)

    def put_usage(self, state: UsageState) -> None:
        state.version += 1
        self.states[state.customer_id] = state

    def put_account(self, account: AccountState) -> None:
        account.version += 1
        self.accounts[account.customer_id] = account
        self._due[account.customer_id] = account.next_due_at()

    def put_chunk(self, chunk: Chunk) -> None:
        self.chunks[chunk.key] = chunk.to_dict()

    def drop_chunk(self, key: str) -> None:
        self.chunks.pop(key, None)

    def put_raw(self, key: str, batch: RawBatch) -> None:
        self.raw[key] = batch

    def drop_raw(self, key: str) -> None:
        self.raw.pop(key, None)

    def owned_raw(self) -> dict[str, RawBatch]:
        owned = self.owned()
        return {
            k: v
            for k, v in self.raw.items()
            if v is not None and self.home(k.rsplit("#", 1)[0]) in owned
        }

    def usage_marks(self) -> Iterator[tuple[str, RecoveryMark]]:
        """Recovery marks of the owned customers' usage states (states are not decoded)."""
        owned = self.owned()
        for customer, mark in usage_marks(self.states):
            if self.home(customer) in owned:
                yield customer, mark

    def recover_accounts(self) -> set[str]:
        """After (re)assignment: rebuilds the due index from the records' headers and
        returns the owned customers whose account has an outbox to publish."""
        owned = self.owned()
        self._due = {}
        outboxes = set()
        for customer, header in account_headers(self.accounts):
            if self.home(customer) not in owned:
                continue
            self._due[customer] = AccountState.header_due(header)
            if AccountState.header_has_outbox(header):
                outboxes.add(customer)
        return outboxes

    def due_accounts(self, now_ms: int) -> Iterator[AccountState]:
        """Owned accounts a tick at ``now_ms`` may change, found in the due index: a tick
        decodes nothing of the others, however many there are."""
        owned = self.owned()
        for customer, due in list(self._due.items()):
            if due is not None and due <= now_ms and self.home(customer) in owned:
                account = self.accounts.get(customer)
                if account is not None and account.due(now_ms):
                    yield account

    def rebuild_dedup(self) -> None:
        """After (re)assignment the table holds the recovered truth; the index in memory may
        not."""
        self.dedup.clear()
        chunks = sorted(
            (Chunk.from_dict(k, v) for k, v in json_values(self.chunks)),
            key=lambda c: (c.customer_id, int(c.key.rsplit("#", 1)[1])),
        )
        for chunk in chunks:
            self.dedup.add(chunk)
