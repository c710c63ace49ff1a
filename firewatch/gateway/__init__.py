"""The GB/T 26875.3-2011 gateway (``firewatch gateway``, issue 17): legacy user-information
transmission devices (UITDs) connect over TCP; what they send is published into the MQTT
contract as panel events, and the center's downlink (clock sync, duty checks) goes back.

- ``server.py``: the TCP server, its limits and stop sequence, and :func:`serve` for the CLI;
- ``session.py``: one connection: delimit, verify, publish, confirm or deny;
- ``translate.py``: information objects -> contract messages (validated, clock-checked);
- ``publisher.py``: the asyncio MQTT 5 publisher (QoS 1, PUBACK before confirm);
- ``duty.py``: clock syncs and duty checks (查岗);
- ``directory.py``: the registry's GB/T addresses and the duty-check rows;
- ``gateway_metrics.py``: Prometheus metrics and the summary line.
"""
