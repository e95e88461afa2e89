"""Pure metering domain: meters, window aggregates, event-time windows, the token price book.

Nothing here imports Kafka, Faust or ClickHouse, so every rule is tested without a broker.
"""
