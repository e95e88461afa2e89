-- The payment method of a payment (PaymentOutcome.payment_method_id / _name, e.g. pm_123 and
-- "Visa •••• 4242" or "ACH"), on each payment and, for invoices, the method of the last
-- successful payment (what a customer portal shows as "paid with"). NULL when the processor
-- named none, and for rows written before this file. New columns only: applied files are
-- never edited, and ADD COLUMN IF NOT EXISTS is safe to run again.
ALTER TABLE payments ADD COLUMN IF NOT EXISTS payment_method_id Nullable(String);
ALTER TABLE payments ADD COLUMN IF NOT EXISTS payment_method_name Nullable(String);
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS payment_method_id Nullable(String);
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS payment_method_name Nullable(String);
