"""A local stand-in for api.openai.com and api.anthropic.com that replays the providers' real
response shapes (taken from their API references: chat.completion / chat.completion.chunk,
the Responses API's response object and streaming events, Anthropic's message and its
message_start … message_stop stream). Used by the integration tests and `meterline
benchmark-proxy`; it never talks to the network, it only answers on 127.0.0.1.

The header ``x-fake-scenario`` picks the usage: ``plain`` (no cache, no reasoning) or
``cached`` (cache reads and reasoning for OpenAI, cache writes and reads for Anthropic);
``x-fake-delay-ms`` spaces the stream's events (a slow stream to disconnect from). Every
request is recorded (path, headers, body) so tests can check what reached the upstream.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from meterline.embedded.tansu import free_port

# Usage objects exactly as each API reports them.
USAGE: dict[str, dict[str, dict[str, Any]]] = {
    "chat": {
        "plain": {
            "prompt_tokens": 1117,
            "completion_tokens": 46,
            "total_tokens": 1163,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "cached": {
            "prompt_tokens": 2006,
            "completion_tokens": 300,
            "total_tokens": 2306,
            "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 192,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
    },
    "responses": {
        "plain": {
            "input_tokens": 36,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 87,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 123,
        },
        "cached": {
            "input_tokens": 2006,
            "input_tokens_details": {"cached_tokens": 1920},
            "output_tokens": 900,
            "output_tokens_details": {"reasoning_tokens": 640},
            "total_tokens": 2906,
        },
    },
    "messages": {
        "plain": {"input_tokens": 25, "output_tokens": 15},
        "cached": {
            "input_tokens": 50,
            "cache_creation_input_tokens": 2051,
            "cache_read_input_tokens": 1800,
            "output_tokens": 503,
        },
    },
}
TEXT = ["Hello", "! How", " can I", " help?"]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeUpstream:
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.completed_streams = 0  # streams written to their last event

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/messages", self._messages)
        return app

    # ------------------------------------------------------------------ running

    def start(self) -> FakeUpstream:
        ready = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            self._runner = web.AppRunner(self.app(), access_log=None)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake upstream did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ handlers

    async def _read(self, request: web.Request) -> tuple[dict[str, Any], str, float]:
        body = await request.read()
        self.received.append(Received(request.path, dict(request.headers), body))
        scenario = request.headers.get("x-fake-scenario", "plain")
        delay = float(request.headers.get("x-fake-delay-ms", "0")) / 1000
        return json.loads(body), scenario, delay

    async def _sse(self, request: web.Request, events: list[bytes], delay: float) -> Any:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await resp.prepare(request)
        for ev in events:
            if delay:
                await asyncio.sleep(delay)
            await resp.write(ev)
        await resp.write_eof()
        self.completed_streams += 1
        return resp

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        req, scenario, delay = await self._read(request)
        rid = f"chatcmpl-fake{next(self._ids):06d}"
        usage = USAGE["chat"][scenario]
        base = {"id": rid, "created": 1741570283, "model": req["model"]}
        if not req.get("stream"):
            message = {"role": "assistant", "content": "".join(TEXT), "refusal": None}
            return web.json_response(
                {
                    **base,
                    "object": "chat.completion",
                    "choices": [
                        {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
                    ],
                    "usage": usage,
                    "service_tier": "default",
                    "system_fingerprint": "fp_fc9f1d7035",
                }
            )
        with_usage = (req.get("stream_options") or {}).get("include_usage") is True
        chunk = {**base, "object": "chat.completion.chunk", "system_fingerprint": "fp_44709d6fcb"}
        deltas = [{"role": "assistant", "content": ""}] + [{"content": t} for t in TEXT]
        out = []
        for i, delta in enumerate([*deltas, {}]):
            finish = "stop" if i == len(deltas) else None
            c = {
                **chunk,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }
            if with_usage:
                c["usage"] = None  # as OpenAI sends it on every chunk but the last
            out.append(b"data: " + json.dumps(c).encode() + b"\n\n")
        if with_usage:
            out.append(b"data: " + json.dumps({**chunk, "choices": [], "usage": usage}).encode())
            out[-1] += b"\n\n"
        out.append(b"data: [DONE]\n\n")
        return await self._sse(request, out, delay)

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        req, scenario, delay = await self._read(request)
        n = next(self._ids)
        rid, mid = f"resp_fake{n:06d}", f"msg_fake{n:06d}"
        text = "".join(TEXT)
        content = {"type": "output_text", "text": text, "annotations": []}
        item = {
            "type": "message",
            "id": mid,
            "status": "completed",
            "role": "assistant",
            "content": [content],
        }
        response: dict[str, Any] = {
            "id": rid,
            "object": "response",
            "created_at": 1741476542,
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "instructions": None,
            "max_output_tokens": None,
            "model": req["model"],
            "output": [item],
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": USAGE["responses"][scenario],
            "user": None,
            "metadata": {},
        }
        if not req.get("stream"):
            return web.json_response(response)
        pending = {**response, "status": "in_progress", "output": [], "usage": None}
        seq = itertools.count()
        empty_item = {**item, "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        at = {"output_index": 0, "item_id": mid, "content_index": 0}
        kinds: list[tuple[str, dict[str, Any]]] = [
            ("response.created", {"response": pending}),
            ("response.in_progress", {"response": pending}),
            ("response.output_item.added", {"output_index": 0, "item": empty_item}),
            ("response.content_part.added", {**at, "part": part}),
            *[("response.output_text.delta", {**at, "delta": t, "logprobs": []}) for t in TEXT],
            ("response.output_text.done", {**at, "text": text, "logprobs": []}),
            ("response.content_part.done", {**at, "part": content}),
            ("response.output_item.done", {"output_index": 0, "item": item}),
            ("response.completed", {"response": response}),
        ]
        out = [_event(k, {"type": k, "sequence_number": next(seq), **d}) for k, d in kinds]
        return await self._sse(request, out, delay)

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        req, scenario, delay = await self._read(request)
        mid = f"msg_fake{next(self._ids):06d}"
        usage = USAGE["messages"][scenario]
        message = {
            "id": mid,
            "type": "message",
            "role": "assistant",
            "model": req["model"],
            "content": [{"type": "text", "text": "".join(TEXT)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if not req.get("stream"):
            return web.json_response(message)
        # message_start reports the input side and a first output token; message_delta the
        # cumulative output (Anthropic's streaming reference).
        start_usage = {**usage, "output_tokens": 1}
        events: list[tuple[str, dict[str, Any]]] = [
            (
                "message_start",
                {"message": {**message, "content": [], "stop_reason": None, "usage": start_usage}},
            ),
            ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
            ("ping", {}),
            *[
                ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": t}})
                for t in TEXT
            ],
            ("content_block_stop", {"index": 0}),
            (
                "message_delta",
                {
                    "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            ),
            ("message_stop", {}),
        ]
        out = [f"event: {k}\ndata: {json.dumps({'type': k, **d})}\n\n".encode() for k, d in events]
        return await self._sse(request, out, delay)


def _event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def main() -> None:
    """`python -m meterline.proxy.fake_upstream PORT`: the fake in a process of its own (the
    benchmark keeps it apart from the load generator and the proxy)."""
    import sys

    import uvloop

    port = int(sys.argv[1])
    uvloop.install()
    web.run_app(
        FakeUpstream(port=port).app(), host="127.0.0.1", port=port, access_log=None, print=None
    )


if __name__ == "__main__":
    main()
