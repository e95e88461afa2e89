-- Revenue by processor, status and currency per billing month (UTC calendar month of the
-- outcome's time): how many payment outcomes and their amount, for every processor in the one
-- `payments` shape. Amounts stay in each payment's own currency (never converted here: the rate
-- a payment was taken at belongs to its invoice, see invoices' fx columns); a refunded row
-- carries the amount refunded, so net revenue of a group is succeeded minus refunded and lost
-- disputes. Read the table with FINAL: a re-delivered outcome is one row.
CREATE OR REPLACE VIEW revenue AS
SELECT
    toStartOfMonth(at) AS period,
    processor,
    status,
    currency,
    count() AS payments,
    sum(amount) AS amount
FROM payments FINAL
GROUP BY period, processor, status, currency;
