"""``meterline produce``: JSON lines through the producer client, exit code from what the
broker acknowledged (0 only when it acknowledged every record)."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from meterline.client.delivery import DeliveryReport
from meterline.client.lines import KIND_OF_TOPIC, BadLine, produce_lines
from meterline.client.producer import BrokerUnreachable, MeterlineProducer
from meterline.settings import Settings

__all__ = ["EXIT_BAD_LINE", "EXIT_UNDELIVERED", "run_produce"]

EXIT_UNDELIVERED = 1
EXIT_BAD_LINE = 2
# A record the broker has not acknowledged within this is reported as undelivered, so a
# broker dying mid-run fails the command in seconds, not librdkafka's default 5 minutes.
DELIVERY_TIMEOUT = 8.0
CONNECT_TIMEOUT = 5.0


def _count_records(stream: IO[bytes]) -> int:
    return sum(1 for line in stream if line.strip())


@contextmanager
def _open(file: str) -> Iterator[tuple[IO[bytes], int | None]]:
    """The input as bytes and its size (None for stdin or a pipe: no progress total)."""
    if file == "-":
        yield sys.stdin.buffer, None
        return
    with open(file, "rb") as stream:
        st = os.fstat(stream.fileno())
        yield stream, st.st_size if os.path.isfile(file) else None


def _progress(console: Console, total: int | None) -> Progress:
    # Records/s is of records queued; the final line reports what was acknowledged.
    return Progress(
        TextColumn("[bold]producing[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[records]:,} records, {task.fields[rate]} rec/s"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        # Not for a pipe (no total, and a script reads its own output) nor a non-terminal.
        disable=total is None or not console.is_terminal,
    )


def run_produce(
    settings: Settings, console: Console, topic: str, file: str, as_json: bool, batch: int
) -> int:
    """Publishes ``file`` (JSON lines, ``-`` = stdin) to ``topic``; returns the exit code."""
    if "broker" not in settings.model_fields_set:
        console.print(
            f"[yellow]warning: METERLINE_BROKER is not set; using the default "
            f"{settings.broker}[/] (meterline dev prints its broker's random port: "
            "METERLINE_BROKER=127.0.0.1:<port>)"
        )
    if batch > 1 and topic not in KIND_OF_TOPIC:
        console.print(f"[yellow]--batch applies to {', '.join(KIND_OF_TOPIC)} only; ignored[/]")
    try:
        client = MeterlineProducer(
            settings.broker,
            settings=settings,
            batch_size=max(batch, 1),
            as_json=as_json,
            delivery_timeout=DELIVERY_TIMEOUT,
            connect_timeout=CONNECT_TIMEOUT,
            # librdkafka's connection errors (level 3) would bury the one line that matters;
            # this command reports what was and was not delivered itself.
            config={"log_level": 2},
        )
    except BrokerUnreachable as exc:
        with _open(file) as (stream, _):
            count = _count_records(stream)
        console.print(f"[red]{exc}[/]; nothing was published: {count} records NOT acknowledged")
        return EXIT_UNDELIVERED
    with _open(file) as (stream, size):
        started = time.monotonic()
        with _progress(console, size) as bar:
            task = bar.add_task("produce", total=size, records=0, rate="-")

            def progress(read: int, queued: int) -> None:
                elapsed = time.monotonic() - started
                rate = f"{queued / elapsed:,.0f}" if elapsed > 0 else "-"
                bar.update(task, completed=read, records=queued, rate=rate)

            try:
                produce_lines(client, topic, stream, progress)
            except BadLine as exc:
                report = client.flush(raise_on_failure=False)
                what = (
                    f"of the records before it {report.summary()}; nothing from it on was sent"
                    if report.sent
                    else "nothing was sent"
                )
                console.print(f"[red]{exc}[/]; {what}" + _undelivered_note(report))
                return EXIT_BAD_LINE
        report = client.flush(raise_on_failure=False)
    elapsed = time.monotonic() - started
    if not report.ok:
        first = report.failed[0] if report.failed else None
        detail = f" (first: {first[0]}: {first[1]})" if first else ""
        console.print(
            f"[red]{report.undelivered} of {report.sent} records were NOT acknowledged by the "
            f"broker{detail}[/]; {report.acknowledged} were published to {topic}"
            + _undelivered_note(report)
        )
        return EXIT_UNDELIVERED
    envelopes = f" in {report.messages} messages" if report.messages != report.sent else ""
    # A rate over a fraction of a second of a few records says nothing.
    rate = f", {report.acknowledged / elapsed:,.0f} records/s" if elapsed > 1 else ""
    console.print(
        f"published {report.acknowledged} records to {topic}{envelopes} "
        f"(acknowledged by the broker{rate})"
    )
    return 0


def _undelivered_note(report: DeliveryReport) -> str:
    if not report.undelivered:
        return ""
    ids = report.undelivered_ids
    shown = ", ".join(ids[:5]) + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
    # Resending is safe: the worker counts an event id once.
    return f"\nnot acknowledged: {shown} (safe to resend: events are deduplicated by id)"
