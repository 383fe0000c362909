"""Differential testing of fleetmq against Debian's Mosquitto 2.0.11.

Both brokers are started from the same mosquitto.conf (only the port
differs); each script (packets as bytes, with waits and reconnects) is
played against both and the answers are compared byte for byte, after
masking what is random in both (assigned client identifiers). Every
difference must be listed, with its reason, in `differences.py`.

Modules: `brokers` (start/stop from a conf), `player` (play one script on a
socket), `scripts` (the generator), `differences` (the documented table),
`run` (play all, compare, summarise).
"""
