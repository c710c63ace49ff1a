"""Firewatch: urban IoT fire remote monitoring."""

__version__ = "0.1.0"
