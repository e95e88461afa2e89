"""HTTP ingestion: CloudEvents, Stripe-compatible meter events and AI gateway feeds to
``meterline.usage`` / ``meterline.tokens``, answered only after the broker acknowledged.

    from meterline.ingest import KafkaPublisher, register_ingest
    register_ingest(app, KafkaPublisher.from_settings(settings), settings=settings, host=host)

See the README's "HTTP ingestion" section for routes, mappings and answers."""

from meterline.ingest.publisher import KafkaPublisher, NotAcknowledged, Publisher
from meterline.ingest.routes import IngestConfig, IngestRoutes, register_ingest

__all__ = [
    "IngestConfig",
    "IngestRoutes",
    "KafkaPublisher",
    "NotAcknowledged",
    "Publisher",
    "register_ingest",
]
