"""Every rejected record goes to ``meterline.dlq`` with its reason and coordinates; nothing is
dropped silently. Sends ride on Faust's producer, which is flushed before offsets commit."""

from __future__ import annotations

import time
from typing import Any

from schemas.codec import Codec
from streams.topics import DLQ

DEAD_LETTER = "meterline.DeadLetter"


class DeadLetters:
    def __init__(self, app: Any, codec: Codec) -> None:
        self._topic = app.topic(DLQ, key_serializer="raw", value_serializer="raw")
        self._codec = codec
        self.count = 0

    async def reject(self, message: Any, reason: str) -> None:
        record = {
            "topic": message.topic,
            "partition": message.partition,
            "offset": message.offset,
            "reason": reason,
            "at": int(time.time() * 1000),
            "key": message.key,
            "payload": message.value if message.value is not None else b"",
        }
        self.count += 1
        await self._topic.send(key=message.key, value=self._codec.encode(DEAD_LETTER, record))
