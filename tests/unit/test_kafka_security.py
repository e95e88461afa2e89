"""Kafka security settings reach every client the same way: librdkafka properties for the
confluent-kafka clients, aiokafka credentials for the Faust consumer (table-driven)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import AuthProtocol

from meterline.settings import Settings
from streams.kafka_security import security_config
from streams.runtime.faust_app import broker_credentials

SASL = {"kafka_sasl_username": "meter", "kafka_sasl_password": "s3cret"}
CASES: list[tuple[dict[str, Any], dict[str, str], type | None, AuthProtocol | None]] = [
    ({}, {}, None, None),
    (
        {"kafka_security_protocol": "SSL"},
        {"security.protocol": "ssl"},
        SSLCredentials,
        AuthProtocol.SSL,
    ),
    (
        {"kafka_security_protocol": "SASL_PLAINTEXT", **SASL},
        {
            "security.protocol": "sasl_plaintext",
            "sasl.mechanisms": "PLAIN",
            "sasl.username": "meter",
            "sasl.password": "s3cret",
        },
        SASLCredentials,
        AuthProtocol.SASL_PLAINTEXT,
    ),
    (
        {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "SCRAM-SHA-512", **SASL},
        {
            "security.protocol": "sasl_ssl",
            "sasl.mechanisms": "SCRAM-SHA-512",
            "sasl.username": "meter",
            "sasl.password": "s3cret",
        },
        SASLCredentials,
        AuthProtocol.SASL_SSL,
    ),
]


@pytest.mark.parametrize(("fields", "librdkafka", "faust_type", "protocol"), CASES)
def test_each_protocol_configures_both_clients(
    fields: dict[str, Any],
    librdkafka: dict[str, str],
    faust_type: type | None,
    protocol: AuthProtocol | None,
) -> None:
    settings = Settings(**fields)
    assert security_config(settings) == librdkafka
    creds = broker_credentials(settings)
    if faust_type is None:
        assert creds is None
    else:
        assert isinstance(creds, faust_type) and creds.protocol == protocol


def test_a_ca_file_is_passed_to_librdkafka(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    settings = Settings(kafka_security_protocol="SSL", kafka_ssl_ca_location=ca)
    assert security_config(settings)["ssl.ca.location"] == str(ca)


def test_the_password_never_shows_in_the_settings_repr() -> None:
    assert "s3cret" not in repr(Settings(**SASL))
