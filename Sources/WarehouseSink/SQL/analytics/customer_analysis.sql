-- Customers by segment as of order time ("as was") and as of now ("as is"): customers, orders,
-- revenue and revenue per customer.
WITH sales AS (
    SELECT f.*, was.segment AS segment_as_was, now.segment AS segment_as_is
    FROM fact_sales f
    JOIN dim_customers was ON was.customer_key = f.customer_key
    LEFT JOIN dim_customers now ON now.customer_id = f.customer_id AND now.is_current
    WHERE counts_as_revenue(f.status)
)
SELECT 'as_was' AS view, coalesce(segment_as_was, 'unknown') AS segment,
       count(DISTINCT customer_id) AS customers, count(DISTINCT order_id) AS orders,
       sum(net_amount)::numeric(16,2) AS revenue,
       (sum(net_amount) / count(DISTINCT customer_id))::numeric(16,2) AS revenue_per_customer
FROM sales GROUP BY 2
UNION ALL
SELECT 'as_is', coalesce(segment_as_is, 'unknown'),
       count(DISTINCT customer_id), count(DISTINCT order_id), sum(net_amount)::numeric(16,2),
       (sum(net_amount) / count(DISTINCT customer_id))::numeric(16,2)
FROM sales GROUP BY 2
ORDER BY 1, 2;
