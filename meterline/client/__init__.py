"""Producer client: typed usage and token events to Meterline, every record accounted for.

    from decimal import Decimal
    from meterline.client import MeterlineProducer, UsageEvent, UndeliveredRecords

    with MeterlineProducer("127.0.0.1:9092", batch_size=100) as producer:
        producer.send(UsageEvent(customer_id="acme", meter="api_calls", value=Decimal(1)))
    # leaving the block flushes; UndeliveredRecords names the event ids not acknowledged

See README.md ("Producer client")."""

from meterline.client.delivery import DeliveryReport, UndeliveredRecords
from meterline.client.events import Event, TokenEvent, UsageEvent
from meterline.client.producer import BrokerUnreachable, MeterlineProducer

__all__ = [
    "BrokerUnreachable",
    "DeliveryReport",
    "Event",
    "MeterlineProducer",
    "TokenEvent",
    "UndeliveredRecords",
    "UsageEvent",
]
