-- repair: fk_orders_customer_validate_online
-- title: Restore the foreign key orders.customer_id -> customers.id without blocking writers
-- description: Adding a foreign key scans all of orders while holding a lock that blocks writes.
-- description: Added NOT VALID (a quick catalog change: new rows are checked from then on) and
-- description: validated in its own transaction (SHARE UPDATE EXCLUSIVE: writers keep writing),
-- description: the same constraint costs no write outage. Idempotent: an existing constraint is
-- description: kept, and validating a valid one does nothing.
-- environments: staging, prod
-- mode: online
-- requires-before: public.orders, public.customers
-- lock-timeout: 2s
-- statement-timeout: 30min
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
                    WHERE conname = 'orders_customer_id_fkey'
                      AND conrelid = 'public.orders'::pg_catalog.regclass) THEN
        ALTER TABLE public.orders ADD CONSTRAINT orders_customer_id_fkey
            FOREIGN KEY (customer_id) REFERENCES public.customers (id) NOT VALID;
    END IF;
END $$;
ALTER TABLE public.orders VALIDATE CONSTRAINT orders_customer_id_fkey;
