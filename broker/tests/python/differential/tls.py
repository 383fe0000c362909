"""The "tls" configuration (issue 15): a mutual-TLS listener as a lab runs
it -- `require_certificate true`, `use_identity_as_username true` and an
acl_file whose `user` lines name certificate CNs -- with a PKI made by the
openssl command line at test time (`tls_helpers.Pki`: CA, server
certificate for localhost/127.0.0.1, devices dev-a and dev-b).
"""

import os

import rawmqtt as r

from . import packets as p
from .player import Tls
from .scripts import Script, VERSIONS

ACL = """\
user dev-a
topic readwrite devices/dev-a/#

user dev-b
topic readwrite devices/dev-b/#
topic read devices/dev-a/#

pattern write reports/%u/#
"""


def tls_files(workdir):
    """Makes the PKI and ACL file; returns (mosquitto.conf lines, `Tls`)."""
    from tls_helpers import Pki

    folder = os.path.join(workdir, "tls")
    os.makedirs(folder, exist_ok=True)
    pki = Pki(folder)
    # Mosquitto started as root reads these after dropping to its own user.
    os.chmod(workdir, 0o755)
    os.chmod(folder, 0o755)
    for name in os.listdir(folder):
        os.chmod(os.path.join(folder, name), 0o644)
    acl = os.path.join(folder, "acl")
    with open(acl, "w") as out:
        out.write(ACL)
    os.chmod(acl, 0o644)
    lines = [f"cafile {pki.ca}", f"certfile {pki.server[0]}", f"keyfile {pki.server[1]}",
             "require_certificate true", "use_identity_as_username true",
             f"acl_file {acl}"]
    return lines, Tls(pki.ca, {"dev-a": pki.dev_a, "dev-b": pki.dev_b})


def tls_scripts(counter):
    out = []
    for v in VERSIONS:
        s = Script(f"tls/v{v}/no-client-certificate", counter())
        s.connect(v).alive()
        out.append(s)

        s = Script(f"tls/v{v}/device-connects", counter())
        s.connect(v, cert="dev-a").alive()
        out.append(s)

        # The username in CONNECT is replaced by the certificate's CN.
        s = Script(f"tls/v{v}/username-ignored", counter())
        s.connect(v, cert="dev-a", username="dev-b", password=b"x")
        s.exchange(p.publish(f"devices/dev-a/{s.key}", b"u", 1, packet_id=2, version=v))
        s.exchange(p.publish(f"devices/dev-b/{s.key}", b"u", 1, packet_id=3, version=v))
        out.append(s)

        for qos in (0, 1, 2):
            s = Script(f"tls/v{v}/own-topic-q{qos}", counter())
            s.connect(v, conn="w", cert="dev-b")
            s.exchange(p.subscribe(1, [(f"devices/dev-a/{s.key}", qos)], version=v), "w")
            s.connect(v, cert="dev-a")
            s.exchange(p.publish(f"devices/dev-a/{s.key}", b"own", qos, packet_id=4, version=v))
            if qos == 2:
                s.exchange(p.ack(r.PUBREL, 4, v))
            s.read("w")
            out.append(s)

        # dev-a may not write dev-b's topics; dev-b's subscriber hears nothing.
        s = Script(f"tls/v{v}/other-device-topic", counter())
        s.connect(v, conn="w", cert="dev-b")
        s.exchange(p.subscribe(1, [(f"devices/dev-b/{s.key}", 1)], version=v), "w")
        s.connect(v, cert="dev-a")
        s.exchange(p.publish(f"devices/dev-b/{s.key}", b"x", 1, packet_id=5, version=v))
        s.read("w")
        out.append(s)

        s = Script(f"tls/v{v}/pattern-u", counter())
        s.connect(v, cert="dev-a")
        s.exchange(p.publish(f"reports/dev-a/{s.key}", b"r", 1, packet_id=6, version=v))
        s.exchange(p.subscribe(1, [(f"reports/dev-a/{s.key}", 0)], version=v))
        out.append(s)
    return out
