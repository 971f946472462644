-- Concurrent loaders: any number of consumers in the `warehouse` group, in any interleaving, must
-- leave the same tables as one serial consumer.
--
-- A batch rebuilds each touched natural key's SCD2 history from the versions it can see, resolves
-- its facts' surrogate keys from the periods it can see, and re-points the facts it can see. At
-- READ COMMITTED two transactions holding versions (or facts) of one key each see a snapshot that
-- lacks the other's, so they must be serialised on that key. Each batch therefore takes, first
-- thing in its transaction, an advisory lock per natural key it touches: exclusive where it adds
-- versions (the rebuild and re-pointing), shared where it only references the key (fact key
-- resolution, inferred members). Shared locks do not wait for each other, so batches of facts run
-- side by side; a batch that changes a key's history waits for the facts in flight that use it,
-- and they for it.
--
-- Keys are hashed into 256 lock slots: a transaction holds at most 256 advisory locks whatever its
-- size, so 25 loaders with full batches fit in PostgreSQL's lock table (max_locks_per_transaction ×
-- max_connections entries, 6,400 by default). Two keys in one slot are merely serialised together;
-- a batch of thousands of facts touches most slots however many there are. Locks are taken in slot
-- order, so two loaders can never wait for each other in a cycle.
CREATE FUNCTION lock_natural_keys(keys text[], exclusive boolean[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    slot record;
    taken integer := 0;
BEGIN
    FOR slot IN
        SELECT s, bool_or(x) AS x
        FROM (SELECT (hashtextextended(k, 0) & 255) + 7362000 AS s, x FROM unnest(keys, exclusive) AS t(k, x)) AS h
        GROUP BY s ORDER BY s
    LOOP
        IF slot.x THEN
            PERFORM pg_advisory_xact_lock(slot.s);
        ELSE
            PERFORM pg_advisory_xact_lock_shared(slot.s);
        END IF;
        taken := taken + 1;
    END LOOP;
    RETURN taken;
END
$$;

-- The calendar: two loaders extending it at once would each fill the hull of what they can see,
-- and could leave a gap between their ranges. A lock of its own serialises the extensions (7363024,
-- above every key slot: a loader takes it after its key locks, so the order holds); and
-- ON CONFLICT DO NOTHING without a target covers both unique indexes (date_key and date).
CREATE OR REPLACE FUNCTION ensure_dim_dates(first date, last date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    start_month integer := (SELECT value::integer FROM warehouse_settings WHERE name = 'fiscal_year_start_month');
    added integer;
BEGIN
    -- Most calls find the range covered already: one index range count, nothing written, no lock.
    IF (SELECT count(*) FROM dim_dates WHERE date BETWEEN first AND last) = last - first + 1 THEN
        RETURN 0;
    END IF;
    PERFORM pg_advisory_xact_lock(7363024);
    SELECT least(first, min(date)), greatest(last, max(date)) INTO first, last FROM dim_dates;
    IF (SELECT count(*) FROM dim_dates WHERE date BETWEEN first AND last) = last - first + 1 THEN
        RETURN 0;
    END IF;
    INSERT INTO dim_dates
    SELECT to_char(d, 'YYYYMMDD')::integer, d,
           extract(isodow FROM d), trim(to_char(d, 'Day')),
           extract(day FROM d), extract(doy FROM d),
           extract(week FROM d), extract(isoyear FROM d),
           extract(month FROM d), trim(to_char(d, 'Month')),
           extract(quarter FROM d), extract(year FROM d),
           extract(isodow FROM d) IN (6, 7),
           us_federal_holiday(d) IS NOT NULL, us_federal_holiday(d),
           -- The fiscal year is named after the calendar year in which it ends.
           extract(year FROM d) + CASE WHEN start_month > 1 AND extract(month FROM d) >= start_month THEN 1 ELSE 0 END,
           ((extract(month FROM d)::integer - start_month + 12) % 12) / 3 + 1
    FROM generate_series(first, last, interval '1 day') AS g(t), LATERAL (SELECT t::date AS d) AS day
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    RETURN added;
END
$$;
