-- An invoice issued in the customer's own currency (meterline/billing/fx.py): `currency` is the
-- invoice's currency, and these say what it was converted from and with which rate, so finance
-- can trace every converted line back to the plan-currency amounts in credit_ledger. NULL for
-- an invoice in the plan's currency, and for rows written before this file.
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS plan_currency Nullable(String);
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS fx_rate Nullable(Decimal(38, 12));
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS fx_rate_effective_from Nullable(DateTime64(3, 'UTC'));
