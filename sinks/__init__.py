"""ClickHouse sink: client from DSN (client), versioned DDL (migrate, ddl/), batching writer
(writer) and query helpers (query)."""
