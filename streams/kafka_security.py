"""Kafka connection security from the one settings object, for every librdkafka client
(producers, the admin client, the catalog and status consumers). The Faust consumer gets the
same settings as aiokafka credentials (runtime/faust_app.py).

PLAINTEXT (the default, and the embedded broker's) adds nothing, so a config built here is the
bare bootstrap config unless a deployment sets METERLINE_KAFKA_SECURITY_PROTOCOL."""

from __future__ import annotations

from typing import Any

from meterline.settings import Settings, get_settings


def security_config(settings: Settings | None = None) -> dict[str, str]:
    """librdkafka's security properties for the configured protocol."""
    s = settings or get_settings()
    protocol = s.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    conf = {"security.protocol": protocol.lower()}
    if protocol.startswith("SASL_"):
        conf["sasl.mechanisms"] = s.kafka_sasl_mechanism
        conf["sasl.username"] = s.kafka_sasl_username
        conf["sasl.password"] = s.kafka_sasl_password.get_secret_value()
    if protocol.endswith("SSL") and s.kafka_ssl_ca_location is not None:
        conf["ssl.ca.location"] = str(s.kafka_ssl_ca_location)
    return conf


def kafka_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """A librdkafka client config: the bootstrap servers, the security settings, ``extra``."""
    return {"bootstrap.servers": bootstrap, **security_config(), **extra}
