"""Topic names: the public contract of DESIGN.md, plus internal topics Meterline owns."""

USAGE = "meterline.usage"
TOKENS = "meterline.tokens"
ACCOUNTS = "meterline.accounts"
PAYMENTS = "meterline.payments"
CATALOG = "meterline.catalog"

AGGREGATES = "meterline.aggregates"
TOPUPS = "meterline.topups"
ALERTS = "meterline.alerts"
INVOICES = "meterline.invoices"
DLQ = "meterline.dlq"

# Events a producer put on a partition other than their customer's home partition are
# forwarded here, to the home partition, so one worker stays the single writer.
USAGE_REHOME = "meterline.internal.usage-rehome"
TOKENS_REHOME = "meterline.internal.tokens-rehome"
ACCOUNTS_REHOME = "meterline.internal.accounts-rehome"
PAYMENTS_REHOME = "meterline.internal.payments-rehome"

INBOUND = [USAGE, TOKENS, ACCOUNTS, PAYMENTS, CATALOG]
OUTBOUND = [AGGREGATES, TOPUPS, ALERTS, INVOICES, DLQ]
INTERNAL = [USAGE_REHOME, TOKENS_REHOME, ACCOUNTS_REHOME, PAYMENTS_REHOME]
ALL = INBOUND + OUTBOUND + INTERNAL

# What each metered input topic carries ("usage", "tokens", "accounts", "payments"), and where
# records of each kind are forwarded to reach their customer's home partition.
KIND_OF = {
    USAGE: "usage",
    USAGE_REHOME: "usage",
    TOKENS: "tokens",
    TOKENS_REHOME: "tokens",
    ACCOUNTS: "accounts",
    ACCOUNTS_REHOME: "accounts",
    PAYMENTS: "payments",
    PAYMENTS_REHOME: "payments",
}
REHOME = {
    "usage": USAGE_REHOME,
    "tokens": TOKENS_REHOME,
    "accounts": ACCOUNTS_REHOME,
    "payments": PAYMENTS_REHOME,
}
REHOMED = frozenset(REHOME.values())
METERED = list(KIND_OF)
