-- TokenEvent schema id 11: input_tokens counts ALL input tokens (cached and cache-written
-- ones included), output_tokens all output (reasoning included); cache_write_tokens and
-- reasoning_tokens are new parts. Rows stored before hold the old semantics (input_tokens
-- without the cached ones): input_includes_cached tells them apart, 0 for every row already
-- stored (a column's default is what old parts read) and 1 for every row written from now on
-- (sinks/tables/raw_events.py), so old rows keep their cost and every surface shows input in
-- the new semantics. No mutation rewrites stored rows: every statement here is idempotent.
--
-- cost = (input - cached - cache_write) x input price + cached x cached-input price
--        + cache_write x cache-write price + output x output price (per million tokens).
ALTER TABLE token_events
    ADD COLUMN IF NOT EXISTS cache_write_tokens UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS reasoning_tokens UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS input_includes_cached UInt8 DEFAULT 0;

ALTER TABLE token_events_by_time
    ADD COLUMN IF NOT EXISTS cache_write_tokens UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS reasoning_tokens UInt64 DEFAULT 0,
    ADD COLUMN IF NOT EXISTS input_includes_cached UInt8 DEFAULT 0;

-- The feed of the time-ordered copy carries the new columns (the copy of rows stored before
-- reads their defaults, as token_events does).
ALTER TABLE token_events_by_time_mv MODIFY QUERY
SELECT customer_id, event_id, model, provider, input_tokens, output_tokens, cached_input_tokens,
       timestamp, dimensions, ingested_at, cache_write_tokens, reasoning_tokens,
       input_includes_cached
FROM token_events;

-- A price without a cache-write price charges cache writes at the input price: the default
-- is what prices stored before read; the writer stores the price in force explicitly.
ALTER TABLE model_prices
    ADD COLUMN IF NOT EXISTS cache_write_per_million Decimal(38, 12) DEFAULT input_per_million;

CREATE OR REPLACE VIEW token_priced AS
SELECT
    t.customer_id AS customer_id,
    t.model AS model,
    t.provider AS provider,
    t.event_id AS event_id,
    t.timestamp AS timestamp,
    if(t.input_includes_cached = 1, t.input_tokens,
       t.input_tokens + t.cached_input_tokens) AS input_tokens,
    t.output_tokens AS output_tokens,
    t.cached_input_tokens AS cached_input_tokens,
    p.effective_from AS price_from,
    CAST(toDecimal128(if(t.input_includes_cached = 1,
                         t.input_tokens - t.cached_input_tokens - t.cache_write_tokens,
                         t.input_tokens), 0) * p.input_per_million
         + toDecimal128(t.output_tokens, 0) * p.output_per_million
         + toDecimal128(t.cached_input_tokens, 0) * p.cached_input_per_million
         + toDecimal128(t.cache_write_tokens, 0) * p.cache_write_per_million
         AS Decimal(38, 18)) / 1000000 AS cost,
    t.cache_write_tokens AS cache_write_tokens,
    t.reasoning_tokens AS reasoning_tokens
FROM token_events AS t FINAL
ASOF LEFT JOIN (SELECT * FROM model_prices FINAL) AS p
    ON t.model = p.model AND t.timestamp >= p.effective_from;

-- Re-created so that tp.* takes the new columns.
CREATE OR REPLACE VIEW token_billed AS
SELECT tp.*, ifNull(mk.rate, toDecimal128(0, 12)) AS markup,
       tp.cost * CAST(1 + ifNull(mk.rate, toDecimal128(0, 12)) AS Decimal(38, 6)) AS billed
FROM (SELECT *, toUInt8(0) AS k FROM token_priced) AS tp
ASOF LEFT JOIN (SELECT * FROM markups FINAL) AS mk
    ON tp.k = mk.k AND tp.timestamp >= mk.effective_from;

-- 004's token_usage_tz with the new pricing; the new columns come last so that positional
-- readers of the old ones are unchanged.
CREATE OR REPLACE VIEW token_usage_tz AS
SELECT customer_id, model, window, window_start,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens,
       sum(cost) AS cost,
       max(markup) AS markup,
       sum(billed) AS billed,
       count() AS events,
       sum(cache_write_tokens) AS cache_write_tokens,
       sum(reasoning_tokens) AS reasoning_tokens
FROM
(
    SELECT tp.*, ifNull(mk.rate, toDecimal128(0, 12)) AS markup,
           tp.cost * CAST(1 + ifNull(mk.rate, toDecimal128(0, 12)) AS Decimal(38, 6)) AS billed
    FROM
    (
        SELECT
            t.customer_id AS customer_id,
            t.model AS model,
            t.window AS window,
            t.window_start AS window_start,
            t.timestamp AS timestamp,
            if(t.input_includes_cached = 1, t.input_tokens,
               t.input_tokens + t.cached_input_tokens) AS input_tokens,
            t.output_tokens AS output_tokens,
            t.cached_input_tokens AS cached_input_tokens,
            t.cache_write_tokens AS cache_write_tokens,
            t.reasoning_tokens AS reasoning_tokens,
            CAST(toDecimal128(if(t.input_includes_cached = 1,
                                 t.input_tokens - t.cached_input_tokens - t.cache_write_tokens,
                                 t.input_tokens), 0) * p.input_per_million
                 + toDecimal128(t.output_tokens, 0) * p.output_per_million
                 + toDecimal128(t.cached_input_tokens, 0) * p.cached_input_per_million
                 + toDecimal128(t.cache_write_tokens, 0) * p.cache_write_per_million
                 AS Decimal(38, 18)) / 1000000 AS cost,
            toUInt8(0) AS k
        FROM
        (
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, cache_write_tokens, reasoning_tokens,
                   input_includes_cached, 'minute' AS window,
                   CAST(toStartOfMinute(timestamp) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events_by_time FINAL
            WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, cache_write_tokens, reasoning_tokens,
                   input_includes_cached, 'minute' AS window,
                   CAST(toStartOfMinute(timestamp) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events FINAL
            WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            SETTINGS defer_partition_pruning_after_final = 0
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, cache_write_tokens, reasoning_tokens,
                   input_includes_cached, 'hour' AS window,
                   CAST(toStartOfHour(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events_by_time FINAL
            WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, cache_write_tokens, reasoning_tokens,
                   input_includes_cached, 'hour' AS window,
                   CAST(toStartOfHour(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events FINAL
            WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            SETTINGS defer_partition_pruning_after_final = 0
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, cache_write_tokens, reasoning_tokens,
                   input_includes_cached, 'day' AS window,
                   CAST(toStartOfDay(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events_by_time FINAL
            WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, cache_write_tokens, reasoning_tokens,
                   input_includes_cached, 'day' AS window,
                   CAST(toStartOfDay(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events FINAL
            WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            SETTINGS defer_partition_pruning_after_final = 0
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, cache_write_tokens, reasoning_tokens,
                   input_includes_cached, 'month' AS window,
                   CAST(CAST(toStartOfMonth(timestamp, {tz:String}),
                             concat('DateTime(''', {tz:String}, ''')')) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events_by_time FINAL
            WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, cache_write_tokens, reasoning_tokens,
                   input_includes_cached, 'month' AS window,
                   CAST(CAST(toStartOfMonth(timestamp, {tz:String}),
                             concat('DateTime(''', {tz:String}, ''')')) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events FINAL
            WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            SETTINGS defer_partition_pruning_after_final = 0
        ) AS t
        ASOF LEFT JOIN (SELECT * FROM model_prices FINAL) AS p
            ON t.model = p.model AND t.timestamp >= p.effective_from
    ) AS tp
    ASOF LEFT JOIN (SELECT * FROM markups FINAL) AS mk
        ON tp.k = mk.k AND tp.timestamp >= mk.effective_from
)
GROUP BY customer_id, model, window, window_start;

CREATE OR REPLACE VIEW token_usage AS
SELECT * FROM token_usage_tz(tz = 'UTC');
