"""Pure billing domain: pricing, credits, auto top-up, payments, invoices, the account aggregate.

Nothing here imports Kafka, Faust or ClickHouse, and nothing reads the wall clock: time is passed
in as epoch milliseconds, ids are derived from inputs and sequence numbers, and every state object
round-trips through plain JSON-able dicts (Decimals as strings) so a Faust table can hold it and a
replay from the same input reproduces the same ledger, requests and invoices. The domain's
invariants, and what an account's state keeps and why, are in README.md here.
"""
