"""Playing one script against one broker and recording what it answered.

A script is a list of steps:
- ("open", name, cert): a new connection called `name`; with `tls` given
  to `play`, a TLS connection presenting client certificate `cert` (a name
  in `tls.certs`, or None for none);
- ("send", name, bytes): bytes written on it (a failed write is recorded);
- ("read", name): what arrives until the connection has been quiet for
  QUIET seconds, or closes (recorded as EOF or RESET);
- ("close", name): the client closes.
The transcript is a list of (step index, name, bytes or marker); bytes are
split into MQTT packets so masking works per packet.
"""

import socket
import ssl
import time

QUIET = 0.25
READ_LIMIT = 2.0
EOF_MARK = "EOF"
RESET_MARK = "RESET"
OPEN_MARK = "OPEN"
WRITE_FAILED = "WRITE-FAILED"


def split_packets(data):
    """Whole MQTT packets of `data`, and the bytes left over."""
    packets, offset = [], 0
    while offset + 2 <= len(data):
        length, shift, pos = 0, 0, offset + 1
        while pos < len(data):
            byte = data[pos]
            length |= (byte & 0x7F) << shift
            shift += 7
            pos += 1
            if not byte & 0x80:
                break
        else:
            break
        if pos + length > len(data):
            break
        packets.append(bytes(data[offset:pos + length]))
        offset = pos + length
    return packets, bytes(data[offset:])


def read_answer(sock):
    """Bytes until QUIET seconds of silence (bounded by READ_LIMIT), and how
    the read ended."""
    data = bytearray()
    deadline = time.monotonic() + READ_LIMIT
    while time.monotonic() < deadline:
        sock.settimeout(QUIET)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return bytes(data), OPEN_MARK
        except (ConnectionResetError, BrokenPipeError):
            return bytes(data), RESET_MARK
        except ssl.SSLZeroReturnError:
            return bytes(data), EOF_MARK
        except ssl.SSLError as error:
            # A TLS alert from the broker (e.g. a client certificate it
            # refused, which TLS 1.3 reports after the handshake).
            return bytes(data), f"TLS-ALERT {error.reason}"
        if not chunk:
            return bytes(data), EOF_MARK
        data += chunk
    return bytes(data), OPEN_MARK


class Tls:
    """What a TLS configuration's clients need: the CA that signed the
    broker's certificate, and client certificates by name."""

    def __init__(self, ca, certs):
        self.ca = str(ca)
        self.certs = {name: (str(crt), str(key)) for name, (crt, key) in certs.items()}

    def wrap(self, sock, cert):
        context = ssl.create_default_context(cafile=self.ca)
        if cert is not None:
            context.load_cert_chain(*self.certs[cert])
        return context.wrap_socket(sock, server_hostname="localhost")


def _open(port, tls, cert):
    sock = socket.create_connection(("127.0.0.1", port), timeout=2)
    if tls is None:
        return sock, None
    try:
        return tls.wrap(sock, cert), None
    except ssl.SSLError as error:
        sock.close()
        return None, f"TLS-REFUSED {error.reason}"
    except OSError:
        sock.close()
        return None, "TLS-REFUSED closed"


def play(port, script, tls=None):
    """The transcript of `script` against the broker on `port` (over TLS
    when `tls`, a `Tls`, is given)."""
    sockets, transcript = {}, []
    try:
        for index, step in enumerate(script):
            kind, name = step[0], step[1]
            if name not in sockets and kind in ("send", "read"):
                # Its open failed (recorded): nothing to send or read.
                continue
            if kind == "open":
                sock, refused = _open(port, tls, step[2] if len(step) > 2 else None)
                if refused:
                    transcript.append((index, name, refused))
                else:
                    sockets[name] = sock
            elif kind == "send":
                try:
                    sockets[name].sendall(step[2])
                except OSError:
                    transcript.append((index, name, WRITE_FAILED))
            elif kind == "read":
                data, end = read_answer(sockets[name])
                packets, rest = split_packets(data)
                transcript.extend((index, name, p) for p in packets)
                if rest:
                    transcript.append((index, name, rest))
                transcript.append((index, name, end))
            elif kind == "close":
                sock = sockets.pop(name, None)
                if sock is not None:
                    sock.close()
            elif kind == "sleep":
                time.sleep(step[2])
    finally:
        for sock in sockets.values():
            sock.close()
    return transcript
