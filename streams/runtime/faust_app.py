"""The Faust app as Meterline configures it: one Settings object in, an app with both
consumer fixes installed out."""

from __future__ import annotations

import ssl

import faust
from faust.auth import SASLCredentials, SSLCredentials

from meterline.settings import Settings
from streams.runtime.delivery_fix import apply_faust_delivery_fix
from streams.runtime.fetch_wait import apply_fetch_max_wait
from streams.runtime.tansu_fix import maybe_apply_tansu_end_offset_fix


def faust_app(settings: Settings) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker=[f"kafka://{h}" for h in settings.broker.split(",")],
        store=settings.state_store,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        datadir=str(settings.data_dir / "faust"),
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=settings.heartbeat_seconds,
        broker_commit_interval=settings.flush_interval_seconds,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        producer_acks=-1,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        key_serializer="raw",
        value_serializer="raw",
        broker_credentials=broker_credentials(settings),
    )
    # Each patches the consumer Faust creates later; every app built here gets them.
    apply_faust_delivery_fix(app)
    apply_fetch_max_wait(app, settings.fetch_max_wait_ms)
    maybe_apply_tansu_end_offset_fix(app, settings)
    return app


def broker_credentials(settings: Settings) -> SASLCredentials | SSLCredentials | None:
    """The Kafka security settings (streams/kafka_security.py) as aiokafka credentials."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    ca = settings.kafka_ssl_ca_location
    context = None
    if protocol.endswith("SSL"):
        context = ssl.create_default_context(cafile=str(ca) if ca is not None else None)
    if protocol == "SSL":
        return SSLCredentials(context)
    if context is None:  # SASL_PLAINTEXT
        return SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            mechanism=settings.kafka_sasl_mechanism,
        )
    return SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        mechanism=settings.kafka_sasl_mechanism,
        ssl_context=context,
    )


def owned_partitions(app: faust.App, topic: str, partitions: int) -> set[int]:
    """Partitions of ``topic`` assigned to this worker (all of them before it has a consumer,
    as in a test that drives the pipeline without a broker)."""
    consumer = getattr(app, "consumer", None)
    if consumer is None:
        return set(range(partitions))
    return {tp.partition for tp in consumer.assignment() if tp.topic == topic}
