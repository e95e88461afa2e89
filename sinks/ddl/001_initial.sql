-- Initial schema: minute usage snapshots, the usage_windows_streamed roll-ups over them, dead letters.
-- A statement ends with ';' at the end of a line. Every statement is idempotent
-- (IF NOT EXISTS / OR REPLACE) because a crash between two of them re-runs the whole file.

-- One row per (customer, meter, dimension set, minute, part) *snapshot* of recorded state.
-- part '' is the live window; 'late:<event_id>' is a correction for a late event past grace,
-- so it never overwrites the live snapshot, and a replayed correction replaces itself.
-- A window is rewritten with a higher version as it grows: readers must use FINAL
-- (usage_windows_streamed does), or an unmerged superseded snapshot is counted as well.
CREATE TABLE IF NOT EXISTS usage_minute
(
    customer_id  String,
    meter        LowCardinality(String),
    -- Canonical JSON of the dimensions (sorted keys): a Map cannot be in a sort key.
    dims_key     String,
    dimensions   Map(String, String),
    window_start DateTime64(3, 'UTC'),
    part         String,
    value        Decimal(38, 12),
    events       UInt64,
    version      UInt64,
    -- How values combine across parts and into hour/day/month. Writers that omit it get
    -- 'sum', which is exact for sum and count meters.
    aggregation  LowCardinality(String) DEFAULT 'sum'
)
ENGINE = ReplacingMergeTree(version)
-- All snapshots of one key share window_start, hence the partition: FINAL stays exact
-- without merging across partitions, and old months can be dropped whole.
PARTITION BY toYYYYMM(window_start)
ORDER BY (customer_id, meter, dims_key, window_start, part)
-- A non-replicated MergeTree honours insert_deduplication_token only with a window > 0.
-- It has to cover the blocks written between a crash and the replay that rewrites them.
SETTINGS non_replicated_deduplication_window = 10000;

-- Minute values with the parts of each window combined, read through FINAL so that a
-- duplicate or superseded snapshot awaiting a merge is never counted.
CREATE OR REPLACE VIEW usage_minute_merged AS
SELECT
    customer_id,
    meter,
    dims_key,
    any(dimensions) AS dimensions,
    window_start,
    aggregation,
    multiIf(
        aggregation = 'min', min(value),
        aggregation = 'max', max(value),
        -- Rows carry no event times, so the live part stands for the latest value; a window
        -- holding only late corrections takes their max, which is at least deterministic.
        aggregation = 'latest', if(countIf(part = '') > 0, anyIf(value, part = ''), max(value)),
        sum(value)
    ) AS value,
    sum(events) AS events
FROM usage_minute FINAL
GROUP BY customer_id, meter, dims_key, window_start, aggregation;

-- Roll-ups of the streamed minute snapshots (usage_windows itself is computed from raw events,
-- see 002). Roll-ups use UTC calendar boundaries. A unique_count
-- meter rolls up as the sum of its minute counts: an upper bound, since the distinct values
-- themselves are not stored. Each window size is its own UNION branch so that a filter on
-- `window` prunes the others before they read anything.
CREATE OR REPLACE VIEW usage_windows_streamed AS
SELECT customer_id, meter, dimensions, 'minute' AS window, window_start, value, events,
       aggregation
FROM usage_minute_merged
UNION ALL
SELECT customer_id, meter, any(dimensions) AS dimensions, 'hour' AS window,
       bucket AS window_start,
       multiIf(aggregation = 'min', min(value), aggregation = 'max', max(value),
               aggregation = 'latest', argMax(value, minute_start), sum(value)) AS value,
       sum(events) AS events, aggregation
FROM
(
    SELECT customer_id, meter, dims_key, dimensions, window_start AS minute_start,
           CAST(toStartOfHour(window_start) AS DateTime64(3, 'UTC')) AS bucket,
           value, events, aggregation
    FROM usage_minute_merged
)
GROUP BY customer_id, meter, dims_key, bucket, aggregation
UNION ALL
SELECT customer_id, meter, any(dimensions) AS dimensions, 'day' AS window,
       bucket AS window_start,
       multiIf(aggregation = 'min', min(value), aggregation = 'max', max(value),
               aggregation = 'latest', argMax(value, minute_start), sum(value)) AS value,
       sum(events) AS events, aggregation
FROM
(
    SELECT customer_id, meter, dims_key, dimensions, window_start AS minute_start,
           CAST(toStartOfDay(window_start) AS DateTime64(3, 'UTC')) AS bucket,
           value, events, aggregation
    FROM usage_minute_merged
)
GROUP BY customer_id, meter, dims_key, bucket, aggregation
UNION ALL
SELECT customer_id, meter, any(dimensions) AS dimensions, 'month' AS window,
       bucket AS window_start,
       multiIf(aggregation = 'min', min(value), aggregation = 'max', max(value),
               aggregation = 'latest', argMax(value, minute_start), sum(value)) AS value,
       sum(events) AS events, aggregation
FROM
(
    SELECT customer_id, meter, dims_key, dimensions, window_start AS minute_start,
           CAST(toStartOfMonth(window_start) AS DateTime64(3, 'UTC')) AS bucket,
           value, events, aggregation
    FROM usage_minute_merged
)
GROUP BY customer_id, meter, dims_key, bucket, aggregation;

-- Every rejected record with its reason and source position. The position is the identity:
-- a dead letter delivered again (a replay after a crash) collapses into one row. Read with
-- FINAL for an exact count before merges.
CREATE TABLE IF NOT EXISTS dlq
(
    topic     String,
    partition Int32,
    offset    Int64,
    reason    String,
    at        DateTime64(3, 'UTC'),
    -- Raw bytes exactly as received, which need not be valid UTF-8.
    key       String,
    payload   String
)
-- No partitioning by `at`: a re-rejected record gets a new `at`, and ReplacingMergeTree
-- only collapses rows within one partition.
ENGINE = ReplacingMergeTree
ORDER BY (topic, partition, offset)
SETTINGS non_replicated_deduplication_window = 10000;
