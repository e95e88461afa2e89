"""`meterline proxy`: an OpenAI- and Anthropic-compatible pass-through that publishes one
TokenEvent per completed upstream response (see README "Bill your LLM product in 5 minutes").

- ``sse``: splitting an SSE byte stream into events without altering a byte.
- ``usage``: token counts per API shape (genai-prices' extractors), streaming and not.
- ``callers``: who the customer is and which key goes upstream.
- ``gate``: the spend gate (hard cap at a zero balance).
- ``spool`` / ``publisher``: every event is written to a local SQLite spool before the
  response completes and removed only after Kafka's delivery report.
- ``server``: the aiohttp application.
"""
