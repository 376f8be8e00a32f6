"""RFC 931 / 1413 ident client: who is the user at the other end of this TCP connection?

Contract: `ident_user(client, server, timeout)` -> the user name the client host's identd reports, or
"unknown". It connects from the server's address to the client's port 113, sends `<client port>,<server
port>\\r\\n` and reads one reply line, all within one deadline. The line is read as the reference's
fgets and sscanf(`%u , %u : USERID :%*[^:]:%255s`) read it: at most 511 bytes, a C string (a NUL ends
it), a line cut short by the end of the stream is no answer, the port numbers are %u's (a sign, any
number of digits, narrowed to 32 bits) and must be the connection's own ports; the user is the first run
of non-blank characters after the third colon (at most 255, stored as 127). Anything else, any error or
timeout: "unknown".
"""

from __future__ import annotations

import re
import socket
import time

from pywrap.endpoints import Side
from pywrap.numeric import scan_unsigned

IDENT_PORT = 113
MAX_REPLY = 511
REPLY = re.compile(rb"^(\s*[+-]?\d+)\s*,(\s*[+-]?\d+)\s*:\s*USERID\s*:[^:]+:\s*(\S+)")


def ident_user(client: Side, server: Side, timeout: float) -> str:
    if client.packed is None or server.packed is None or client.family != server.family:
        return "unknown"
    try:
        line = _query(client, server, timeout)
    except (OSError, ValueError):
        return "unknown"
    return "unknown" if line is None else _user(line, client.port, server.port)


def _query(client: Side, server: Side, timeout: float) -> bytes | None:
    """The reply line as fgets gives it, or None when the stream ended before a newline (and before
    MAX_REPLY bytes): the reference checks feof() and takes such a line for no answer."""
    deadline = time.monotonic() + timeout
    with socket.socket(client.family, socket.SOCK_STREAM) as sock:
        sock.bind((server.address.partition("%")[0], 0))
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.connect((client.address, IDENT_PORT))
        sock.sendall(f"{client.port},{server.port}\r\n".encode())
        reply = b""
        while b"\n" not in reply and len(reply) < MAX_REPLY:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(MAX_REPLY - len(reply))
            if not chunk:
                return None
            reply += chunk
    return reply.split(b"\n", 1)[0]


def _user(line: bytes, client_port: int | None, server_port: int | None) -> str:
    """sscanf's reading of the line, which is a C string: it ends at the first NUL."""
    match = REPLY.match(line.split(b"\0", 1)[0])
    if match is None:
        return "unknown"
    ports = [scan_unsigned(match.group(n).decode("latin-1")) for n in (1, 2)]
    if ports != [client_port, server_port]:
        return "unknown"
    return match.group(3)[:255][:127].decode("latin-1")
