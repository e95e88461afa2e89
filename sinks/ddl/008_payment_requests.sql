-- meterline.topups carries every payment request: top-ups, and the dunning retries of unpaid
-- invoices (meterline/billing/dunning.py), whose outcome pays the invoice. pays_kind says
-- which ('topup' for rows written before this file, all top-ups), pays names what is paid (the
-- invoice id; the request id itself for a top-up; '' in rows written before this file). And a lost dispute's fee (passed on to the
-- customer, billed as a dispute_fee line of the next invoice) on its payments row; NULL: none.
-- New columns only: applied files are never edited, and ADD COLUMN IF NOT EXISTS is safe to
-- run again.
ALTER TABLE topups ADD COLUMN IF NOT EXISTS pays_kind LowCardinality(String) DEFAULT 'topup';
ALTER TABLE topups ADD COLUMN IF NOT EXISTS pays String DEFAULT '';
ALTER TABLE payments ADD COLUMN IF NOT EXISTS dispute_fee Nullable(Decimal(38, 12));
