"""The lab wing: what exists to measure the system (detector evaluation, benchmarks, the load
generator, fuzz runs, probes).

Nothing under ``firewatch/lab`` runs in production, and no live service imports it; it may
import the services it measures.
"""
