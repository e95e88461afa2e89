"""Every query of the provisioned Grafana dashboard (deploy/grafana) runs on the migrated
schema, so a view renamed or a column dropped breaks this test rather than the analysts'
dashboard. Grafana's macros are replaced by what the ClickHouse plugin expands them to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sinks.client import SharedClient
from tests.integration.clickhouse_fixtures import *  # noqa: F403  (fixtures ch, ch_store, chdb_dsn)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
DASHBOARD = ROOT / "deploy/grafana/dashboards/meterline-overview.json"
PANELS = json.loads(DASHBOARD.read_text())["panels"]


def _expand(sql: str) -> str:
    for column in ("window_start", "at"):
        sql = sql.replace(
            f"$__timeFilter({column})",
            f"{column} >= toDateTime(1767225600) AND {column} <= toDateTime(1769904000)",
        )
    return sql.replace("${customer}", "lora-a")


@pytest.mark.parametrize("panel", PANELS, ids=[p["title"] for p in PANELS])
def test_the_panel_query_runs_on_the_schema(ch: SharedClient, panel: dict) -> None:
    [target] = panel["targets"]
    assert target["datasource"]["uid"] == "meterline-clickhouse"
    ch.query(_expand(target["rawSql"]))


def test_the_datasource_reads_as_the_read_only_user() -> None:
    text = (ROOT / "deploy/grafana/provisioning/datasources/clickhouse.yaml").read_text()
    assert "username: meterline_api" in text and "$CLICKHOUSE_API_PASSWORD" in text
