-- Loading at scale (measured with `warehouse bench scale` and pg_stat_statements; README,
-- "Performance at scale").
--
-- An order line is written about 2.3 times (placed, then shipped, delivered, cancelled or
-- returned), each later version an UPDATE that changes no indexed column. With full pages those
-- updates could not stay on their page: each wrote a new tuple elsewhere and a new entry in all
-- three indexes, left a dead entry that every later lookup of the key stepped over until vacuum,
-- and the table and its indexes grew by the dead versions. With a fifth and more of each page
-- left free, the updates are heap-only (HOT): 94 % of them on the 2.6-million-event set, with a
-- third fewer buffer touches and WAL bytes per batch. It applies to pages written from now on.
ALTER TABLE fact_sales SET (fillfactor = 60);

-- Statistics that keep up as the tables grow from empty (the default waits for 10 % of a table
-- to change, a long wait for a table of millions of rows).
ALTER TABLE fact_sales SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE fact_payments SET (autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE fact_inventory_movements SET (autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE dim_customers SET (autovacuum_analyze_scale_factor = 0.02);
ALTER TABLE customer_versions SET (autovacuum_analyze_scale_factor = 0.02);
