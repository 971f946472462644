-- Revenue, orders, lines, units and average order value per month (UTC, by order time).
-- Revenue counts lines whose current status is placed, shipped or delivered.
SELECT to_char(d.date, 'YYYY-MM')                              AS month,
       sum(f.net_amount)::numeric(16,2)                        AS revenue,
       count(DISTINCT f.order_id)                              AS orders,
       count(*)                                                AS lines,
       sum(f.quantity)                                         AS units,
       (sum(f.net_amount) / count(DISTINCT f.order_id))::numeric(16,2) AS average_order_value
FROM fact_sales f
JOIN dim_dates d ON d.date_key = f.date_key
WHERE counts_as_revenue(f.status)
GROUP BY 1
ORDER BY 1;
