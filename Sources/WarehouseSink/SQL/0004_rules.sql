-- The contract's rules, each once in SQL, for every query that needs them. Each is the SQL twin
-- of one Swift definition in Sources/Contract/Rules, and the rule table (Tests/Fixtures/rules.json)
-- runs through both and must get the same answers. LANGUAGE sql, IMMUTABLE and one expression:
-- the planner inlines them, so they cost nothing per row.

-- An order line's gross amount: round(quantity × unit price, 2). (Swift: LineAmounts.)
CREATE FUNCTION line_gross_amount(quantity integer, unit_price numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT round(quantity * unit_price, 2)
$$;

-- An order line's net amount: round(quantity × unit price × (1 − discount), 2), half away from
-- zero. The discount amount is gross − net. (Swift: LineAmounts.)
CREATE FUNCTION line_net_amount(quantity integer, unit_price numeric, discount numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT round(quantity * unit_price * (1 - discount), 2)
$$;

-- Whether a line with this status counts in revenue: placed, shipped, delivered; a cancelled or
-- returned line does not. (Swift: OrderStatus.countsAsRevenue.)
CREATE FUNCTION counts_as_revenue(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT status IN ('placed', 'shipped', 'delivered')
$$;
