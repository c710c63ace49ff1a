"""The lab wing: what exists to measure the system (benchmarks, fuzz runs, probes).

Nothing under ``firewatch/lab`` runs in production, and no live service imports it; it may
import the services it measures.
"""
