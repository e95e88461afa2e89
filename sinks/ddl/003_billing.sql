-- Billing surfaces (DESIGN.md). Every row carries a deterministic id from the account that
-- produced it, and rows are written only once that account state is durable, so a replay after
-- a crash rewrites identical rows that these ReplacingMergeTrees collapse. Read with FINAL.

CREATE TABLE IF NOT EXISTS credit_ledger
(
    entry_id      String,
    seq           UInt64,
    customer_id   String,
    at            DateTime64(3, 'UTC'),
    kind          LowCardinality(String),
    amount        Decimal(38, 12),
    balance_after Decimal(38, 12),
    grant_id      String,
    ref           String
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_id, seq)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS balance_history
(
    customer_id String,
    balance     Decimal(38, 12),
    at          DateTime64(3, 'UTC'),
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (customer_id, version);

-- The latest balance per customer, whatever has or has not merged yet.
CREATE OR REPLACE VIEW balances AS
SELECT customer_id, argMax(balance, version) AS balance, argMax(at, version) AS at
FROM balance_history
GROUP BY customer_id;

CREATE TABLE IF NOT EXISTS invoice_lines
(
    invoice_id   String,
    customer_id  String,
    period_start DateTime64(3, 'UTC'),
    period_end   DateTime64(3, 'UTC'),
    line_no      UInt32,
    kind         LowCardinality(String),
    meter        String,
    quantity     Nullable(Decimal(38, 12)),
    unit_price   Nullable(Decimal(38, 12)),
    amount       Decimal(38, 12)
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_id, invoice_id, line_no);

CREATE TABLE IF NOT EXISTS invoices
(
    invoice_id   String,
    customer_id  String,
    currency     LowCardinality(String),
    kind         LowCardinality(String),
    period_start DateTime64(3, 'UTC'),
    period_end   DateTime64(3, 'UTC'),
    issued_at    DateTime64(3, 'UTC'),
    amount_due   Decimal(38, 12),
    amount_paid  Decimal(38, 12),
    remaining    Decimal(38, 12),
    status       LowCardinality(String),
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (customer_id, invoice_id);

-- Every accepted payment outcome, from any processor, in one shape.
CREATE TABLE IF NOT EXISTS payments
(
    payment_id   String,
    customer_id  String,
    processor    LowCardinality(String),
    status       LowCardinality(String),
    amount       Decimal(38, 12),
    currency     LowCardinality(String),
    pays_kind    LowCardinality(String),
    pays         String,
    failure_code String,
    at           DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_id, payment_id, status);

CREATE TABLE IF NOT EXISTS topups
(
    request_id   String,
    customer_id  String,
    amount       Decimal(38, 12),
    currency     LowCardinality(String),
    requested_at DateTime64(3, 'UTC'),
    attempt      UInt32
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_id, request_id);

CREATE TABLE IF NOT EXISTS alerts
(
    alert_id    String,
    customer_id String,
    kind        LowCardinality(String),
    at          DateTime64(3, 'UTC'),
    ref         String,
    data        Map(String, String)
)
ENGINE = ReplacingMergeTree
ORDER BY (customer_id, alert_id);
