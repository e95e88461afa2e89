"""The ceiling the benchmark compares against: a Faust agent that only counts messages.

Run as a child process by the benchmark: `python -m meterline.benchmark_ceiling`; it writes
``{"n": N, "first": t0, "last": t1}`` (wall seconds) to BENCH_OUT once N messages arrived.
With BENCH_MODE=take it consumes as the pipeline does, in ``take_events`` batches."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import faust
import uvloop

from meterline.gc_tuning import tune_gc
from meterline.settings import Settings


def main() -> None:
    n = int(os.environ["BENCH_N"])
    out = Path(os.environ["BENCH_OUT"])
    app = faust.App(
        "bench-ceiling",
        broker=f"kafka://{os.environ['METERLINE_BROKER']}",
        store="memory://",
        broker_session_timeout=6.0,
        broker_heartbeat_interval=1.0,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=os.environ.get("BENCH_DATADIR", "/tmp/bench-ceiling"),
    )
    topic = app.topic(os.environ["BENCH_TOPIC"], key_serializer="raw", value_serializer="raw")
    seen = {"count": 0, "first": 0.0}

    def counted(k: int) -> None:
        if seen["count"] == 0:
            seen["first"] = time.time()
        seen["count"] += k
        if seen["count"] >= n:
            out.write_text(json.dumps({"n": n, "first": seen["first"], "last": time.time()}))

    if os.environ.get("BENCH_MODE") == "take":
        # The pipeline's own way of consuming (take_events), still doing no work: what is
        # left for Meterline once Faust has delivered a batch of single-event messages.
        @app.agent(topic)
        async def count_batches(stream: Any) -> None:
            async for events in stream.take_events(1000, within=0.2):
                counted(len(events))

    else:

        @app.agent(topic)
        async def count(stream: Any) -> None:
            async for _ in stream:
                counted(1)

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # The worker's collector thresholds here too, so the ratio compares Meterline's work
    # with Faust's, not two garbage-collector settings.
    tune_gc(Settings().gc_gen0_threshold)
    faust.Worker(app, loglevel="WARNING", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
