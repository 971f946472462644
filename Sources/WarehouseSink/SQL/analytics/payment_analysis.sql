-- Payments by method and status (each payment's latest version): count, amount, and the share of
-- the method's payments that failed or were refunded.
SELECT method, status, count(*) AS payments, sum(amount)::numeric(16,2) AS amount,
       round(100.0 * count(*) / sum(count(*)) OVER (PARTITION BY method), 1) AS percent_of_method
FROM fact_payments
GROUP BY method, status
ORDER BY method, status;
