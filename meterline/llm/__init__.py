"""LLM token pricing tools: `meterline prices sync` (genai-prices snapshot → price book)."""
