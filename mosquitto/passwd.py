#!/usr/bin/env python3
"""Write the broker's accounts and access control for docker-compose (``mosquitto/dynsec.json``).

Runs with any Python >= 3.11, outside the project's venv and without Mosquitto on the host:
it is ``firewatch.runtime.brokerconf`` (stdlib only) run from this checkout.

    python3 mosquitto/passwd.py --ingest firewatch-ingest-1 --ingest firewatch-ingest-2
    python3 mosquitto/passwd.py --from-seed city.toml > device-credentials.tsv
    python3 mosquitto/passwd.py --publisher firewatch-simulator        # demo profile only
    python3 mosquitto/passwd.py --device D-1:EXISTING-SECRET

Account kinds: ``--ingest`` (username = client id = ``FIREWATCH_INGEST_CLIENT_ID``),
``--device``/``--from-seed`` (username = client id = device id), ``--gateway`` (one
connection, client id = username) and ``--publisher`` (any client id: demo and benchmark
brokers only). ``NAME`` without ``:PASSWORD`` gets a generated password, printed once on
stdout as ``NAME<TAB>PASSWORD`` (only its hash is kept). An existing file is updated (accounts
added or replaced, others kept) unless ``--replace`` is given; it is replaced atomically.
Restart the broker afterwards (``docker compose restart mosquitto``): Mosquitto 2.0 reads the
file at start only. See docs/deployment.md and docs/adr/0005-broker-access-control.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "dynsec.json"

if __name__ == "__main__":
    # This checkout's package, whatever is (or is not) installed for this interpreter.
    sys.path.insert(0, str(HERE.parent))
    from firewatch.runtime.brokerconf import main

    sys.exit(main(prog="passwd.py", default_out=DEFAULT_OUT))
