"""Full Avro names of the Meterline schemas and the topic each one travels on."""

from __future__ import annotations

NAMESPACE = "meterline"

USAGE_EVENT = "meterline.UsageEvent"
USAGE_EVENT_BATCH = "meterline.UsageEventBatch"
TOKEN_EVENT = "meterline.TokenEvent"
TOKEN_EVENT_BATCH = "meterline.TokenEventBatch"
ACCOUNT_COMMAND = "meterline.AccountCommand"
PAYMENT_OUTCOME = "meterline.PaymentOutcome"
CATALOG_CHANGE = "meterline.CatalogChange"
DEAD_LETTER = "meterline.DeadLetter"

# Used by the TopicNameStrategy-style subjects of ConfluentRegistry; two schemas share a topic
# where a batch envelope and its single-event form are both accepted.
TOPIC_OF: dict[str, str] = {
    USAGE_EVENT: "meterline.usage",
    USAGE_EVENT_BATCH: "meterline.usage",
    TOKEN_EVENT: "meterline.tokens",
    TOKEN_EVENT_BATCH: "meterline.tokens",
    ACCOUNT_COMMAND: "meterline.accounts",
    PAYMENT_OUTCOME: "meterline.payments",
    CATALOG_CHANGE: "meterline.catalog",
    DEAD_LETTER: "meterline.dlq",
}


def full_name(name: str) -> str:
    """``UsageEvent`` and ``meterline.UsageEvent`` both name the same schema."""
    return name if "." in name else f"{NAMESPACE}.{name}"
