"""Server-sent events, split without altering a byte.

The proxy forwards upstream bytes as they arrive; it only needs to *see* each complete event
(to meter it) and, in one case, to drop one event (the usage chunk it asked OpenAI for on the
client's behalf). So the splitter hands back every complete event as its raw bytes, separator
included: joining what it returns (plus :meth:`SseSplitter.rest`) gives the input back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# An event ends at a blank line; the spec allows CRLF, LF and CR line endings.
_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_LINE = re.compile(rb"\r\n|\n|\r")


@dataclass(frozen=True, slots=True)
class SseEvent:
    raw: bytes  # exactly as received, with its terminating blank line
    event: str  # the `event:` field, "message" when absent (the spec's default)
    data: str  # `data:` lines joined by "\n"


def parse_event(raw: bytes) -> SseEvent:
    name = "message"
    data: list[str] = []
    for line in _LINE.split(raw):
        if not line or line.startswith(b":"):
            continue  # blank line or comment (keep-alive pings are comments)
        field, _, value = line.partition(b":")
        if value.startswith(b" "):
            value = value[1:]
        if field == b"event":
            name = value.decode("utf-8", "replace")
        elif field == b"data":
            data.append(value.decode("utf-8", "replace"))
    return SseEvent(raw, name, "\n".join(data))


class SseSplitter:
    """Feeds chunks, returns the events completed by each chunk."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buf = self._buf + chunk if self._buf else chunk
        events: list[SseEvent] = []
        start = 0
        # A CRLF pair split across chunks could read as "\r" + "\n\n"; scanning from the
        # start of the unfinished event each time (not from the chunk) keeps it whole.
        for m in _END.finditer(buf):
            events.append(parse_event(buf[start : m.end()]))
            start = m.end()
        self._buf = buf[start:]
        return events

    def rest(self) -> bytes:
        """Bytes of an unfinished event (a stream cut mid-event)."""
        rest, self._buf = self._buf, b""
        return rest
