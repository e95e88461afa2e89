"""The one settings object. Every process (worker, CLI, tests, compose) reads it from
environment variables prefixed ``METERLINE_`` (or a ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# A worker that exits with this code stalled and asks its supervisor for a restart
# (EX_TEMPFAIL); see stall_exit_seconds.
STALL_EXIT_CODE = 75


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="METERLINE_", env_file=".env", extra="ignore")

    # Kafka bootstrap, e.g. "127.0.0.1:9092" or "kafka1:9092,kafka2:9092".
    broker: str = "127.0.0.1:9092"
    # True when the broker is the embedded Tansu: turns on the scoped end-offset fix.
    broker_is_tansu: bool = False
    # Kafka security for every client (streams/kafka_security.py): PLAINTEXT, SSL,
    # SASL_PLAINTEXT or SASL_SSL; the SASL mechanism and credentials; a CA file for TLS.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_ca_location: Path | None = None
    # clickhouse-connect DSN: chdb:///path (embedded) or http(s)://user:pass@host:8123/db;
    # TLS and credentials go in the DSN (https://user:pass@host:8443/db?ca_cert=/ca.pem).
    clickhouse_dsn: str = "chdb:.meterline/chdb"
    # Confluent Schema Registry URL; empty means the built-in file registry.
    schema_registry_url: str = ""

    app_id: str = "meterline"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    data_dir: Path = Path(".meterline")

    web_host: str = "127.0.0.1"
    web_port: int = 6066
    # Worker HTTP API keys, stored as digests (meterline/api/keys.py; `meterline keys create`):
    # "sha256:<hex> admin" or "sha256:<hex> customer:<id>" entries, comma or newline separated,
    # inline and/or in a file. None configured: the API is open, allowed on loopback only.
    api_keys: str = ""
    api_keys_file: Path | None = None
    # /metrics: open (Prometheus scrapers without a key) or admin key only.
    api_metrics_require_key: bool = False
    # The key the CLI sends to the worker API (client side; plain, like any credential).
    api_key: SecretStr = SecretStr("")
    # The ClickHouse the HTTP API reads through (a read-only user in docker-compose; empty =
    # clickhouse_dsn), and the limits profile of POST /sql on it (sinks/readonly_sql.py).
    api_clickhouse_dsn: str = ""
    sql_max_result_rows: int = Field(default=100_000, ge=1)
    sql_max_result_bytes: int = Field(default=100_000_000, ge=1)
    sql_max_execution_time: int = Field(default=30, ge=1)
    sql_max_rows_to_read: int = Field(default=1_000_000_000, ge=1)
    sql_max_memory_usage: int = Field(default=1_000_000_000, ge=1)
    # Test and maintenance only (the embedded stack sets it): POST /sql?mode=write runs a
    # statement on a writable connection. Honoured only by a keyless API on loopback.
    sql_allow_writes: bool = False

    # HTTP ingestion (`meterline ingest`, and the same routes mounted by `meterline proxy`).
    ingest_host: str = "127.0.0.1"
    ingest_port: int = Field(default=8788, ge=0)
    # Keys of the ingestion endpoints, JSON: {"<key>": "*"} may publish for any customer,
    # {"<key>": "<customer_id>"} only for that customer. Required when listening beyond
    # loopback; when set, required on loopback too.
    ingest_keys: dict[str, str] = Field(default_factory=dict)
    # A request is answered 503 when the broker has not acknowledged all of it by then.
    ingest_ack_timeout_seconds: float = Field(default=10.0, gt=0)
    ingest_max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    # Helicone's webhook HMAC key: when set, /v1/feeds/helicone checks Helicone-Signature
    # instead of an ingest key (Helicone cannot send custom headers).
    helicone_webhook_secret: str = ""

    # Late events within grace update the open window; past grace they become corrections.
    grace_seconds: int = Field(default=300, ge=0)
    dedup_horizon_days: int = Field(default=35, ge=1)
    # Events further than this ahead of the wall clock are rejected (clock skew guard).
    max_future_seconds: int = Field(default=300, ge=0)
    # Events older than this are rejected: the dedup horizon cannot vouch for them.
    max_past_days: int = Field(default=35, ge=1)

    # Consumer batch: how many records the agent takes at once, and how long it waits.
    batch_max: int = Field(default=2000, ge=1)
    batch_within_seconds: float = Field(default=0.2, gt=0)
    # How often state is made durable and ClickHouse is written (and offsets committed).
    flush_interval_seconds: float = Field(default=1.0, gt=0)
    # Opt-in: a worker idle this long while fetched input stays uncommitted is taken to have
    # stalled (see streams/runtime/watchdog.py) and exits so that its supervisor
    # restarts it. Off by default: a commit held back for another reason looks the same.
    stall_exit_seconds: float = Field(default=0.0, ge=0)
    # Longest a consumer fetch waits on the broker (streams/runtime/fetch_wait.py).
    fetch_max_wait_ms: int = Field(default=100, ge=1)
    # Messages Faust buffers per agent before it stops fetching (back-pressure).
    stream_buffer_maxsize: int = Field(default=4096, ge=16)

    # How long an account keeps a payment after its last outcome (refunds, disputes, late
    # repeats); settled history older than this lives only in ClickHouse.
    payment_retention_days: int = Field(default=120, ge=1)

    # Lets wall-clock time reach accounts with no input (period close, due top-up retries);
    # 0 turns it off (tests replaying simulated history).
    billing_tick_seconds: float = Field(default=60.0, ge=0)

    # Faust's table store. memory:// rebuilds state from the changelog at every start (the
    # embedded stack: small, and its broker keeps no data across restarts anyway);
    # rocksdb:// (rocksdict) keeps state on local disk beside data_dir, so a restarted worker
    # reads only the changelog written since its last run: the production setting.
    state_store: str = "memory://"
    # RocksDB's memory for the whole worker (every table and partition's database, and the
    # dedup index): one block cache, and one budget for all memtables (each at most the
    # write buffer size, two per database). Faust's defaults (3 × 64 MiB memtables and a
    # 2 GiB cache, each per database) let a worker's RSS climb for hours.
    rocksdb_write_buffer_mib: int = Field(default=4, ge=1)
    rocksdb_block_cache_mib: int = Field(default=32, ge=1)
    rocksdb_memtables_mib: int = Field(default=32, ge=1)

    # The worker's first garbage-collector threshold (meterline/gc_tuning.py): allocations
    # between young collections. The default lets a batch's short-lived objects be freed by
    # reference counting without a collector pass every few dozen events; 0 = CPython's 700.
    gc_gen0_threshold: int = Field(default=50_000, ge=0)

    catalog_file: Path | None = None
    session_timeout_seconds: float = 6.0
    heartbeat_seconds: float = 1.0

    # LLM proxy (`meterline proxy`, meterline/proxy/). It listens on loopback unless told
    # otherwise, and refuses to listen beyond it without proxy_keys.
    proxy_host: str = "127.0.0.1"
    proxy_port: int = 8787
    # Meterline key → customer id, JSON: METERLINE_PROXY_KEYS='{"ml_key_1": "lora-a"}'. The
    # SDK sends it as its api key (or X-Meterline-Key beside the client's provider key).
    proxy_keys: dict[str, str] = Field(default_factory=dict)
    # Honour X-Meterline-Customer from loopback callers (a trusted sidecar/internal service).
    proxy_trust_customer_header: bool = False
    # Upstreams (the proxy forwards the request path, /v1/..., under these).
    proxy_openai_url: str = "https://api.openai.com"
    proxy_anthropic_url: str = "https://api.anthropic.com"
    # Provider keys sent upstream; empty = the client's own key is passed through.
    proxy_openai_api_key: SecretStr = SecretStr("")
    proxy_anthropic_api_key: SecretStr = SecretStr("")
    # Spend gate: customers refused (402) at a balance ≤ 0 with no top-up pending; "*" = all.
    proxy_spend_gate: list[str] = Field(default_factory=list)
    # How long a balance read from the worker API is reused.
    proxy_balance_ttl_seconds: float = Field(default=5.0, ge=0)
    # The worker API the gate reads; empty = http://{web_host}:{web_port}.
    proxy_worker_url: str = ""
    proxy_worker_api_key: SecretStr = SecretStr("")
    # Durable spool of token events not yet acknowledged by Kafka; empty = data_dir/proxy.
    proxy_spool_dir: Path | None = None
    # fsync every spool commit (survives power loss); false: survives a proxy crash only.
    proxy_spool_fsync: bool = True
    # How long librdkafka tries one send before its report says failed; the event stays
    # spooled and is sent again (a failed send also renews a producer the broker fenced).
    proxy_delivery_timeout_seconds: float = Field(default=15.0, gt=0)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
