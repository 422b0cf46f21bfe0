-- repair: backfill_orders_placed_on
-- title: Backfill orders.placed_on from created_at in batches of 5000 rows
-- description: placed_on was added as a nullable column and the application writes it for new
-- description: orders; rows from before the deploy still have NULL. One UPDATE of the whole table
-- description: would lock every row for the whole run and bloat it at once: the batch statement
-- description: runs again and again, each time its own short transaction, until no row is left.
-- environments: staging, prod
-- mode: online
-- requires-before: public.orders
-- lock-timeout: 2s
-- statement-timeout: 1min
-- batch-pause: 100ms
-- waive: ban-update until 2027-06-30 because TICKET-4711: one-off backfill of a new column, reviewed by the data team
-- batch
UPDATE public.orders SET placed_on = created_at::date
 WHERE id IN (SELECT id FROM public.orders
               WHERE placed_on IS NULL AND created_at IS NOT NULL
               ORDER BY id LIMIT 5000);
