"""What services run on: the worker loop (``worker``), the ``/metrics`` rule (``metrics``),
running sibling services together (``supervise``); the embedded PostgreSQL and Mosquitto,
broker accounts, child processes."""
