-- Plain PostgreSQL: nothing to change. Its partitions were always made ahead and dropped by
-- Firewatch's own maintenance (0003); the TimescaleDB counterpart of this migration moves
-- that flavour to the same model.
SELECT 1;
