"""A minimal Faust worker for the Tansu end-offset test: counts the records of one topic in a
table, so a restart shows whether recovery from the changelog kept every update.

Run as ``python faust_counter_app.py worker``. Configured through ``METERLINE_*`` variables
(the project's Settings, so ``METERLINE_BROKER_IS_TANSU`` switches the fix exactly as in the
real worker) plus ``COUNTER_TOPIC``.
"""

from __future__ import annotations

import os
from typing import Any

import faust

from meterline.settings import Settings
from streams.runtime.tansu_fix import maybe_apply_tansu_end_offset_fix

settings = Settings()
topic_name = os.environ["COUNTER_TOPIC"]

app = faust.App(
    settings.app_id,
    broker=[f"kafka://{h}" for h in settings.broker.split(",")],
    store="memory://",
    topic_partitions=settings.partitions,
    topic_replication_factor=1,
    datadir=str(settings.data_dir),
    broker_session_timeout=settings.session_timeout_seconds,
    broker_heartbeat_interval=settings.heartbeat_seconds,
    consumer_auto_offset_reset="earliest",
    # Without a linger the last changelog write is sometimes sent alone, and Tansu reports
    # a one-record last batch correctly; with it, the final burst of table writes always
    # shares a batch, as on a busy worker, so the test meets the bug every run.
    producer_linger=0.05,
    web_bind=settings.web_host,
    web_host=settings.web_host,
    web_port=settings.web_port,
    key_serializer="raw",
    value_serializer="raw",
)
fix_applied = maybe_apply_tansu_end_offset_fix(app, settings)

recovered = False


class CountTable(faust.Table):
    def partition_for_key(self, key: Any) -> int:
        # Key "p<N>" counts source partition N and lives in changelog partition N. Explicit,
        # because Faust cannot tell the event's partition inside a take_events batch.
        return int(str(key)[1:])

    async def on_recovery_completed(self, active_tps: Any, standby_tps: Any) -> None:
        global recovered
        await super().on_recovery_completed(active_tps, standby_tps)
        recovered = True


counts = app.tables.add(
    CountTable(
        app,
        name="counts",
        beacon=app.tables.beacon,
        partitions=settings.partitions,
        key_type=str,
        value_type=int,
        default=int,
    )
)
source = app.topic(topic_name, partitions=settings.partitions)


@app.agent(source)
async def count(stream: Any) -> None:
    # Batches, as the real pipeline does: the burst of table writes per batch lands in
    # multi-record changelog batches, the shape that makes Tansu's end offset short.
    async for events in stream.take_events(500, within=0.2):
        for event in events:
            counts[f"p{event.message.partition}"] += 1


@app.page("/counts/")
async def show_counts(web: Any, request: Any) -> Any:
    return web.json(
        {
            "recovered": recovered,
            "fix_applied": fix_applied,
            "counts": {k: counts[k] for k in sorted(counts.keys())},
        }
    )


if __name__ == "__main__":
    app.main()
