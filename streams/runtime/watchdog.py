"""Two alarms for a worker that stops making progress silently.

``stalled_partitions``: input partitions whose records were fetched but never committed while
the pipeline has been idle. Faust 0.15 did this silently after a rebalance (records queued,
then cleared, never re-read); delivery_fix.py fixes that cause, and this opt-in check stays as
a backstop for any other way consumption could stop with work left.

``stuck_report``: a pipeline await that never returns stalls consumption with no error and no
progress; after a minute, say where, loudly, with every task's stack.
"""

from __future__ import annotations

import asyncio
import io
import time

import faust

from streams.runtime.introspection import committed_offsets, fetch_positions

STUCK_AFTER_SECONDS = 60.0


def stalled_partitions(
    app: faust.App,
    inputs: set[str],
    idle_seconds: float,
    last_batch_at: float,
    busy: bool,
) -> list[str]:
    if busy or time.time() - last_batch_at < idle_seconds:
        return []
    try:
        positions = fetch_positions(app)
        committed = committed_offsets(app)
    except AttributeError:  # another Faust/aiokafka layout: nothing we can check
        return []
    behind = []
    for name, position in positions.items():
        topic, partition = name.rsplit("/", 1)
        if topic not in inputs:
            continue
        done = committed.get((topic, int(partition)))
        if position is not None and done is not None and position > done:
            behind.append(f"{name}: fetched to {position}, committed {done}")
    return behind


def stuck_report(held_seconds: float) -> str | None:
    if held_seconds <= STUCK_AFTER_SECONDS:
        return None
    buf = io.StringIO()
    for task in asyncio.all_tasks():
        task.print_stack(limit=40, file=buf)
    return f"usage pipeline stuck for {held_seconds:.0f}s; tasks:\n{buf.getvalue()}"
