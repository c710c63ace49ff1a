"""Unit fire-risk scores, levels and warnings, kept current from the rollups and the
supervision records (docs/risk.md)."""
