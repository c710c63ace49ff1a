-- A panel event's detail object (docs/contract.md, "detail"): what a GB/T 26875.3 information
-- object carries beyond its status word (an analog value, a version, a clock, a duty check's
-- times). Nullable without a default, so adding it rewrites nothing: one file serves both
-- flavours, the plain partitioned table (the partitions inherit the column) and the
-- TimescaleDB hypertable, whose compressed chunks take a new nullable column as well.
ALTER TABLE events ADD COLUMN detail jsonb;
