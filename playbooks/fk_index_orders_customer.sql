-- repair: fk_index_orders_customer
-- title: Restore the missing index on orders.customer_id
-- description: orders.customer_id references customers(id) but lost its index, so deletes
-- description: on customers and joins from customers scan all of orders.
-- environments: staging, prod
-- requires-before: public.orders, public.customers
-- requires-after: public.orders_customer_id_idx
-- lock-timeout: 2s
-- statement-timeout: 15min
CREATE INDEX IF NOT EXISTS orders_customer_id_idx ON public.orders (customer_id);
