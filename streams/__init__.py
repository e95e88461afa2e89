"""Kafka side: the Faust app, its agents and tables. Thin adapters over meterline's domain."""
