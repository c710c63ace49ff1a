"""The offline univariate scorer behind ``firewatch analytics score``: a streaming (no
look-ahead) anomaly score for any ``timestamp,value`` series (docs/analytics-score.md).

Not part of the live detector service (``firewatch/analytics``), which neither imports it
nor is imported by it.
"""
