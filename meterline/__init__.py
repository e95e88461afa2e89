"""Meterline: real-time usage metering and credit billing."""

__version__ = "0.1.0"
