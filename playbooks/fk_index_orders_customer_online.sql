-- repair: fk_index_orders_customer_online
-- title: Build the missing index on orders.customer_id without blocking writers
-- description: The online form of fk_index_orders_customer, for a busy production table: CREATE
-- description: INDEX CONCURRENTLY holds no lock that blocks INSERT, UPDATE or DELETE while it builds.
-- description: A build that was interrupted before (a killed session, a cancel, a lock timeout)
-- description: leaves the index INVALID; the second statement rebuilds it, also concurrently,
-- description: so a re-run repairs its own leftover without a DROP. On a valid index it rebuilds
-- description: once more (the same cost again): run it when the index is missing or invalid.
-- environments: staging, prod
-- mode: online
-- requires-before: public.orders, public.customers
-- requires-after: public.orders_customer_id_idx
-- lock-timeout: 2s
-- statement-timeout: 120min
CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_customer_id_idx ON public.orders (customer_id);
REINDEX INDEX CONCURRENTLY public.orders_customer_id_idx;
