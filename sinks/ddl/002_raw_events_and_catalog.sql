-- Raw, deduplicated events are the source of truth for usage figures: every meter, also one
-- defined after its events arrived, and every window size and time zone is computed from
-- them at query time (per-meter materialised views went stale when meters changed; this
-- cannot). The streamed minute snapshots (usage_minute) stay as the live, published view.
--
-- The sort key is the idempotency key: a replayed insert of the same event collapses into one
-- row, and readers use FINAL so an unmerged copy is never counted.
CREATE TABLE IF NOT EXISTS usage_events
(
    customer_id String,
    event_id    String,
    meter       LowCardinality(String),
    value       Decimal(38, 12),
    timestamp   DateTime64(3, 'UTC'),
    dimensions  Map(String, String),
    ingested_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (customer_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS token_events
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
    ingested_at         DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (customer_id, event_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- The catalog as every worker sees it (seeded from the catalog file, then meterline.catalog).
CREATE TABLE IF NOT EXISTS meters
(
    code        String,
    aggregation LowCardinality(String),
    value_field String,
    group_by    Array(String),
    version     UInt64,
    deleted     UInt8 DEFAULT 0
)
ENGINE = ReplacingMergeTree(version)
ORDER BY code;

CREATE TABLE IF NOT EXISTS model_prices
(
    model                    String,
    provider                 String,
    effective_from           DateTime64(3, 'UTC'),
    input_per_million        Decimal(38, 12),
    output_per_million       Decimal(38, 12),
    cached_input_per_million Decimal(38, 12)
)
ENGINE = ReplacingMergeTree
ORDER BY (model, effective_from);

-- `k` is a constant join key: ASOF JOIN needs one equality besides the time condition.
CREATE TABLE IF NOT EXISTS markups
(
    k              UInt8 DEFAULT 0,
    effective_from DateTime64(3, 'UTC'),
    rate           Decimal(38, 12)
)
ENGINE = ReplacingMergeTree
ORDER BY (k, effective_from);

-- Each usage event seen through its meter's current definition. An event of an undeclared
-- meter counts as a sum of its value with no group-by. A value_field naming a dimension the
-- event lacks yields NULL, which no aggregate counts.
CREATE OR REPLACE VIEW usage_metered AS
SELECT
    e.customer_id AS customer_id,
    e.meter AS meter,
    e.event_id AS event_id,
    e.timestamp AS timestamp,
    if(m.code = '', 'sum', m.aggregation) AS aggregation,
    mapFilter((k, v) -> has(m.group_by, k), e.dimensions) AS dimensions,
    if(m.code = '' OR m.value_field = 'value', CAST(e.value AS Nullable(Decimal(38, 12))),
       toDecimal128OrNull(e.dimensions[m.value_field], 12)) AS num,
    if(m.code = '' OR m.value_field = 'value', toString(e.value),
       if(mapContains(e.dimensions, m.value_field), e.dimensions[m.value_field], NULL)) AS uniq
FROM usage_events AS e FINAL
LEFT JOIN (SELECT * FROM meters FINAL WHERE deleted = 0) AS m ON e.meter = m.code;

-- usage_windows in any time zone: SELECT * FROM usage_windows_tz(tz = 'Europe/Berlin').
-- Hours, days and months follow that zone's clock (23/25-hour days across DST); window_start
-- is the UTC instant the window starts at.
CREATE OR REPLACE VIEW usage_windows_tz AS
SELECT customer_id, meter, dimensions, window, window_start,
       ifNull(multiIf(
           aggregation = 'count', toDecimal128(count(), 12),
           aggregation = 'unique_count', toDecimal128(uniqExact(uniq), 12),
           aggregation = 'min', min(num),
           aggregation = 'max', max(num),
           aggregation = 'latest', argMax(num, (timestamp, event_id)),
           sum(num)), toDecimal128(0, 12)) AS value,
       count() AS events,
       aggregation
FROM
(
    SELECT customer_id, meter, dimensions, aggregation, num, uniq, timestamp, event_id,
           arrayJoin([
               ('minute', toDateTime64(toStartOfMinute(timestamp), 3, 'UTC')),
               ('hour', toDateTime64(toStartOfHour(timestamp, {tz:String}), 3, 'UTC')),
               ('day', toDateTime64(toStartOfDay(timestamp, {tz:String}), 3, 'UTC')),
               ('month', toDateTime64(toDateTime(toStartOfMonth(timestamp, {tz:String}),
                                                 {tz:String}), 3, 'UTC'))
           ]) AS w,
           w.1 AS window,
           w.2 AS window_start
    FROM usage_metered
)
GROUP BY customer_id, meter, dimensions, window, window_start, aggregation;

-- The analysts' surface of DESIGN.md, in UTC.
CREATE OR REPLACE VIEW usage_windows AS
SELECT * FROM usage_windows_tz(tz = 'UTC');

-- Token usage priced at query time with the price and markup in force at each event's time,
-- so a price change applies from its effective time, late events included, whatever order
-- the change and the events arrived in. cost keeps 18 decimals and billed 24: exact for
-- prices with up to 12 decimals and markups with up to 6.
CREATE OR REPLACE VIEW token_priced AS
SELECT
    t.customer_id AS customer_id,
    t.model AS model,
    t.provider AS provider,
    t.event_id AS event_id,
    t.timestamp AS timestamp,
    t.input_tokens AS input_tokens,
    t.output_tokens AS output_tokens,
    t.cached_input_tokens AS cached_input_tokens,
    p.effective_from AS price_from,
    CAST(toDecimal128(t.input_tokens, 0) * p.input_per_million
         + toDecimal128(t.output_tokens, 0) * p.output_per_million
         + toDecimal128(t.cached_input_tokens, 0) * p.cached_input_per_million
         AS Decimal(38, 18)) / 1000000 AS cost
FROM token_events AS t FINAL
ASOF LEFT JOIN (SELECT * FROM model_prices FINAL) AS p
    ON t.model = p.model AND t.timestamp >= p.effective_from;

CREATE OR REPLACE VIEW token_billed AS
SELECT tp.*, ifNull(mk.rate, toDecimal128(0, 12)) AS markup,
       tp.cost * CAST(1 + ifNull(mk.rate, toDecimal128(0, 12)) AS Decimal(38, 6)) AS billed
FROM (SELECT *, toUInt8(0) AS k FROM token_priced) AS tp
ASOF LEFT JOIN (SELECT * FROM markups FINAL) AS mk
    ON tp.k = mk.k AND tp.timestamp >= mk.effective_from;

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
    SELECT *,
           arrayJoin([
               ('minute', toDateTime64(toStartOfMinute(timestamp), 3, 'UTC')),
               ('hour', toDateTime64(toStartOfHour(timestamp, {tz:String}), 3, 'UTC')),
               ('day', toDateTime64(toStartOfDay(timestamp, {tz:String}), 3, 'UTC')),
               ('month', toDateTime64(toDateTime(toStartOfMonth(timestamp, {tz:String}),
                                                 {tz:String}), 3, 'UTC'))
           ]) AS w,
           w.1 AS window,
           w.2 AS window_start
    FROM token_billed
)
GROUP BY customer_id, model, window, window_start;

CREATE OR REPLACE VIEW token_usage AS
SELECT * FROM token_usage_tz(tz = 'UTC');
