"""Builders: what tests feed the system and the records it keeps, made in one place.

* :mod:`~tests.builders.city`: ids of the seeded demo city and device topics.
* :mod:`~tests.builders.payloads`: MQTT message bodies as devices send them.
* :mod:`~tests.builders.rows`: stream rows (telemetry, status, events, dead letters), the
  time constants detector tests count in, and readings inserted the way ingest writes them.
* :mod:`~tests.builders.detection`: profiles, frames and batches for the detectors, and
  helpers that pick anomalies out of their output.
* :mod:`~tests.builders.alerts`: anomaly episodes, and alerts raised through the store.
* :mod:`~tests.builders.simulation`: simulated devices and their emissions.

A helper only one test module uses stays in that module.
"""
