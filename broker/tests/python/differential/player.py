"""Playing one script against one broker and recording what it answered.

A script is a list of steps:
- ("open", name): a new connection called `name`;
- ("send", name, bytes): bytes written on it (a failed write is recorded);
- ("read", name): what arrives until the connection has been quiet for
  QUIET seconds, or closes (recorded as EOF or RESET);
- ("close", name): the client closes.
The transcript is a list of (step index, name, bytes or marker); bytes are
split into MQTT packets so masking works per packet.
"""

import socket
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
        if not chunk:
            return bytes(data), EOF_MARK
        data += chunk
    return bytes(data), OPEN_MARK


def play(port, script):
    """The transcript of `script` against the broker on `port`."""
    sockets, transcript = {}, []
    try:
        for index, step in enumerate(script):
            kind, name = step[0], step[1]
            if kind == "open":
                sockets[name] = socket.create_connection(("127.0.0.1", port), timeout=2)
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
                sockets.pop(name).close()
            elif kind == "sleep":
                time.sleep(step[2])
    finally:
        for sock in sockets.values():
            sock.close()
    return transcript
