-- Invoices with their decimals as text, exactly as the meterline.invoices records print them
-- (meterline/billing/money.py: plain, money_text): plain notation, never an exponent, no
-- trailing zeros, and money amounts with the invoice currency's minor-unit digits (6.00 USD,
-- 6 JPY, 6.000 KWD; more digits only when the value has them, it is never rounded here).
-- The Decimal columns of invoice_lines and invoices stay as they are, for arithmetic; these
-- views are for reading (the HTTP API's /invoices, a finance export). Last of the invoice
-- migrations: it shows the payment method (005) and the exchange rate (007) columns too.
--
-- Minor units: the table of meterline/billing/money.py (MINOR_UNITS), as transform() arrays;
-- tests/unit/sinks/test_invoice_text_views.py checks the two agree. An unknown code shows the
-- amount plain. Zeros are appended to toString's text, so no digit is ever lost.

CREATE OR REPLACE VIEW invoice_lines_text AS
SELECT
    invoice_id, customer_id, period_start, period_end, line_no, kind, meter, currency,
    quantity, unit_price,
    concat(amount_plain, if(digits <= frac, '',
        concat(if(frac = 0, '.', ''), repeat('0', toUInt32(greatest(digits - frac, 0)))))) AS amount
FROM
(
    SELECT
        l.invoice_id AS invoice_id, l.customer_id AS customer_id,
        l.period_start AS period_start, l.period_end AS period_end, l.line_no AS line_no,
        l.kind AS kind, l.meter AS meter, i.currency AS currency,
        toString(l.quantity) AS quantity, toString(l.unit_price) AS unit_price,
        toString(l.amount) AS amount_plain,
        if(position(amount_plain, '.') = 0, 0, length(amount_plain) - position(amount_plain, '.')) AS frac,
        transform(i.currency,
            ['USD', 'EUR', 'GBP', 'CHF', 'CAD', 'AUD', 'NZD', 'SEK', 'NOK', 'DKK', 'PLN', 'CZK',
             'INR', 'BRL', 'MXN', 'SGD', 'HKD', 'CNY', 'ZAR', 'ILS', 'TRY', 'HUF',
             'JPY', 'KRW', 'VND', 'CLP', 'ISK',
             'BHD', 'KWD', 'OMR', 'JOD', 'TND'],
            [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
             2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
             0, 0, 0, 0, 0,
             3, 3, 3, 3, 3], 0) AS digits
    FROM invoice_lines AS l FINAL
    LEFT JOIN
    (
        SELECT customer_id, invoice_id, any(currency) AS currency
        FROM invoices FINAL
        GROUP BY customer_id, invoice_id
    ) AS i ON l.customer_id = i.customer_id AND l.invoice_id = i.invoice_id
);

CREATE OR REPLACE VIEW invoices_text AS
SELECT
    invoice_id, customer_id, currency, kind, period_start, period_end, issued_at,
    concat(due, if(digits <= due_frac, '',
        concat(if(due_frac = 0, '.', ''), repeat('0', toUInt32(greatest(digits - due_frac, 0)))))) AS amount_due,
    concat(paid, if(digits <= paid_frac, '',
        concat(if(paid_frac = 0, '.', ''), repeat('0', toUInt32(greatest(digits - paid_frac, 0)))))) AS amount_paid,
    concat(rest, if(digits <= rest_frac, '',
        concat(if(rest_frac = 0, '.', ''), repeat('0', toUInt32(greatest(digits - rest_frac, 0)))))) AS remaining,
    status, payment_method_id, payment_method_name, plan_currency, fx_rate, fx_rate_effective_from
FROM
(
    SELECT
        invoice_id, customer_id, currency, kind, period_start, period_end, issued_at, status,
        payment_method_id, payment_method_name, plan_currency,
        if(isNull(fx_rate), NULL, toString(assumeNotNull(fx_rate))) AS fx_rate, fx_rate_effective_from,
        toString(amount_due) AS due,
        if(position(due, '.') = 0, 0, length(due) - position(due, '.')) AS due_frac,
        toString(amount_paid) AS paid,
        if(position(paid, '.') = 0, 0, length(paid) - position(paid, '.')) AS paid_frac,
        toString(remaining) AS rest,
        if(position(rest, '.') = 0, 0, length(rest) - position(rest, '.')) AS rest_frac,
        transform(currency,
            ['USD', 'EUR', 'GBP', 'CHF', 'CAD', 'AUD', 'NZD', 'SEK', 'NOK', 'DKK', 'PLN', 'CZK',
             'INR', 'BRL', 'MXN', 'SGD', 'HKD', 'CNY', 'ZAR', 'ILS', 'TRY', 'HUF',
             'JPY', 'KRW', 'VND', 'CLP', 'ISK',
             'BHD', 'KWD', 'OMR', 'JOD', 'TND'],
            [2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
             2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
             0, 0, 0, 0, 0,
             3, 3, 3, 3, 3], 0) AS digits
    FROM invoices FINAL
);
