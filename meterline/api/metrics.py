"""The Prometheus collector behind ``GET /metrics``: the usage pipeline's counters, read at
scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from meterline.api.ports import UsagePort

__all__ = ["COUNTERS", "PipelineCollector", "pipeline_registry"]

# PipelineStats fields exported as meterline_usage_<name>.
COUNTERS = (
    "events_in",
    "counted",
    "duplicates",
    "replayed",
    "late",
    "forwarded",
    "rejected",
    "rows_written",
    "process_seconds",
    "checkpoint_seconds",
    "publishes",
    "publish_seconds",
)


class PipelineCollector:
    def __init__(self, usage: UsagePort) -> None:
        self.usage = usage

    def collect(self) -> Iterator[Metric]:
        stats = self.usage.stats
        for name in COUNTERS:
            c = CounterMetricFamily(f"meterline_usage_{name}", f"usage pipeline: {name}")
            c.add_metric([], getattr(stats, name))
            yield c
        d = CounterMetricFamily("meterline_dlq_sent", "records sent to meterline.dlq")
        d.add_metric([], self.usage.dlq.count)
        yield d
        g = GaugeMetricFamily("meterline_dedup_ids", "event ids remembered for dedup")
        g.add_metric([], self.usage.index.size)
        yield g
        f = GaugeMetricFamily(
            "meterline_last_flush_timestamp_seconds", "wall clock of the last ClickHouse write"
        )
        f.add_metric([], stats.last_flush_ms / 1000)
        yield f


def pipeline_registry(usage: UsagePort) -> CollectorRegistry:
    """A registry of its own per worker, so two runtimes in one process (tests) never clash in
    prometheus_client's global one."""
    registry = CollectorRegistry()
    registry.register(PipelineCollector(usage))  # type: ignore[arg-type]
    return registry
