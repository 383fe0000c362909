"""Wire for wire with Mosquitto (issue 15): every generated script is played
against Debian's Mosquitto 2.0.11 and against fleetmq started from the same
mosquitto.conf; answers must be identical byte for byte, or listed with
their reason in differential/differences.py (and docs/mosquitto-differences.md).

Prints one summary line. Run alone with details:
`FLEETMQ_BIN=... python3 -m differential.run` from this folder.
"""

import os
import shutil

import pytest

from differential.brokers import fleetmq_binary
from differential.run import run


@pytest.mark.skipif(shutil.which("mosquitto") is None and
                    not os.path.exists("/usr/sbin/mosquitto"),
                    reason="needs Debian's mosquitto 2.0.11")
def test_fleetmq_answers_as_mosquitto_does(capsys):
    if not os.path.exists(fleetmq_binary()):
        # The reference run (FLEETMQ_TEST_BROKER=mosquitto) may have no
        # fleetmq build; the fleetmq run must.
        if os.environ.get("FLEETMQ_TEST_BROKER", "fleetmq") == "mosquitto":
            pytest.skip(f"no fleetmq binary at {fleetmq_binary()}")
        pytest.fail(f"no fleetmq binary at {fleetmq_binary()} (build it or set FLEETMQ_BIN)")
    summary, undocumented, details = run()
    with capsys.disabled():
        print("\n" + summary)
    assert not undocumented, summary + "\n" + "\n".join(details[:40])
