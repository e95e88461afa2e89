"""The one settings object. Every process (worker, CLI, tests, compose) reads it from
environment variables prefixed ``METERLINE_`` (or a ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
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
    # clickhouse-connect DSN: chdb:///path (embedded) or http(s)://user:pass@host:8123/db.
    clickhouse_dsn: str = "chdb:.meterline/chdb"
    # Confluent Schema Registry URL; empty means the built-in file registry.
    schema_registry_url: str = ""

    app_id: str = "meterline"
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    data_dir: Path = Path(".meterline")

    web_host: str = "127.0.0.1"
    web_port: int = 6066

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

    catalog_file: Path | None = None
    session_timeout_seconds: float = 6.0
    heartbeat_seconds: float = 1.0


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
