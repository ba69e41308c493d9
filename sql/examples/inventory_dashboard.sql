-- Dashboard views for the inventory example (examples/inventory-views.json).
--
-- Plain SQL views over freshet's stable views: they are as fresh as the
-- views under them, survive rebuilds and definition changes that keep the
-- columns (freshet replaces its views in place), and are readable by the
-- read-only role. Live SQL clients (GET /sql/feed) can subscribe to them; a
-- query that names none of freshet's views directly is re-run after every
-- flush of any view.
--
-- Apply after the view process has created the views (scripts/demo does):
--   psql "$FRESHET_PG_URL" -v ON_ERROR_STOP=1 -f sql/examples/inventory_dashboard.sql
-- Re-runnable. Names are schema-qualified: for a role named like the
-- freshet schema, "$user" in search_path would put the views there.

-- One row per store: SKUs, units on hand, how many SKUs are out of stock.
CREATE OR REPLACE VIEW public.store_stock AS
SELECT store,
       count(*)                               AS skus,
       coalesce(sum(on_hand), 0)::bigint      AS units,
       count(*) FILTER (WHERE on_hand <= 0)   AS out_of_stock
FROM public.stock_levels
GROUP BY store;

-- Sales per store since midnight (UTC), from the hourly buckets.
CREATE OR REPLACE VIEW public.sales_today AS
SELECT store,
       coalesce(sum(units), 0)::bigint AS units,
       coalesce(sum(sales), 0)::bigint AS sales
FROM public.sales_per_store_hour
WHERE hour >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
GROUP BY store;

-- What to restock first: the emptiest shelves, with how long they have
-- been low.
CREATE OR REPLACE VIEW public.restock_list AS
SELECT store, sku, on_hand, reserved, since, now() - since AS low_for
FROM public.low_stock
ORDER BY on_hand, since, store, sku;

GRANT SELECT ON public.store_stock, public.sales_today, public.restock_list TO freshet_reader;
