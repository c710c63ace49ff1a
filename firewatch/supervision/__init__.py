"""Focused supervision: verifiable risk-weighted inspection draws, inspections, hazard work
orders and unit credit (docs/supervision.md)."""
