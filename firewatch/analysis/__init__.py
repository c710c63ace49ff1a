"""The tiered fire-analysis database: rollups per device, unit and region, by hour and day
(docs/analysis.md)."""
