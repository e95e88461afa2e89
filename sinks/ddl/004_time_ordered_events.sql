-- Time-range analytics that stay fast as history grows.
--
-- usage_events and token_events are sorted by (customer_id, event_id), their idempotency key,
-- and the 002 views rolled every event up through arrayJoin, which no filter on window_start
-- gets past: a dashboard query for today read all history. The raw tables stay as they are
-- (the writer, insert dedup and FINAL semantics are untouched); this file adds
--
-- * usage_events_by_time / token_events_by_time: the current and previous month of the raw
--   rows again, sorted by UTC day first, fed by a materialized view on every insert into the
--   raw table (back-filled once here) and emptied month by month by a TTL.
-- * usage_windows_tz / token_usage_tz rewritten with the same names, columns, types and
--   values. Each event comes from exactly one place: the copy from the start of the previous
--   month (UTC) on, the raw table before it. A month boundary is a partition boundary of both,
--   so a time filter drops whole partitions of the raw table, and within the copy a minmax
--   index on timestamp drops granules. One customer's older months stay one contiguous range
--   of the raw table. The windows come from a UNION ALL per window size (not arrayJoin), so
--   `window = ...` leaves one branch and `window_start` reaches that branch's scan; meters and
--   prices are still joined at query time, once, after the union.
--
-- Why a copy and not re-sorting the raw tables: a rebuild (new table, INSERT ... SELECT,
-- EXCHANGE) loses rows another worker inserts while it copies, and a re-run of a half-done
-- EXCHANGE swaps the tables back. Every statement here is safe to re-run and to run while
-- workers insert: the feed exists before the back-fill, so a row inserted meanwhile arrives
-- twice at most, and duplicates collapse under FINAL like any replayed insert.
-- Why not a projection sorted by time: ClickHouse does not use projections with FINAL, and
-- deduplicating without FINAL (GROUP BY, DISTINCT) cost 8x a FINAL read for a day of events.
-- Why not pre-aggregated minute states: at dashboard densities a (customer, meter, dimensions,
-- minute or hour) group holds about one event, so states save nothing, and a state fed by
-- inserts would count a replayed insert twice.
--
-- Dedup: an event re-inserted after a crash (same event, same timestamp) collapses under FINAL
-- in the copy as in the raw table, and a retried insert that the raw table drops as a
-- duplicate block still reaches the copy (deduplicate_blocks_in_dependent_materialized_views,
-- on by default in ClickHouse 26.x). The one case that differs from 002 is an event_id stored
-- twice with two *different* timestamps, which the worker writes only when an id comes back
-- after its dedup horizon: the worker then counts it twice, the 002 views once (FINAL kept the
-- later row, in any month), these views once or twice depending on where the two rows fall.

CREATE TABLE IF NOT EXISTS usage_events_by_time
(
    customer_id String,
    event_id    String,
    meter       LowCardinality(String),
    value       Decimal(38, 12),
    timestamp   DateTime64(3, 'UTC'),
    dimensions  Map(String, String),
    ingested_at DateTime64(3, 'UTC'),
    -- Any window_start below is a monotonic function of timestamp, so this index drops the
    -- granules outside a window_start range. 32 granules (16,384 rows) an entry: planning
    -- evaluates each entry, and a finer index cost more to plan than it saved in reading.
    INDEX timestamp_minmax timestamp TYPE minmax GRANULARITY 32
)
ENGINE = ReplacingMergeTree
-- Monthly, as the raw table: the views split the two at a month start, and a batch of late
-- events stays far below max_partitions_per_insert_block.
PARTITION BY toYYYYMM(timestamp)
-- Day first: granules hold one day, so the minmax index prunes; customer second: one
-- customer's rows of a day are one range of the primary key.
ORDER BY (toDate(timestamp), customer_id, event_id)
-- The views read a month from the start of the previous one: a month older than that is
-- never read here again (a month of margin).
TTL toStartOfMonth(timestamp) + INTERVAL 3 MONTH
-- Small granules and compression blocks: one customer's month reads a granule per day.
SETTINGS index_granularity = 512, min_compress_block_size = 8192,
         max_compress_block_size = 65536, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS usage_events_by_time_mv TO usage_events_by_time AS
SELECT customer_id, event_id, meter, value, timestamp, dimensions, ingested_at
FROM usage_events;

-- After the feed exists, so nothing inserted in between is missed. From the start of the
-- previous month: the earliest any view will read from the copy from now on.
INSERT INTO usage_events_by_time
SELECT customer_id, event_id, meter, value, timestamp, dimensions, ingested_at
FROM usage_events
WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC');

CREATE TABLE IF NOT EXISTS token_events_by_time
(
    customer_id         String,
    event_id            String,
    model               LowCardinality(String),
    provider            LowCardinality(String),
    input_tokens        UInt64,
    output_tokens       UInt64,
    cached_input_tokens UInt64,
    timestamp           DateTime64(3, 'UTC'),
    dimensions          Map(String, String),
    ingested_at         DateTime64(3, 'UTC'),
    INDEX timestamp_minmax timestamp TYPE minmax GRANULARITY 32
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (toDate(timestamp), customer_id, event_id)
TTL toStartOfMonth(timestamp) + INTERVAL 3 MONTH
SETTINGS index_granularity = 512, min_compress_block_size = 8192,
         max_compress_block_size = 65536, ttl_only_drop_parts = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS token_events_by_time_mv TO token_events_by_time AS
SELECT customer_id, event_id, model, provider, input_tokens, output_tokens, cached_input_tokens,
       timestamp, dimensions, ingested_at
FROM token_events;

INSERT INTO token_events_by_time
SELECT customer_id, event_id, model, provider, input_tokens, output_tokens, cached_input_tokens,
       timestamp, dimensions, ingested_at
FROM token_events
WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC');

-- The views below list each event once per window size, with the start of its window in zone
-- tz, from two places split at the start of the previous month (UTC):
--
-- * the copy from then on (its TTL keeps that month, the current one and one more), and
-- * the raw table before then, read with defer_partition_pruning_after_final = 0 so that a
--   time filter drops its partitions despite FINAL. ClickHouse defers that by default because
--   FINAL may collapse a row with one of the same key in another partition, which pruning
--   would leave out: here only the id stored twice above.
--
-- Window starts are CAST chains, not toDateTime64 / toDateTime(date, tz), which ClickHouse
-- does not see as monotonic: so a filter on window_start is a filter on timestamp that the
-- minmax indexes can use. They equal the 002 expressions: minutes are UTC minutes in every
-- zone, a month starts at midnight of the 1st in tz. The metering expressions are those of
-- usage_metered (keep the two in step), with each aggregate computed only for the groups of
-- its kind, as the result is the same and a day of events is mostly one-event groups.
-- Everything is inlined: nested views cost a planning pass each, per branch.
CREATE OR REPLACE VIEW usage_windows_tz AS
SELECT customer_id, meter, dimensions, window, window_start,
       ifNull(multiIf(
           aggregation = 'count', toDecimal128(count(), 12),
           aggregation = 'unique_count',
               toDecimal128(uniqExactIf(uniq, aggregation = 'unique_count'), 12),
           aggregation = 'min', minIf(num, aggregation = 'min'),
           aggregation = 'max', maxIf(num, aggregation = 'max'),
           aggregation = 'latest',
               argMaxIf(num, (timestamp, event_id), aggregation = 'latest'),
           sum(num)), toDecimal128(0, 12)) AS value,
       count() AS events,
       aggregation
FROM
(
    SELECT
        e.customer_id AS customer_id,
        e.meter AS meter,
        e.event_id AS event_id,
        e.timestamp AS timestamp,
        e.window AS window,
        e.window_start AS window_start,
        if(m.code = '', 'sum', m.aggregation) AS aggregation,
        if(empty(m.group_by), map(), mapFilter((k, v) -> has(m.group_by, k), e.dimensions))
            AS dimensions,
        if(m.code = '' OR m.value_field = 'value', CAST(e.value AS Nullable(Decimal(38, 12))),
           toDecimal128OrNull(e.dimensions[m.value_field], 12)) AS num,
        if(m.aggregation != 'unique_count', NULL,
           if(m.value_field = 'value', toString(e.value),
              if(mapContains(e.dimensions, m.value_field), e.dimensions[m.value_field], NULL)))
            AS uniq
    FROM
    (
        SELECT customer_id, event_id, meter, value, timestamp, dimensions, 'minute' AS window,
               CAST(toStartOfMinute(timestamp) AS DateTime64(3, 'UTC'))
                   AS window_start
        FROM usage_events_by_time FINAL
        WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
        UNION ALL
        SELECT customer_id, event_id, meter, value, timestamp, dimensions, 'minute' AS window,
               CAST(toStartOfMinute(timestamp) AS DateTime64(3, 'UTC'))
                   AS window_start
        FROM usage_events FINAL
        WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
        SETTINGS defer_partition_pruning_after_final = 0
        UNION ALL
        SELECT customer_id, event_id, meter, value, timestamp, dimensions, 'hour' AS window,
               CAST(toStartOfHour(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                   AS window_start
        FROM usage_events_by_time FINAL
        WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
        UNION ALL
        SELECT customer_id, event_id, meter, value, timestamp, dimensions, 'hour' AS window,
               CAST(toStartOfHour(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                   AS window_start
        FROM usage_events FINAL
        WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
        SETTINGS defer_partition_pruning_after_final = 0
        UNION ALL
        SELECT customer_id, event_id, meter, value, timestamp, dimensions, 'day' AS window,
               CAST(toStartOfDay(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                   AS window_start
        FROM usage_events_by_time FINAL
        WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
        UNION ALL
        SELECT customer_id, event_id, meter, value, timestamp, dimensions, 'day' AS window,
               CAST(toStartOfDay(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                   AS window_start
        FROM usage_events FINAL
        WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
        SETTINGS defer_partition_pruning_after_final = 0
        UNION ALL
        SELECT customer_id, event_id, meter, value, timestamp, dimensions, 'month' AS window,
               CAST(CAST(toStartOfMonth(timestamp, {tz:String}),
                         concat('DateTime(''', {tz:String}, ''')')) AS DateTime64(3, 'UTC'))
                   AS window_start
        FROM usage_events_by_time FINAL
        WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
        UNION ALL
        SELECT customer_id, event_id, meter, value, timestamp, dimensions, 'month' AS window,
               CAST(CAST(toStartOfMonth(timestamp, {tz:String}),
                         concat('DateTime(''', {tz:String}, ''')')) AS DateTime64(3, 'UTC'))
                   AS window_start
        FROM usage_events FINAL
        WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
        SETTINGS defer_partition_pruning_after_final = 0
    ) AS e
    LEFT JOIN (SELECT * FROM meters FINAL WHERE deleted = 0) AS m ON e.meter = m.code
)
GROUP BY customer_id, meter, dimensions, window, window_start, aggregation;

-- As usage_windows_tz, with the pricing of token_priced and token_billed (keep them in step).
CREATE OR REPLACE VIEW token_usage_tz AS
SELECT customer_id, model, window, window_start,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       sum(cached_input_tokens) AS cached_input_tokens,
       sum(cost) AS cost,
       max(markup) AS markup,
       sum(billed) AS billed,
       count() AS events
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
            t.input_tokens AS input_tokens,
            t.output_tokens AS output_tokens,
            t.cached_input_tokens AS cached_input_tokens,
            CAST(toDecimal128(t.input_tokens, 0) * p.input_per_million
                 + toDecimal128(t.output_tokens, 0) * p.output_per_million
                 + toDecimal128(t.cached_input_tokens, 0) * p.cached_input_per_million
                 AS Decimal(38, 18)) / 1000000 AS cost,
            toUInt8(0) AS k
        FROM
        (
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, 'minute' AS window,
                   CAST(toStartOfMinute(timestamp) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events_by_time FINAL
            WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, 'minute' AS window,
                   CAST(toStartOfMinute(timestamp) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events FINAL
            WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            SETTINGS defer_partition_pruning_after_final = 0
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, 'hour' AS window,
                   CAST(toStartOfHour(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events_by_time FINAL
            WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, 'hour' AS window,
                   CAST(toStartOfHour(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events FINAL
            WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            SETTINGS defer_partition_pruning_after_final = 0
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, 'day' AS window,
                   CAST(toStartOfDay(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events_by_time FINAL
            WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, 'day' AS window,
                   CAST(toStartOfDay(timestamp, {tz:String}) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events FINAL
            WHERE timestamp < toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            SETTINGS defer_partition_pruning_after_final = 0
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, 'month' AS window,
                   CAST(CAST(toStartOfMonth(timestamp, {tz:String}),
                             concat('DateTime(''', {tz:String}, ''')')) AS DateTime64(3, 'UTC'))
                       AS window_start
            FROM token_events_by_time FINAL
            WHERE timestamp >= toDateTime(addMonths(toStartOfMonth(now(), 'UTC'), -1), 'UTC')
            UNION ALL
            SELECT customer_id, event_id, model, timestamp, input_tokens, output_tokens,
                   cached_input_tokens, 'month' AS window,
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
