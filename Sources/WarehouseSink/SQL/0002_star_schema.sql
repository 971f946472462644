-- The star schema loaded by `warehouse consume --group warehouse`.
--
-- Dimensions: dim_customers and dim_products are SCD type 2 (tracked: customer segment, state,
-- country; product category, unit_price, supplier_id; other attributes update the period's row in
-- place), rebuilt per natural key from every version received (customer_versions,
-- product_versions), so versions may arrive in any order. Surrogate keys are deterministic: the
-- earliest period of a natural key has the key of the natural key alone (which an inferred member
-- gets too, so the real row fills it in), later periods hash the natural key and their start.
-- dim_suppliers is type 1. dim_dates is a generated business calendar.
-- Facts: fact_sales at order-line grain, fact_payments, fact_inventory_movements, each keeping the
-- latest version by (version time, event id).

CREATE TABLE warehouse_settings (
    name  text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO warehouse_settings (name, value) VALUES ('fiscal_year_start_month', '1');

-- ---------------------------------------------------------------- calendar
CREATE TABLE dim_dates (
    date_key            integer  PRIMARY KEY,          -- yyyymmdd
    date                date     NOT NULL UNIQUE,
    day_of_week         smallint NOT NULL,             -- ISO: 1 = Monday … 7 = Sunday
    day_name            text     NOT NULL,
    day_of_month        smallint NOT NULL,
    day_of_year         smallint NOT NULL,
    iso_week            smallint NOT NULL,
    iso_year            smallint NOT NULL,
    month               smallint NOT NULL,
    month_name          text     NOT NULL,
    quarter             smallint NOT NULL,
    year                smallint NOT NULL,
    is_weekend          boolean  NOT NULL,
    is_us_federal_holiday boolean NOT NULL,
    holiday_name        text,
    fiscal_year         smallint NOT NULL,
    fiscal_quarter      smallint NOT NULL
);

-- The US federal holiday on `d` (the day itself, not the observed weekday), or NULL.
CREATE FUNCTION us_federal_holiday(d date) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN extract(month FROM d) = 1 AND extract(day FROM d) = 1 THEN 'New Year''s Day'
        WHEN extract(month FROM d) = 1 AND extract(isodow FROM d) = 1 AND (extract(day FROM d)::integer - 1) / 7 = 2 THEN 'Martin Luther King Jr. Day'
        WHEN extract(month FROM d) = 2 AND extract(isodow FROM d) = 1 AND (extract(day FROM d)::integer - 1) / 7 = 2 THEN 'Washington''s Birthday'
        WHEN extract(month FROM d) = 5 AND extract(isodow FROM d) = 1 AND extract(day FROM d) > 24 THEN 'Memorial Day'
        WHEN extract(month FROM d) = 6 AND extract(day FROM d) = 19 AND extract(year FROM d) >= 2021 THEN 'Juneteenth'
        WHEN extract(month FROM d) = 7 AND extract(day FROM d) = 4 THEN 'Independence Day'
        WHEN extract(month FROM d) = 9 AND extract(isodow FROM d) = 1 AND extract(day FROM d) <= 7 THEN 'Labor Day'
        WHEN extract(month FROM d) = 10 AND extract(isodow FROM d) = 1 AND (extract(day FROM d)::integer - 1) / 7 = 1 THEN 'Columbus Day'
        WHEN extract(month FROM d) = 11 AND extract(day FROM d) = 11 THEN 'Veterans Day'
        WHEN extract(month FROM d) = 11 AND extract(isodow FROM d) = 4 AND (extract(day FROM d)::integer - 1) / 7 = 3 THEN 'Thanksgiving Day'
        WHEN extract(month FROM d) = 12 AND extract(day FROM d) = 25 THEN 'Christmas Day'
    END
$$;

-- Makes dim_dates cover [first, last], and stay one contiguous range (so what it covers depends only
-- on the dates it was asked for, not on their order); returns how many days it added.
CREATE FUNCTION ensure_dim_dates(first date, last date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    start_month integer := (SELECT value::integer FROM warehouse_settings WHERE name = 'fiscal_year_start_month');
    added integer;
BEGIN
    SELECT least(first, min(date)), greatest(last, max(date)) INTO first, last FROM dim_dates;
    -- Most calls find the range covered already: one index range count, nothing written.
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
    ON CONFLICT (date_key) DO NOTHING;
    GET DIAGNOSTICS added = ROW_COUNT;
    RETURN added;
END
$$;

-- ---------------------------------------------------------------- dimension versions (inputs of the SCD2 rebuild)
CREATE TABLE customer_versions (
    customer_id  text        NOT NULL,
    version_time timestamptz NOT NULL,
    event_id     text        NOT NULL,
    first_name   text, last_name text, email text, city text, state text,
    country      text        NOT NULL,
    segment      text        NOT NULL,
    signup_date  date,
    PRIMARY KEY (customer_id, version_time, event_id)
);

CREATE TABLE product_versions (
    product_id   text        NOT NULL,
    version_time timestamptz NOT NULL,
    event_id     text        NOT NULL,
    name         text        NOT NULL,
    category     text        NOT NULL,
    supplier_id  text,
    unit_price   numeric     NOT NULL,
    unit_cost    numeric,
    PRIMARY KEY (product_id, version_time, event_id)
);

-- ---------------------------------------------------------------- dimensions
CREATE TABLE dim_customers (
    customer_key bigint      PRIMARY KEY,
    customer_id  text        NOT NULL,
    first_name   text, last_name text, email text, city text, state text, country text, segment text,
    signup_date  date,
    valid_from   timestamptz NOT NULL,   -- '-infinity' for an inferred member
    valid_to     timestamptz NOT NULL,   -- 'infinity' for the current row
    is_current   boolean     NOT NULL,
    is_inferred  boolean     NOT NULL,
    inferred_at  timestamptz             -- when the inferred member was created
);
CREATE INDEX dim_customers_natural ON dim_customers (customer_id, valid_from);

CREATE TABLE dim_products (
    product_key  bigint      PRIMARY KEY,
    product_id   text        NOT NULL,
    name         text, category text, supplier_id text,
    unit_price   numeric,
    unit_cost    numeric,
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz NOT NULL,
    is_current   boolean     NOT NULL,
    is_inferred  boolean     NOT NULL,
    inferred_at  timestamptz
);
CREATE INDEX dim_products_natural ON dim_products (product_id, valid_from);

CREATE TABLE dim_suppliers (
    supplier_id    text        PRIMARY KEY,
    name           text        NOT NULL,
    country        text,
    contact_email  text,
    contract_start date,
    contract_end   date,
    lead_time_days integer,
    rating         numeric,
    updated_at     timestamptz NOT NULL,
    event_id       text        NOT NULL
);

-- The surrogate key of the period of `customer_id` valid at `at`; the earliest period when `at`
-- precedes them all (a fact older than the first version joins the first version).
CREATE FUNCTION customer_key_at(id text, at timestamptz) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT customer_key FROM dim_customers WHERE customer_id = id AND valid_from <= at ORDER BY valid_from DESC LIMIT 1),
        (SELECT customer_key FROM dim_customers WHERE customer_id = id ORDER BY valid_from LIMIT 1))
$$;

CREATE FUNCTION product_key_at(id text, at timestamptz) RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(
        (SELECT product_key FROM dim_products WHERE product_id = id AND valid_from <= at ORDER BY valid_from DESC LIMIT 1),
        (SELECT product_key FROM dim_products WHERE product_id = id ORDER BY valid_from LIMIT 1))
$$;

-- ---------------------------------------------------------------- facts
CREATE TABLE fact_sales (
    order_id        text          NOT NULL,
    line_number     integer       NOT NULL,
    customer_key    bigint        NOT NULL,
    product_key     bigint        NOT NULL,
    date_key        integer       NOT NULL,
    customer_id     text          NOT NULL,   -- natural keys, to re-point a fact when history changes
    product_id      text          NOT NULL,
    quantity        integer       NOT NULL,
    unit_price      numeric       NOT NULL,
    discount        numeric       NOT NULL,
    gross_amount    numeric(14,2) NOT NULL,
    discount_amount numeric(14,2) NOT NULL,
    net_amount      numeric(14,2) NOT NULL,
    status          text          NOT NULL,
    order_ts        timestamptz   NOT NULL,
    updated_at      timestamptz   NOT NULL,
    event_id        text          NOT NULL,
    PRIMARY KEY (order_id, line_number)
);
CREATE INDEX fact_sales_customer ON fact_sales (customer_id);
CREATE INDEX fact_sales_product ON fact_sales (product_id);

CREATE TABLE fact_payments (
    payment_id text        PRIMARY KEY,
    order_id   text        NOT NULL,
    method     text        NOT NULL,
    processor  text,
    amount     numeric     NOT NULL,
    currency   text        NOT NULL,
    status     text        NOT NULL,
    paid_at    timestamptz NOT NULL,
    event_id   text        NOT NULL
);
CREATE INDEX fact_payments_order ON fact_payments (order_id);

CREATE TABLE fact_inventory_movements (
    movement_id   text          PRIMARY KEY,
    product_key   bigint        NOT NULL,
    product_id    text          NOT NULL,
    movement_type text          NOT NULL,
    quantity      integer       NOT NULL,
    unit_cost     numeric,
    extended_cost numeric(14,2),
    moved_at      timestamptz   NOT NULL,
    reference     text,
    event_id      text          NOT NULL
);
CREATE INDEX fact_inventory_product ON fact_inventory_movements (product_id);

-- The loader's counters (events applied, dead-lettered, batches) per consumer group.
CREATE TABLE loader_counters (
    consumer_group text   NOT NULL,
    name           text   NOT NULL,
    value          bigint NOT NULL,
    PRIMARY KEY (consumer_group, name)
);
