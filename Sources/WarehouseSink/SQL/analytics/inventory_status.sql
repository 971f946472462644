-- Stock on hand per product (the sum of its movements), lowest first, with the last movement.
SELECT m.product_id, p.name, p.category,
       sum(m.quantity)                          AS on_hand,
       sum(m.quantity) FILTER (WHERE m.movement_type = 'receipt') AS received,
       -sum(m.quantity) FILTER (WHERE m.movement_type = 'sale')   AS sold,
       max(m.moved_at)                          AS last_movement
FROM fact_inventory_movements m
LEFT JOIN dim_products p ON p.product_id = m.product_id AND p.is_current
GROUP BY m.product_id, p.name, p.category
ORDER BY sum(m.quantity), m.product_id;
