-- The 20 products with the most revenue, with their current name and category and the units sold.
SELECT f.product_id, p.name, p.category,
       sum(f.net_amount)::numeric(16,2) AS revenue,
       sum(f.quantity)                  AS units,
       count(DISTINCT f.order_id)       AS orders
FROM fact_sales f
LEFT JOIN dim_products p ON p.product_id = f.product_id AND p.is_current
WHERE counts_as_revenue(f.status)
GROUP BY f.product_id, p.name, p.category
ORDER BY sum(f.net_amount) DESC, f.product_id
LIMIT 20;
